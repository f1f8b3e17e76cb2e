"""Cases and their stages: case numbers, the county delivery and province push formats,
stages recorded and the pushes to the province queued. (Cases are opened by
``adapters.case_plan`` and written by ``store.case_write``.)

Everything here runs inside the caller's transaction (``hub.transaction()``), so a
case, its sub-cases and the messages they cause are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from mapping.canonical import CanonicalCase
from mapping.items import can_follow
from routes.table import Route
from store.models import Case, StageEvent, utcnow
from store.outbox import NewMessage

if TYPE_CHECKING:
    from hub import Hub

#: Where pushes to the province go (partner app id in config.yaml).
PROVINCE = "province"


#: The day in a case number is the operators' day (a case at 01:00 Beijing time carries
#: that Beijing date, not the UTC date before it).
CASE_NO_TZ = ZoneInfo("Asia/Shanghai")


def case_no_for(prefix: str, row_id: int, when: datetime, tz: tzinfo = CASE_NO_TZ) -> str:
    """Readable, unique case numbers: city or county code, local date, row id (``when``
    is the store's naive UTC)."""
    return case_no_on(prefix, row_id, case_day(when, tz))


def case_day(when: datetime, tz: tzinfo = CASE_NO_TZ) -> str:
    """The date part of the case numbers given at ``when`` (``case_no_on``)."""
    local = when.replace(tzinfo=UTC).astimezone(tz) if when.tzinfo is None else when.astimezone(tz)
    return f"{local:%Y%m%d}"


def case_no_on(prefix: str, row_id: int, day: str) -> str:
    """``case_no_for`` with the day already made (``case_day``)."""
    return f"{prefix}{day}{row_id:08d}"


class CaseRow(dict[str, Any]):
    """A ``cases`` row as written (column -> value), read by attribute like a ``Case``:
    the intake answers from it without building ORM objects."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def deadline(hub: Hub, county: str, item: str, received_at: datetime) -> dict[str, Any]:
    """A sub-case's promised working days and due time, fixed when it is received (a
    later change of the promise applies to cases received after it)."""
    days, due = hub.overrides.due(county, item, received_at)
    return {"promised_days": days, "due_at": due}


def county_delivery(canonical: CanonicalCase, sub: Case, route: Route) -> NewMessage:
    """The message that delivers a sub-case to its county."""
    return NewMessage(
        interface=f"county.{canonical.item}", adapter=route.adapter, partner=route.partner or "",
        operation=canonical.item, payload=canonical.for_county(sub.county_code, sub.case_no),
        policy=route.retry, timeout=route.timeout, division=sub.county_code,
        item=canonical.item, case_id=sub.id,
    )


def queue_county_delivery(session: Session, hub: Hub, canonical: CanonicalCase, sub: Case,
                          route: Route) -> int:
    return hub.enqueue(session, county_delivery(canonical, sub, route))  # type: ignore[return-value]


def province_message(hub: Hub, case: Case, operation: str, payload: dict[str, Any]) -> NewMessage:
    partner = hub.partner(PROVINCE)
    policy = hub.config.retry_policies.get("province") or hub.config.retry_policies["default"]
    return NewMessage(
        interface=f"province.{operation}", adapter="province", partner=PROVINCE,
        operation=operation, payload=payload, policy=policy, timeout=partner.timeout,
        division=case.county_code or None, item=case.item, case_id=case.id,
    )


@dataclass(frozen=True)
class StageOutcome:
    recorded: bool
    duplicate: bool
    event: StageEvent | None = None
    reason: str = ""


#: Stages after which nothing is recorded (an event after one is a duplicate).
CLOSED_STAGES = ("completed", "rejected", "validation_failed")
_LOCK_CHUNK = 500


class StageConflict(RuntimeError):
    """A stage's conditional UPDATE matched no row: the case moved under a writer that
    did not hold its row lock (``lock_stages``). Never expected; the transaction rolls
    back rather than record a second final stage."""


def lock_stages(session: Session, case_ids: Iterable[int]) -> dict[int, str]:
    """Each case's stage as committed, its row locked until the transaction ends.

    PostgreSQL: ``SELECT ... FOR UPDATE`` in id order (two writers of several cases never
    deadlock), so a concurrent writer of the same case waits here and then reads what
    the first one committed. SQLite: every transaction of the hub holds the database's
    write lock from its ``BEGIN IMMEDIATE`` (store.db), so the read is current already.
    """
    table = Case.__table__
    ordered = sorted(set(case_ids))
    stages: dict[int, str] = {}
    for i in range(0, len(ordered), _LOCK_CHUNK):
        rows = session.execute(
            select(table.c.id, table.c.stage).where(table.c.id.in_(ordered[i:i + _LOCK_CHUNK]))
            .order_by(table.c.id).with_for_update())
        stages.update((case_id, stage) for case_id, stage in rows)
    return stages


def advance_stages(session: Session, moves: Sequence[tuple[int, str, str]],
                   now: datetime) -> None:
    """Move each case ``(id, from_stage, to_stage)`` with a conditional UPDATE: only
    where the case is still at ``from_stage`` and not closed. The database's own rule
    for one final stage per case; ``StageConflict`` unless every case matched."""
    if not moves:
        return
    table = Case.__table__
    stmt = (update(table)
            .where(table.c.id == bindparam("_id"), table.c.stage == bindparam("_from"),
                   *(table.c.stage != closed for closed in CLOSED_STAGES))
            .values(stage=bindparam("_to"), updated_at=bindparam("_now")))
    params = [{"_id": i, "_from": old, "_to": new, "_now": now} for i, old, new in moves]
    result = session.connection().execute(stmt, params[0] if len(params) == 1 else params)
    if result.rowcount != len(moves):
        raise StageConflict(f"{len(moves) - result.rowcount} case(s) moved concurrently")


#: A recorded event as the stage rule compares it: (stage, at, operator).
Seen = tuple[str, datetime, str | None]


def decide_stage(current: str, recorded: Collection[Seen], stage: str, at: datetime,
                 operator: str | None) -> StageOutcome:
    """Whether ``stage`` may be recorded on a case at ``current`` holding the events
    ``recorded`` of that stage (at least; others are ignored): the one rule for
    callbacks, marks and imports.

    Stages move forward only. A report of the stage the case is at (``approved``: one
    with the time and operator of any recorded approval, not only the last: a county
    re-sending its earlier approvals) or any report after a closed stage is a duplicate:
    answered, and changes nothing. ``approved`` may repeat when it is a new event.
    """
    if stage == current and any(
            seen[0] == stage and (stage != "approved" or seen[1:] == (at, operator))
            for seen in recorded):
        return StageOutcome(False, True, None, "already recorded")
    previous = current if current != "received" else None
    if not can_follow(previous, stage):
        return StageOutcome(False, current in CLOSED_STAGES, None,
                            f"stage {stage} cannot follow {current}")
    return StageOutcome(True, False)


def events_of_stage(session: Session, case: Case, stage: str) -> list[Seen]:
    """The case's recorded events of ``stage`` (stage, at, operator), oldest first."""
    return [(s, at, op) for s, at, op in session.execute(
        select(StageEvent.stage, StageEvent.at, StageEvent.operator)
        .where(StageEvent.case_id == case.id, StageEvent.stage == stage)
        .order_by(StageEvent.id))]


def record_stage(
    session: Session, hub: Hub, case: Case, stage: str, *, at: datetime | None = None,
    operator: str | None = None, opinion: str | None = None, filing_no: str | None = None,
    result: Any = None, source: str = "county", push: bool = True,
) -> StageOutcome:
    """Record a stage on a (sub-)case if it may follow (``decide_stage``), and queue its
    push to the province.

    Concurrent writers of one case are serialised by its row lock (``lock_stages``) and
    the stage moves by a conditional UPDATE (``advance_stages``): of two final stages
    reported at the same moment exactly one is recorded, the other is a duplicate.
    """
    at = at or utcnow()
    current = lock_stages(session, [case.id])[case.id]
    set_committed_value(case, "stage", current)
    recorded = events_of_stage(session, case, stage) if stage == current else []
    decided = decide_stage(current, recorded, stage, at, operator)
    if not decided.recorded:
        return decided
    now = utcnow()
    advance_stages(session, [(case.id, current, stage)], now)
    set_committed_value(case, "stage", stage)
    set_committed_value(case, "updated_at", now)
    event = StageEvent(
        case_id=case.id, stage=stage, at=at, operator=operator, opinion=opinion,
        filing_no=filing_no, source=source,
        result_enc=None if result is None else hub.cipher.seal_json(result),
        on_time=on_time(case, stage, at),
    )
    session.add(event)
    if push:
        hub.enqueue(session, want_id=False, message=province_message(
            hub, case, "status", status_payload(case, stage, at, operator, opinion, filing_no)))
    return StageOutcome(True, False, event)


#: The stages whose timeliness is recorded (受理, 办结, and 申请并受理 which is both).
TIMED_STAGES = frozenset({"accepted", "completed", "apply_and_accept"})


def on_time(case: Case, stage: str, at: datetime) -> bool | None:
    """Whether ``stage`` at ``at`` came by the sub-case's due time (None: not timed)."""
    due = getattr(case, "due_at", None)
    if stage not in TIMED_STAGES or due is None:
        return None
    return at <= due


def status_payload(case: Case, stage: str, at: datetime, operator: str | None,
                   opinion: str | None, filing_no: str | None) -> dict[str, Any]:
    """The body of a ``/status`` push to the province (province.md) for one stage."""
    return {
        "apply_no": case.apply_no, "item": case.item, "county_code": case.county_code or None,
        "case_no": case.case_no, "stage": stage, "at": _iso(at), "operator": operator,
        "opinion": opinion, "filing_no": filing_no,
    }


def _iso(at: datetime) -> str:
    """Naive UTC (as stored) to ISO 8601 with offset, as the contracts want."""
    return at.isoformat(timespec="seconds") + "+00:00" if at.tzinfo is None else at.isoformat()


def find_case(session: Session, case_no: str) -> Case | None:
    return session.scalars(select(Case).where(Case.case_no == case_no)).first()
