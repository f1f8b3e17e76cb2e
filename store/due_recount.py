"""Due times counted again when the working-day calendar changes.

A sub-case's due time is fixed at receipt (``store.cases.deadline``) on the calendar of
that moment. Two things make such a time wrong later:

- the count reached a year the calendar had no data for (each December, next year's
  arrangement is entered after the first cases whose promise crosses New Year): the
  case got no due time at all and left the 办件时限 watch for good;
- an operator corrected a year the count passed through (a holiday added or moved).

``recount_due_times`` counts those cases again from their receipt with the working days
they were promised (the promise stays the one fixed at receipt). Only open sub-cases are
touched: a closed case keeps the due time it was judged against. A count that passed
through changed days ended after the first of them began and began before the last
ended (Beijing time): that is the test for "touched" (``touched``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date as date_
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, false, or_, select, update
from sqlalchemy.orm import Session

from mapping.items import FINAL_STAGES
from mapping.workdays import CalendarMissing, WorkCalendar, day_start, due_at
from store.models import Case

#: Rows read and written per round trip.
CHUNK = 1000


#: A span of changed calendar days (first, last), local dates.
Span = tuple[date_, date_]


def year_span(years: Iterable[int]) -> Span | None:
    """The days of ``years`` (a newly entered year changes every count through it)."""
    years = sorted(set(years))
    return (date_(years[0], 1, 1), date_(years[-1], 12, 31)) if years else None


def changed_span(before: Iterable[Any] | None, after: Iterable[Any], year: int) -> Span | None:
    """The days between the first and the last whose arrangement differs (``before``
    None: the year was not there, so all of it); None when nothing changed."""
    if before is None:
        return year_span([year])
    old = {(d.day, d.kind) for d in before}
    new = {(d.day, d.kind) for d in after}
    days = sorted({day for day, _ in old ^ new})
    return (days[0], days[-1]) if days else None


def touched(due: Any, received: Any, span: Span | None, tz: ZoneInfo) -> Any:
    """Where a count from ``received`` ending at ``due`` passed through ``span``: it ended
    after the span began and began before it ended (a count outside it never read it)."""
    if span is None:
        return false()
    first, last = span
    return and_(due > day_start(first, tz), received < day_start(last + timedelta(days=1), tz))


def recount_due_times(s: Session, calendar: WorkCalendar, tz: ZoneInfo,
                      span: Span | None = None) -> int:
    """Count again the due time of every open sub-case that has none, and of those whose
    count passed through ``span`` (the days whose arrangement changed); returns how many
    due times changed. Runs in the caller's transaction (the calendar's change and the
    new times commit together). Saving a year unchanged reads only the cases with no due
    time (a correction in December had read every open case of the year)."""
    rows = s.execute(
        select(Case.id, Case.created_at, Case.promised_days, Case.due_at)
        .where(Case.parent_id.is_not(None), Case.promised_days.is_not(None),
               Case.stage.not_in(sorted(FINAL_STAGES)),
               or_(Case.due_at.is_(None), touched(Case.due_at, Case.created_at, span, tz)))
        .order_by(Case.id)).all()
    changes: list[dict[str, object]] = []
    for case_id, received_at, days, old in rows:
        try:
            new = due_at(calendar, received_at, days, tz)
        except CalendarMissing:
            new = None  # still a year without data: counted when it is entered
        if new != old:
            changes.append({"_id": case_id, "_due": new})
    statement = (update(Case).where(Case.id == bindparam("_id"))
                 .values(due_at=bindparam("_due"))
                 .execution_options(synchronize_session=False))
    for n in range(0, len(changes), CHUNK):
        s.connection().execute(statement, changes[n:n + CHUNK])
    return len(changes)
