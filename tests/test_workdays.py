"""The working-day calendar: the real 2026 arrangement (调休 make-up days included),
the store's copy seeded from chinese_calendar and edited by operators, the refusal to
count into a year with no data, next year's missing-calendar alert, and ``hub.py due``."""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from mapping.workdays import (
    HOLIDAY,
    WORKDAY,
    CalendarDay,
    CalendarMissing,
    WorkCalendar,
    due_at,
    package_year,
)
from store.calendar import CalendarError, load, save_year, seed_from_package, watch_next_year
from store.crypto import DataCipher, decode_master_key, new_master_key
from store.db import Database
from store.models import Alert
from tests.support import hub_command

BEIJING = ZoneInfo("Asia/Shanghai")
CAL_2026 = WorkCalendar.of([2026], package_year(2026) or [])


def test_the_2026_make_up_working_days_are_working_days():
    for day in ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20",
                "2026-10-10"):
        d = date.fromisoformat(day)
        assert d.weekday() >= 5 and CAL_2026.is_workday(d), day
    assert not CAL_2026.is_workday(date(2026, 10, 1))  # 国庆节, a Thursday
    assert not CAL_2026.is_workday(date(2026, 9, 19))  # an ordinary Saturday
    assert CAL_2026.is_workday(date(2026, 9, 18))


@pytest.mark.parametrize("start, days, due", [
    ("2026-09-18", 3, "2026-09-22"),  # Friday; Sunday 09-20 is worked
    ("2026-09-30", 5, "2026-10-13"),  # 10-01..10-07 off, Saturday 10-10 worked
    ("2026-09-18", 1, "2026-09-20"),  # day 1 is the first working day after receipt
    ("2026-02-13", 1, "2026-02-14"),  # Saturday 02-14 is worked before 春节
    ("2026-09-18", 0, "2026-09-18"),
])
def test_due_dates_on_the_real_2026_calendar(start, days, due):
    assert CAL_2026.add(date.fromisoformat(start), days) == date.fromisoformat(due)


def test_the_due_time_is_the_end_of_the_beijing_day():
    # received 2026-09-18 17:30 UTC = 09-19 01:30 Beijing (a Saturday): day 1 is Sunday 09-20
    received = datetime(2026, 9, 18, 17, 30)
    assert due_at(CAL_2026, received, 1, BEIJING) == datetime(2026, 9, 20, 16, 0)
    received_friday = datetime(2026, 9, 18, 2, 0)  # 10:00 Beijing on Friday
    got = due_at(CAL_2026, received_friday, 3, BEIJING).replace(tzinfo=UTC).astimezone(BEIJING)
    assert got == datetime(2026, 9, 23, 0, 0, tzinfo=BEIJING)


def test_counting_into_a_year_without_data_is_refused():
    with pytest.raises(CalendarMissing) as err:
        CAL_2026.add(date(2026, 12, 28), 5)
    assert err.value.year == 2027 and "2027" in str(err.value)
    with pytest.raises(ValueError):
        CAL_2026.add(date(2026, 1, 5), 10_000)


def test_the_store_is_seeded_once_and_an_operator_enters_next_year(store_url):
    db = Database(store_url)
    try:
        added = seed_from_package(db)
        assert 2026 in added and seed_from_package(db) == []  # idempotent
        with db.session() as s:
            cal = load(s)
        assert cal.add(date(2026, 9, 30), 5) == date(2026, 10, 13)
        with pytest.raises(CalendarMissing):
            cal.add(date(2026, 12, 30), 3)
        with db.session() as s:  # an operator enters 2027 before the package has it
            save_year(s, 2027, [CalendarDay(date(2027, 1, 1), HOLIDAY, "元旦")], "op1")
        with db.session() as s:
            cal = load(s)
        # Thu 12-31 day 1, Fri 01-01 off, Mon 01-04 day 2, Tue 01-05 day 3
        assert cal.add(date(2026, 12, 30), 3) == date(2027, 1, 5)
        for bad, why in [
            ([CalendarDay(date(2027, 1, 2), HOLIDAY)], "周末"),
            ([CalendarDay(date(2027, 1, 4), WORKDAY)], "工作日"),
            ([CalendarDay(date(2026, 1, 1), HOLIDAY)], "不在"),
            ([CalendarDay(date(2027, 1, 1), HOLIDAY)] * 2, "重复"),
        ]:
            with pytest.raises(CalendarError, match=why), db.session() as s:
                save_year(s, 2027, bad, "op1")
        with db.session() as s:  # refused changes changed nothing
            assert load(s).add(date(2026, 12, 30), 3) == date(2027, 1, 5)
    finally:
        db.dispose()


def test_next_years_missing_calendar_is_alerted_from_15_november(store_url):
    db = Database(store_url, cipher=DataCipher(decode_master_key(new_master_key())))
    try:
        seed_from_package(db)
        assert watch_next_year(db, date(2026, 11, 14)) is False
        assert watch_next_year(db, date(2026, 11, 15)) is True
        assert watch_next_year(db, date(2026, 11, 16)) is True
        with db.session() as s:
            alerts = s.scalars(select(Alert).where(Alert.kind == "calendar_missing")).all()
            assert len(alerts) == 1 and "2027" in alerts[0].title
            save_year(s, 2027, [], "op1")
        assert watch_next_year(db, date(2026, 11, 17)) is False
        with db.session() as s:
            assert s.scalar(select(func.count()).select_from(Alert)) == 1
    finally:
        db.dispose()


def _due(config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(hub_command(config, "due", *args), capture_output=True, text=True,
                          timeout=60)


def test_hub_due_prints_the_due_date_and_refuses_bad_input(make_config, sqlite_url):
    config = make_config(sqlite_url)
    ok = _due(config, "--from", "2026-09-30", "--days", "5")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("2026-10-13 星期二")
    for args, why in [
        (("--from", "2026-12-28", "--days", "5"), "2027"),
        (("--from", "2026-13-45", "--days", "5"), "YYYY-MM-DD"),
        (("--from", "yesterday", "--days", "5"), "YYYY-MM-DD"),
        (("--from", "2026-09-30", "--days", "-1"), "整数"),
    ]:
        bad = _due(config, *args)
        assert bad.returncode != 0 and bad.stdout == "", (args, bad.stdout)
        lines = bad.stderr.strip().splitlines()
        assert why in lines[-1] and "Traceback" not in bad.stderr, bad.stderr
