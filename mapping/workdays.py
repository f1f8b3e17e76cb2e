"""The Chinese working-day calendar: weekends and public holidays off, 调休 make-up
working days on, per year; a count into a year the calendar has no data for is refused.

Pure: ``WorkCalendar`` is built from rows (``store/calendar.py`` keeps them in the
database, seeded from the ``chinese_calendar`` package and editable by operators) and
answers questions in local dates. Counting follows the clerks' rule: the first working
day *after* the day of receipt is day 1, so a case received on Friday 2026-09-18 with
3 working days is due on Tuesday 2026-09-22 (Sunday 09-20 is a make-up working day).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

#: A day's kind in the calendar's rows.
HOLIDAY, WORKDAY = "holiday", "workday"
KIND_NAMES = {HOLIDAY: "节假日（休息）", WORKDAY: "调休上班"}
#: The most working days one count may span (a promise is weeks, never years).
MAX_COUNT = 366


class CalendarMissing(LookupError):
    """A count reached a year the calendar has no data for."""

    def __init__(self, year: int) -> None:
        super().__init__(f"工作日历缺少 {year} 年的节假日安排，无法计算期限（请在系统设置中录入）")
        self.year = year


@dataclass(frozen=True)
class CalendarDay:
    day: date
    kind: str  # HOLIDAY (a weekday off) or WORKDAY (a weekend day worked)
    name: str = ""


@dataclass(frozen=True)
class WorkCalendar:
    """Years with data, and the exceptions to Monday–Friday within them."""

    years: frozenset[int]
    holidays: frozenset[date]
    workdays: frozenset[date]

    @classmethod
    def of(cls, years: Iterable[int], days: Iterable[CalendarDay]) -> WorkCalendar:
        days = list(days)
        return cls(frozenset(years), frozenset(d.day for d in days if d.kind == HOLIDAY),
                   frozenset(d.day for d in days if d.kind == WORKDAY))

    def is_workday(self, day: date) -> bool:
        if day.year not in self.years:
            raise CalendarMissing(day.year)
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def working_days_after(self, start: date) -> Iterator[date]:
        """The working days after ``start``, in order (day 1 first)."""
        day = start
        while True:
            day += timedelta(days=1)
            if self.is_workday(day):
                yield day

    def add(self, start: date, days: int) -> date:
        """The ``days``-th working day after ``start`` (``days`` ≥ 1; 0 is ``start``)."""
        if not 0 <= days <= MAX_COUNT:
            raise ValueError(f"working days must be 0..{MAX_COUNT}, got {days}")
        if days == 0:
            return start
        for n, day in enumerate(self.working_days_after(start), start=1):
            if n == days:
                return day
        raise AssertionError("unreachable")

    def count_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end`` (0 when end ≤ start)."""
        n, day = 0, start
        while day < end:
            day += timedelta(days=1)
            n += self.is_workday(day)
        return n


def day_start(day: date, tz: tzinfo) -> datetime:
    """The first instant of the local ``day`` as naive UTC (the store's times)."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def due_at(calendar: WorkCalendar, received_at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The end (24:00 local) of the ``days``-th working day after the local day of
    ``received_at`` (naive UTC, as stored), as naive UTC."""
    local_day = received_at.replace(tzinfo=UTC).astimezone(tz).date()
    return day_start(calendar.add(local_day, days) + timedelta(days=1), tz)


def package_year(year: int) -> list[CalendarDay] | None:
    """The exceptions of ``year`` from the ``chinese_calendar`` package (the State
    Council's notices), or None when the package has no data for that year."""
    import chinese_calendar

    day = date(year, 1, 1)
    try:
        chinese_calendar.is_workday(day)
    except NotImplementedError:
        return None
    out: list[CalendarDay] = []
    while day.year == year:
        working = chinese_calendar.is_workday(day)
        if day.weekday() < 5 and not working:
            _, name = chinese_calendar.get_holiday_detail(day)
            out.append(CalendarDay(day, HOLIDAY, _holiday_name(name)))
        elif day.weekday() >= 5 and working:
            _, name = chinese_calendar.get_holiday_detail(day)
            out.append(CalendarDay(day, WORKDAY, _holiday_name(name)))
        day += timedelta(days=1)
    return out


def package_years() -> range:
    """The years the installed ``chinese_calendar`` knows."""
    import chinese_calendar

    known = [d.year for d in chinese_calendar.holidays] or [date.today().year]
    return range(min(known), max(known) + 1)


#: The package names holidays in English (its ``Holiday`` enum); the clerks read these.
_HOLIDAY_NAMES = {
    "New Year's Day": "元旦", "Spring Festival": "春节", "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节", "Dragon Boat Festival": "端午节", "Mid-autumn Festival": "中秋节",
    "National Day": "国庆节", "Anti-Fascist 70th Day": "抗战胜利70周年纪念日",
}


def _holiday_name(name: str | None) -> str:
    return _HOLIDAY_NAMES.get(name or "", name or "")
