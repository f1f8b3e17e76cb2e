"""Deadline lists (逾期 / 即将到期) and on-time rates, scoped to an operator's divisions.

Open sub-cases (no final stage yet) with a due time are overdue once it has passed, and
due soon while it falls within the next ``deadline_warning_days`` working days (system
setting). On-time rates count the sub-cases completed (办结) per county, item and
Beijing-time month, and how many of those 办结 came by their due time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, select, text
from sqlalchemy.orm import Session

from admin.perms import Principal
from mapping.items import FINAL_STAGES
from mapping.workdays import CalendarMissing, WorkCalendar
from store.calendar import load
from store.due_recount import Span, recount_due_times
from store.models import Case, StageEvent

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.deadlines")

#: The most rows one list shows (the export takes the same bound): a county's clerks work
#: a list, not a dump; the counts above it are complete.
MAX_ROWS = 5000


@dataclass(frozen=True)
class DueRow:
    case_no: str
    item: str
    county_code: str
    stage: str
    received_at: datetime
    due_at: datetime
    promised_days: int | None
    overdue: bool


def soon_limit(calendar: WorkCalendar | None, now: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The end (naive UTC) of the ``days``-th working day after today (Beijing time);
    today's end when ``days`` is 0 or the calendar cannot count that far."""
    today = now.replace(tzinfo=UTC).astimezone(tz).date()
    last = today
    if calendar is not None and days:
        try:
            last = calendar.add(today, days)
        except CalendarMissing:
            last = today
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return end.astimezone(UTC).replace(tzinfo=None)


def _open_due(principal: Principal | None, county: str | None, item: str | None) -> list[Any]:
    """Open sub-cases with a due time, in ``principal``'s scope (None: the whole city)."""
    conds = [Case.parent_id.is_not(None), Case.due_at.is_not(None),
             Case.stage.not_in(sorted(FINAL_STAGES))]
    if principal is not None:
        conds.append(principal.scope(Case.county_code))
    if county:
        conds.append(Case.county_code == county)
    if item:
        conds.append(Case.item == item)
    return conds


def due_rows(s: Session, principal: Principal, now: datetime, until: datetime,
             county: str | None = None, item: str | None = None,
             limit: int = MAX_ROWS) -> list[DueRow]:
    """Open sub-cases due before ``until`` (overdue ones first, earliest due first)."""
    stmt = (select(Case.case_no, Case.item, Case.county_code, Case.stage, Case.created_at,
                   Case.due_at, Case.promised_days)
            .where(*_open_due(principal, county, item), Case.due_at < until)
            .order_by(Case.due_at, Case.id).limit(limit))
    return [DueRow(no, it, c, st, created, due, days, due < now)
            for no, it, c, st, created, due, days in s.execute(stmt)]


def due_counts(s: Session, principal: Principal | None, now: datetime, until: datetime,
               county: str | None = None, item: str | None = None
               ) -> dict[tuple[str, str], tuple[int, int]]:
    """(county, item) → (overdue, due soon) over every open sub-case in scope."""
    overdue = func.sum(case((Case.due_at < now, 1), else_=0))
    soon = func.sum(case((and_(Case.due_at >= now, Case.due_at < until), 1), else_=0))
    stmt = (select(Case.county_code, Case.item, overdue, soon)
            .where(*_open_due(principal, county, item), Case.due_at < until)
            .group_by(Case.county_code, Case.item))
    return {(c, it): (int(o or 0), int(n or 0)) for c, it, o, n in s.execute(stmt)}


def _local_month(column: Any, dialect: str, offset_hours: int) -> Any:
    """``column`` (naive UTC) as its local month ``YYYY-MM``: SQLite's strftime and its
    PostgreSQL twin to_char, both shifted by the zone's fixed offset."""
    if dialect == "postgresql":
        return func.to_char(column + text(f"interval '{offset_hours} hours'"), "YYYY-MM")
    return func.strftime("%Y-%m", column, f"{offset_hours:+d} hours")


def on_time_rates(s: Session, principal: Principal, since: datetime, until: datetime,
                  tz: ZoneInfo) -> list[dict[str, Any]]:
    """Per county, item and local month of 办结: completed, on time, untimed, rate (of
    the completed that had a due time). Counted in the database."""
    offset = tz.utcoffset(datetime(2000, 1, 1))
    hours = int(offset.total_seconds() // 3600) if offset is not None else 0
    month = _local_month(StageEvent.at, s.get_bind().dialect.name, hours).label("month")
    stmt = (select(Case.county_code, Case.item, month, func.count(),
                   func.sum(case((StageEvent.on_time.is_(True), 1), else_=0)),
                   func.sum(case((StageEvent.on_time.is_(None), 1), else_=0)))
            .join(StageEvent, StageEvent.case_id == Case.id)
            .where(StageEvent.stage == "completed", StageEvent.at >= since,
                   StageEvent.at < until, principal.scope(Case.county_code))
            .group_by(Case.county_code, Case.item, month)
            .order_by(Case.county_code, Case.item, month))
    out = []
    for county, item, mon, done, ok, untimed in s.execute(stmt):
        timed = int(done) - int(untimed or 0)
        out.append({"county": county, "item": item, "month": mon, "completed": int(done),
                    "on_time": int(ok or 0), "untimed": int(untimed or 0),
                    "rate": None if not timed else int(ok or 0) / timed})
    return out


def daily_digest(s: Session, calendar: WorkCalendar | None, now: datetime, days: int,
                 tz: ZoneInfo, county_names: dict[str, str]) -> list[str]:
    """One alert per county with overdue or due-soon sub-cases, once per Beijing day
    (kind ``case_overdue``, the county as its division); returns the counties alerted."""
    from store.models import Alert

    until = soon_limit(calendar, now, days, tz)
    per_county: dict[str, list[int]] = {}
    for (county, _), (overdue, soon) in due_counts(s, None, now, until).items():
        t = per_county.setdefault(county, [0, 0])
        t[0] += overdue
        t[1] += soon
    day = now.replace(tzinfo=UTC).astimezone(tz).strftime("%Y%m%d")
    alerted = []
    for county, (overdue, soon) in sorted(per_county.items()):
        ref = f"deadlines:{county}:{day}"
        if s.scalar(select(Alert.id).where(Alert.ref == ref).limit(1)) is not None:
            continue
        name = county_names.get(county, county)
        s.add(Alert(kind="case_overdue", severity="warning" if overdue else "info",
                    division=county, ref=ref,
                    title=f"{name}：{overdue} 件办件已逾期，{soon} 件即将到期",
                    detail=f"详见“办件时限”页面（{days} 个工作日内到期的计为即将到期）。"))
        alerted.append(county)
    return alerted


def recount_after_calendar_change(h: Hub, s: Session, span: Span | None,
                                  every_instruction: bool = False) -> int:
    """The deadlines counted on the working-day calendar, counted again on the calendar
    now in ``s`` (days in ``span`` entered or corrected, in the same transaction): the
    open sub-cases' due times (``store.due_recount``, with those that have none) and the
    bank instructions' deadlines (every waiting one with ``every_instruction``). Returns
    how many sub-cases' due times changed (what the operator is told)."""
    from adapters.bank_soap import fund_desk
    from adapters.fund.instructions import recount_deadlines

    calendar = load(s)
    cases = recount_due_times(s, calendar, h.overrides.tz, span)
    instructions = 0
    if every_instruction or span is not None:  # None there: every waiting instruction
        instructions = recount_deadlines(h, s, fund_desk(h).settings, calendar,
                                         None if every_instruction else span)
    if cases or instructions:
        log.info("working-day calendar changed (%s): %d due time(s) and %d instruction "
                 "deadline(s) counted again", span or "no day", cases, instructions)
    return cases
