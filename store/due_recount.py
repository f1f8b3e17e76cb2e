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
through a year ``Y`` ended after the start of ``Y`` (Beijing time), so that is the test
for "touched by a change to ``Y``".
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time
from datetime import date as date_
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from mapping.items import FINAL_STAGES
from mapping.workdays import CalendarMissing, WorkCalendar, due_at
from store.models import Case

#: Rows read and written per round trip.
CHUNK = 1000


def year_start(year: int, tz: ZoneInfo) -> datetime:
    """Local midnight of 1 January of ``year``, as naive UTC (how times are stored)."""
    start = datetime.combine(date_(year, 1, 1), time(0), tzinfo=tz)
    return start.astimezone(UTC).replace(tzinfo=None)


def recount_due_times(s: Session, calendar: WorkCalendar, tz: ZoneInfo,
                      changed_years: Iterable[int] = ()) -> int:
    """Count again the due time of every open sub-case that has none, and of those whose
    count reached one of ``changed_years``; returns how many due times changed. Runs in
    the caller's transaction (the calendar's change and the new times commit together)."""
    touched = [Case.due_at.is_(None)]
    years = sorted(set(changed_years))
    if years:
        touched.append(Case.due_at > year_start(years[0], tz))
    rows = s.execute(
        select(Case.id, Case.created_at, Case.promised_days, Case.due_at)
        .where(Case.parent_id.is_not(None), Case.promised_days.is_not(None),
               Case.stage.not_in(sorted(FINAL_STAGES)), or_(*touched))
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
