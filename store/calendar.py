"""The working-day calendar in the store: seeded once per year from the
``chinese_calendar`` package, replaced year by year by operators, read as one
``mapping.workdays.WorkCalendar``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mapping.workdays import (
    HOLIDAY,
    WORKDAY,
    CalendarDay,
    WorkCalendar,
    package_year,
    package_years,
)
from store.calendar_models import CalendarDayRow, CalendarYear

#: Years before this are not seeded (nothing the hub counts reaches back further).
FIRST_SEEDED_YEAR = 2020


class CalendarError(ValueError):
    """An operator's year arrangement is inconsistent (the message says why, in Chinese)."""


def seed_from_package(db) -> list[int]:  # type: ignore[no-untyped-def]
    """Store every year the package knows and the store does not (never overwriting an
    operator's year); returns the years added. Safe to run from several processes."""
    added: list[int] = []
    with db.session() as s:
        have = set(s.scalars(select(CalendarYear.year)))
    for year in package_years():
        if year < FIRST_SEEDED_YEAR or year in have:
            continue
        days = package_year(year)
        if days is None:
            continue
        try:
            with db.session() as s:
                s.add(CalendarYear(year=year, source="package"))
                s.add_all(CalendarDayRow(day=d.day, kind=d.kind, name=d.name) for d in days)
        except IntegrityError:  # another process seeded it first
            continue
        added.append(year)
    return added


def load(s: Session) -> WorkCalendar:
    years = list(s.scalars(select(CalendarYear.year)))
    days = [CalendarDay(r.day, r.kind, r.name) for r in s.scalars(select(CalendarDayRow))]
    return WorkCalendar.of(years, days)


def year_days(s: Session, year: int) -> list[CalendarDay]:
    rows = s.scalars(select(CalendarDayRow).where(
        CalendarDayRow.day >= date(year, 1, 1), CalendarDayRow.day <= date(year, 12, 31))
        .order_by(CalendarDayRow.day))
    return [CalendarDay(r.day, r.kind, r.name) for r in rows]


def check_year(year: int, days: Iterable[CalendarDay]) -> list[CalendarDay]:
    """An operator's arrangement for ``year``: each day in that year, once, a holiday on a
    weekday or a make-up working day on a weekend (anything else changes nothing)."""
    out: dict[date, CalendarDay] = {}
    for d in days:
        if d.day.year != year:
            raise CalendarError(f"{d.day.isoformat()} 不在 {year} 年")
        if d.day in out:
            raise CalendarError(f"{d.day.isoformat()} 重复")
        if d.kind == HOLIDAY and d.day.weekday() >= 5:
            raise CalendarError(f"{d.day.isoformat()} 是周末，本来就休息，无需列为节假日")
        if d.kind == WORKDAY and d.day.weekday() < 5:
            raise CalendarError(f"{d.day.isoformat()} 是工作日，无需列为调休上班")
        if d.kind not in (HOLIDAY, WORKDAY):
            raise CalendarError(f"{d.day.isoformat()}：类型只能是节假日或调休上班")
        out[d.day] = d
    return sorted(out.values(), key=lambda d: d.day)


def save_year(s: Session, year: int, days: Iterable[CalendarDay], actor: str) -> None:
    """Replace ``year``'s arrangement with an operator's (validated by ``check_year``)."""
    checked = check_year(year, days)
    s.execute(delete(CalendarDayRow).where(CalendarDayRow.day >= date(year, 1, 1),
                                           CalendarDayRow.day <= date(year, 12, 31)))
    row = s.get(CalendarYear, year)
    if row is None:
        s.add(CalendarYear(year=year, source="operator", updated_by=actor))
    else:
        row.source, row.updated_by = "operator", actor
    s.add_all(CalendarDayRow(day=d.day, kind=d.kind, name=d.name[:32]) for d in checked)


#: From this day of the year (month, day) the next year's arrangement is expected.
NEXT_YEAR_EXPECTED = (11, 15)


def watch_next_year(db, today: date) -> bool:  # type: ignore[no-untyped-def]
    """From 15 November, raise one alert (per year) when next year's calendar is missing:
    deadlines counted into it would be refused. True when the alert is open."""
    from store.models import Alert

    year = today.year + 1
    if (today.month, today.day) < NEXT_YEAR_EXPECTED:
        return False
    seed_from_package(db)
    ref = f"calendar:{year}"
    with db.session() as s:
        if s.get(CalendarYear, year) is not None:
            return False
        if s.scalar(select(Alert.id).where(Alert.ref == ref).limit(1)) is None:
            s.add(Alert(kind="calendar_missing", severity="warning", ref=ref,
                        title=f"工作日历缺少 {year} 年的节假日安排",
                        detail=f"请在“系统设置 → 工作日历”中录入国务院办公厅公布的 {year} 年"
                               "节假日及调休安排；录入前跨入该年的办结期限无法计算，录入后自动补算。"))
    return True
