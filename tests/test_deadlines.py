"""Due dates on every sub-case: promised working days (county's, else the item's, else
the configured default) counted on the store's calendar from receipt, in Beijing time,
fixed at receipt; 受理 and 办结 record whether they came on time. Through the real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from mapping.workdays import WorkCalendar, due_at, package_year
from store.admin_models import AdminItemSetting
from store.calendar import load, save_year, seed_from_package
from store.calendar_models import DivisionDeadline
from store.models import Case, StageEvent, utcnow
from tests.county_support import event, post_signed
from tests.hubserver import application, province_env

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url, deadlines={"default_promised_days": 5},
                     inbound=["province", "county_smart"])
    seed_from_package(e.hub.db)
    with e.hub.transaction() as s:  # the years a test run today can reach, weekends only
        known = load(s).years
        for year in range(utcnow().year, utcnow().year + 2):
            if year not in known:
                save_year(s, year, [], "test")
    e.hub.overrides.reload()
    yield e
    e.close()


def subs_of(hub, apply_no: str) -> dict[str, Case]:
    with hub.transaction() as s:
        return {c.county_code: c for c in s.scalars(
            select(Case).where(Case.apply_no == apply_no, Case.parent_id.is_not(None)))}


def expected_due(hub, received: datetime, days: int) -> datetime:
    with hub.transaction() as s:
        cal = load(s)
    local = received.replace(tzinfo=UTC).astimezone(BEIJING).date()
    last = cal.add(local, days)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=BEIJING)
    return end.astimezone(UTC).replace(tzinfo=None)


def test_every_sub_case_gets_its_due_time_at_receipt(env):
    with env.hub.transaction() as s:
        s.add(AdminItemSetting(item="rental_filing", promised_days=3))
        s.add(DivisionDeadline(county_code="511725", item="rental_filing", promised_days=10))
    env.hub.overrides.reload()
    ans = env.client.submit("rental_filing", application(apply_no="D-1",
                                                         counties=("511702", "511725")))
    assert ans.body["code"] == "0000", ans.body
    subs = subs_of(env.hub, "D-1")
    assert subs["511702"].promised_days == 3  # the item's promise
    assert subs["511725"].promised_days == 10  # the county's own
    for sub in subs.values():
        assert sub.due_at == expected_due(env.hub, sub.created_at, sub.promised_days)
        assert sub.due_at > sub.created_at
    # a later change of the promise applies to cases received after it, not before
    with env.hub.transaction() as s:
        s.get(AdminItemSetting, "rental_filing").promised_days = 1
    env.hub.overrides.reload()
    env.client.submit("rental_filing", application(apply_no="D-2"))
    assert subs_of(env.hub, "D-2")["511702"].promised_days == 1
    assert subs_of(env.hub, "D-1")["511702"].promised_days == 3


def test_the_default_applies_and_sync_queries_have_no_deadline(env):
    env.client.submit("rental_filing", application(apply_no="D-3"))
    assert subs_of(env.hub, "D-3")["511702"].promised_days == 5
    env.county.state.answers["presale_contract_verify"] = {"filed": True}
    ans = env.client.submit("presale_contract_verify",
                            application("presale_contract_verify", apply_no="D-4"))
    assert ans.body["code"] == "0000", ans.body
    [sub] = subs_of(env.hub, "D-4").values()
    assert sub.promised_days is None and sub.due_at is None


def test_accepted_and_completed_record_whether_they_were_on_time(env):
    """Stages are reported once they happened (no later than 300 s ahead of the hub's
    clock): the case is made ten days old, due three days ago, so that an acceptance
    five minutes after it came in is on time and a completion a minute ago is late."""
    env.client.submit("rental_filing", application(apply_no="D-5"))
    sub = subs_of(env.hub, "D-5")["511702"]
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with env.hub.transaction() as s:
        s.execute(update(Case).where(Case.id == sub.id).values(
            created_at=now - timedelta(days=10), due_at=now - timedelta(days=3)))
    on_time_at = (now - timedelta(days=10, minutes=-5)).replace(tzinfo=UTC)
    late_at = (now - timedelta(minutes=1)).replace(tzinfo=UTC)
    for stage, at in (("accepted", on_time_at), ("completed", late_at)):
        body = event(sub.case_no, "rental_filing", "511702", stage, at=at.isoformat(),
                     filing_no="ZL-2026-0001" if stage == "completed" else None)
        r = post_signed(env.server.url, "/api/county/v1/events", body, "county_511702")
        assert r.json()["code"] == "0000", r.text
    with env.hub.transaction() as s:
        got = dict(s.execute(select(StageEvent.stage, StageEvent.on_time)
                             .where(StageEvent.case_id == sub.id)).all())
    assert got == {"accepted": True, "completed": False}


def test_a_year_without_calendar_data_leaves_no_due_time_but_takes_the_case(make_hub,
                                                                             store_url):
    e = province_env(make_hub, store_url, deadlines={"default_promised_days": 5})
    try:  # nothing seeded: the store's calendar is empty
        ans = e.client.submit("rental_filing", application(apply_no="D-6"))
        assert ans.body["code"] == "0000"
        sub = subs_of(e.hub, "D-6")["511702"]
        assert sub.promised_days == 5 and sub.due_at is None
    finally:
        e.close()


def test_the_calendar_used_is_the_real_2026_one():
    cal = WorkCalendar.of([2026], package_year(2026) or [])
    received = datetime(2026, 9, 18, 2, 0)  # Friday 10:00 Beijing
    assert due_at(cal, received, 3, BEIJING) == datetime(2026, 9, 22, 16, 0)  # Tue 24:00


def _last_day(due: datetime) -> datetime:
    """The local working day a due time (naive UTC, the end of that day) belongs to."""
    return (due.replace(tzinfo=UTC).astimezone(BEIJING) - timedelta(days=1)).date()


def test_entering_a_missing_year_counts_the_waiting_cases_due_times(make_hub, store_url):
    """December: cases whose promise crosses New Year are taken before next year's
    arrangement is entered, with no due time. Once an operator enters the years, the
    open ones get theirs (the promise fixed at receipt); a closed one keeps none; a
    later correction of a year the count passes through moves the due time."""
    from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

    e = province_env(make_hub, store_url, deadlines={"default_promised_days": 5})
    try:  # nothing seeded: the store's calendar holds no year yet
        for apply_no in ("D-7", "D-8"):
            assert e.client.submit("rental_filing",
                                   application(apply_no=apply_no)).body["code"] == "0000"
        waiting, closed = subs_of(e.hub, "D-7")["511702"], subs_of(e.hub, "D-8")["511702"]
        assert waiting.due_at is None and closed.due_at is None
        with e.hub.transaction() as s:
            s.execute(update(Case).where(Case.id == closed.id).values(stage="completed"))
        add_operator(e.hub, "admin", ALL_FUNCTIONS + ("manage_settings",))
        c = Client(e.server.url)
        c.login("admin")
        page = c.get(f"/admin/cases/{waiting.case_no}").text
        assert "承诺 5 个工作日，办结期限待录入工作日历后自动计算" in page
        this_year = utcnow().year  # a 5-day count from today may reach the next one too
        saved = [c.post("/admin/settings/calendar", {"year": str(year), "days": ""}).text
                 for year in (this_year, this_year + 1)]
        assert any("件在办案件的办结期限已按新日历重新计算" in page for page in saved), saved
        waiting = subs_of(e.hub, "D-7")["511702"]
        assert waiting.due_at == expected_due(e.hub, waiting.created_at, 5)
        assert subs_of(e.hub, "D-8")["511702"].due_at is None  # closed: not recounted
        assert "应于" in c.get(f"/admin/cases/{waiting.case_no}").text

        # the operator declares the case's last day a holiday: one working day later
        last = _last_day(waiting.due_at)
        page = c.post("/admin/settings/calendar", {
            "year": str(last.year), "days": f"{last.isoformat()} 休 测试"}).text
        assert "1 件在办案件的办结期限已按新日历重新计算" in page, page
        moved = subs_of(e.hub, "D-7")["511702"].due_at
        assert moved == expected_due(e.hub, waiting.created_at, 5) and moved > waiting.due_at
        with e.hub.transaction() as s:
            assert not load(s).is_workday(last)
    finally:
        e.close()


def test_the_daily_calendar_job_counts_what_another_process_could_not(make_hub, store_url):
    """A year saved while another process took cases on its older snapshot: the
    scheduler's daily calendar job (and its run at start-up) counts those cases."""
    from scheduler import watch_calendar

    e = province_env(make_hub, store_url, deadlines={"default_promised_days": 5})
    try:
        e.client.submit("rental_filing", application(apply_no="D-9"))
        assert subs_of(e.hub, "D-9")["511702"].due_at is None
        with e.hub.transaction() as s:  # as another process's operator page did
            for year in range(utcnow().year, utcnow().year + 2):
                save_year(s, year, [], "test")
        watch_calendar(e.hub)
        sub = subs_of(e.hub, "D-9")["511702"]
        assert sub.due_at == expected_due(e.hub, sub.created_at, 5)
    finally:
        e.close()


def test_saving_a_year_recounts_only_the_counts_through_its_changed_days(env):
    """A correction read every open case of the year inside the save's transaction (on
    SQLite, the one writer's lock): only counts through the changed days are read now,
    and a year saved unchanged reads none but those with no due time."""
    from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

    env.client.submit("rental_filing", application(apply_no="D-10"))
    sub = subs_of(env.hub, "D-10")["511702"]
    marked = sub.due_at + timedelta(days=100)  # what a recount of it would put right
    with env.hub.transaction() as s:
        s.execute(update(Case).where(Case.id == sub.id).values(due_at=marked))
    add_operator(env.hub, "admin", ALL_FUNCTIONS + ("manage_settings",))
    c = Client(env.server.url)
    c.login("admin")
    year = utcnow().year + 1
    far = datetime(year, 12, 1).date()
    while far.weekday() >= 5:
        far += timedelta(days=1)
    for days in ("", f"{far.isoformat()} 休 测试"):  # unchanged; a day after its count
        page = c.post("/admin/settings/calendar", {"year": str(year), "days": days}).text
        assert "已保存" in page and "重新计算" not in page, page
        assert subs_of(env.hub, "D-10")["511702"].due_at == marked  # not read
    received = sub.created_at.replace(tzinfo=UTC).astimezone(BEIJING).date()
    inside = received + timedelta(days=1)  # a day its count passes through
    while inside.weekday() >= 5:
        inside += timedelta(days=1)
    c.post("/admin/settings/calendar", {"year": str(inside.year),
                                        "days": f"{inside.isoformat()} 休 测试"})
    assert subs_of(env.hub, "D-10")["511702"].due_at == expected_due(env.hub, sub.created_at, 5)
