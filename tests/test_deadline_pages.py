"""办件时限 through the real server: overdue and due-soon lists scoped by division, the
Excel export (text cells, Beijing time), the on-time rates, the daily digest alert per
county, and the page in real Chromium at 1366×768."""

from __future__ import annotations

import io
import shutil
from datetime import date, timedelta

import openpyxl
import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from admin.deadlines import daily_digest
from store.calendar import load, save_year, seed_from_package
from store.models import Alert, Case, utcnow
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    PASSWORD,
    Client,
    add_operator,
    county_peer,
    new_case,
    served,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _calendar_ready(hub) -> None:
    seed_from_package(hub.db)
    with hub.transaction() as s:
        known = load(s).years
        for year in range(utcnow().year, utcnow().year + 2):
            if year not in known:
                save_year(s, year, [], "test")
    hub.overrides.reload()


def _cases(hub) -> dict[str, str]:
    """Three open sub-cases: 511702 overdue, 511703 overdue, 511702 due in a month."""
    _calendar_ready(hub)
    made = {
        "late-702": new_case(hub, ["511702"], "DL-1")["subs"]["511702"],
        "late-703": new_case(hub, ["511703"], "DL-2")["subs"]["511703"],
        "soon-702": new_case(hub, ["511702"], "DL-3")["subs"]["511702"],
    }
    now = utcnow()
    with hub.transaction() as s:
        for key, case_no in made.items():
            due = now - timedelta(days=2) if key.startswith("late-") else now + timedelta(days=30)
            s.execute(update(Case).where(Case.case_no == case_no).values(due_at=due))
    return made


def test_a_county_operator_sees_only_their_countys_overdue_cases(served):  # noqa: F811
    made = _cases(served.hub)
    add_operator(served.hub, "city", ALL_FUNCTIONS)
    add_operator(served.hub, "tc", COUNTY_FUNCTIONS, divisions=("511702",))
    city, tc = Client(served.url), Client(served.url)
    city.login("city")
    tc.login("tc")
    page = city.get("/admin/deadlines").text
    assert made["late-702"] in page and made["late-703"] in page
    assert made["soon-702"] not in page  # due in a month: not in the warning window
    assert "已逾期" in page and "办件时限" in page
    assert "已逾期 2 件" in city.get("/admin/").text  # the dashboard's summary
    assert "已逾期 1 件" in tc.get("/admin/").text
    mine = tc.get("/admin/deadlines").text
    assert made["late-702"] in mine and made["late-703"] not in mine
    assert tc.get("/admin/deadlines?county=511703").status_code == 404
    assert tc.get("/admin/deadlines?item=no_such_item").status_code == 404
    # the export holds the same rows, as text, in Beijing time
    resp = tc.get("/admin/deadlines.xlsx")
    assert resp.status_code == 200
    wb = load_workbook(io.BytesIO(resp.content))
    rows = list(wb["逾期及即将到期"].iter_rows(values_only=True))
    assert rows[0][:2] == ("状态", "案件编号")
    assert [r[1] for r in rows[1:]] == [made["late-702"]]
    assert rows[1][0] == "已逾期" and rows[1][2] == "通川区" and rows[1][3] == "房屋租赁备案"
    with served.hub.transaction() as s:
        due = s.scalar(select(Case.due_at).where(Case.case_no == made["late-702"]))
    assert rows[1][7] == (due + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")


def test_the_daily_digest_alerts_once_per_county_and_day(served):  # noqa: F811
    _cases(served.hub)
    hub = served.hub
    with hub.transaction() as s:
        first = daily_digest(s, hub.overrides.current().calendar, utcnow(), 2, hub.overrides.tz,
                             dict(hub.city.counties))
    with hub.transaction() as s:
        again = daily_digest(s, hub.overrides.current().calendar, utcnow(), 2, hub.overrides.tz,
                             dict(hub.city.counties))
        alerts = s.scalars(select(Alert).where(Alert.kind == "case_overdue")
                           .order_by(Alert.division)).all()
    assert first == ["511702", "511703"] and again == []
    assert [(a.division, a.title) for a in alerts] == [
        ("511702", "通川区：1 件办件已逾期，0 件即将到期"),
        ("511703", "达川区：1 件办件已逾期，0 件即将到期")]


def test_on_time_rates_by_county_item_and_month(served):  # noqa: F811
    made = _cases(served.hub)
    add_operator(served.hub, "city", ALL_FUNCTIONS)
    hub = served.hub
    from store.cases import find_case, record_stage

    with hub.transaction() as s:
        for key in ("late-702", "soon-702"):
            case = find_case(s, made[key])
            record_stage(s, hub, case, "accepted", push=False)
            record_stage(s, hub, case, "completed", filing_no="F-1", push=False)
    c = Client(served.url)
    c.login("city")
    page = c.get("/admin/deadlines").text
    table = page.split('id="on-time-rates"')[1].split("</table>")[0]
    assert "通川区" in table and "50.0%" in table  # one of two 办结 by its due time


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed")
def test_the_deadline_page_in_chromium(served):  # noqa: F811
    sync_api = pytest.importorskip("playwright.sync_api")
    made = _cases(served.hub)
    add_operator(served.hub, "tc", COUNTY_FUNCTIONS, divisions=("511702",))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(served.url + "/admin/")
            page.fill("input[name=username]", "tc")
            page.fill("input[name=password]", PASSWORD)
            page.click("#login-submit")
            page.click("nav >> text=办件时限")
            listed = page.inner_text("#deadline-list")
            assert made["late-702"] in listed and made["late-703"] not in listed
            assert "已逾期" in listed
            with page.expect_download() as dl:
                page.click("#deadlines-export")
            assert dl.value.suggested_filename.startswith("deadlines-all-all-")
            book = openpyxl.load_workbook(io.BytesIO(dl.value.path().read_bytes()))
            cells = {str(c) for row in book.active.iter_rows(values_only=True) for c in row}
            assert made["late-702"] in cells and made["late-703"] not in cells  # scoped
            assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        finally:
            browser.close()


def test_an_operator_enters_next_years_calendar(served):  # noqa: F811
    hub = served.hub
    seed_from_package(hub.db)
    add_operator(hub, "admin", ALL_FUNCTIONS + ("manage_settings",))
    add_operator(hub, "tc", COUNTY_FUNCTIONS, divisions=("511702",))
    c = Client(served.url)
    c.login("admin")
    page = c.get("/admin/settings/calendar?year=2027").text
    assert "2027 年（尚未录入）" in page and "软件包（国务院通知）" in page
    bad = c.post("/admin/settings/calendar", {"year": "2027",
                                              "days": "2027-01-01 休 元旦\n2027-01-02 休 周末"})
    assert "未保存" in bad.text and "周末" in bad.text
    with hub.transaction() as s:
        assert 2027 not in load(s).years  # refused: nothing saved
    ok = c.post("/admin/settings/calendar", {
        "year": "2027", "days": "2027-01-01 休 元旦\r\n2027-02-06 班 春节\r\n"})
    assert "已保存 2027 年工作日历" in ok.text
    with hub.transaction() as s:
        cal = load(s)
        audited = s.scalars(select(Alert)).all()  # (no alert: the year is there now)
    assert cal.is_workday(date(2027, 2, 6))
    assert not cal.is_workday(date(2027, 1, 1))
    assert audited == []
    assert hub.overrides.current().calendar.is_workday(date(2027, 2, 6))
    t = Client(served.url)
    t.login("tc")
    assert t.get("/admin/settings/calendar").status_code == 403
