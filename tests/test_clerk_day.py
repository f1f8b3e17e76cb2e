"""Acceptance walk (issue 13): a clerk's day in Chinese, in Debian's headless Chromium at
1366×768 — sign in, read the dashboard, open an alert's case, read its timeline,
resubmit a dead message, export and import the manual queue — and no raw catalogue code
(interface ids, message statuses, stage codes) as visible text outside the technical
sections (``<details>``, ``class="tech"``). Each page's screenshot goes to
``var/screenshots/`` for a reviewer.

The case page's business timeline and the dashboard's alert links come from the pages
branch (built in parallel): the checks of those are collected in ``AFTER_MERGE`` and
asserted at the end, so the rest of the day still runs and is checked on this branch.
"""

from __future__ import annotations

import io
import re
import shutil
import urllib.parse
import zipfile

import openpyxl
import pytest

from mapping.names import known
from tests.manual_jobs import export, export_zip, exported_sheet, import_page, saved
from tests.support import ROOT, wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    PASSWORD,
    add_operator,
    county_peer,
    new_case,
    served,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "var" / "screenshots"
MANUAL = "511725"  # 渠县: no API, the operators' queue

sync_api = pytest.importorskip("playwright.sync_api")

#: Visible text of the page without its technical sections.
VISIBLE = """() => {
  const body = document.body.cloneNode(true);
  // what a clerk reads: closed <details> (technical sections) and grey code spans are not
  body.querySelectorAll('details:not([open]), .tech, .code, script, style, [hidden]')
      .forEach(e => e.remove());
  document.documentElement.appendChild(body);
  const text = body.innerText;
  body.remove();
  return text;
}"""


def raw_codes() -> list[str]:
    """The catalogue's codes an operator must never read as a label."""
    codes = set(known("interfaces")) | set(known("message_statuses")) | set(known("stages"))
    return sorted(codes, key=len, reverse=True)


def codes_on(page) -> list[str]:  # type: ignore[no-untyped-def]
    text = page.evaluate(VISIBLE)
    return [c for c in raw_codes()
            if re.search(r"(?<![A-Za-z0-9_.])" + re.escape(c) + r"(?![A-Za-z0-9_])", text)]


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"clerk-{name}.png"), full_page=True)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_a_clerks_day_in_chinese(served, county_peer, browser, tmp_path):  # noqa: F811
    hub = served.hub
    add_operator(hub, "clerk", ALL_FUNCTIONS)
    county_peer.state.mode = "fail"  # 通川区's platform is down: a message dies
    smart = new_case(hub, ["511702"], "DAY-1")["subs"]["511702"]
    manual = new_case(hub, [MANUAL], "DAY-2")["subs"][MANUAL]
    hub.start_workers(threads=2)
    after_merge: list[str] = []
    page = browser.new_page(viewport={"width": 1366, "height": 768}, accept_downloads=True)

    # sign in
    page.goto(served.url + "/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", PASSWORD)
    shot(page, "01-login")
    page.click("#login-submit")
    page.wait_for_selector("text=首页统计")

    # the dashboard, once the message to 通川区 has died and raised its alert
    def alert_shown() -> bool:
        page.goto(served.url + "/admin/")
        return page.locator("#alerts").count() > 0
    wait_until(alert_shown, timeout=40, interval=0.5, what="the dead message's alert")
    shot(page, "02-dashboard")
    if found := codes_on(page):
        after_merge.append(f"dashboard shows raw codes {found}")

    # open the alert's case (the dashboard links it after the pages merge)
    link = page.locator(f"#alerts a[href*='/admin/cases/{smart}']")
    if link.count():
        link.first.click()
    else:
        after_merge.append("the dashboard's alert does not link its case")
        page.goto(f"{served.url}/admin/cases/{smart}")
    page.wait_for_selector("#needs-action")
    shot(page, "03-case")
    # its business timeline: 申请 first (受理/审批/办结 follow as the county works)
    timeline = page.locator("#timeline, [aria-label=办理进度], .business-timeline")
    if not timeline.count() or "申请" not in timeline.first.inner_text():
        after_merge.append("the case page has no business timeline starting with 申请")
    if found := codes_on(page):
        after_merge.append(f"case page shows raw codes {found}")

    # resubmit the dead message once the county is back
    county_peer.state.mode = "ok"
    page.click("#needs-action button.resubmit")
    assert "已重新提交 1 条" in page.inner_text("main")
    wait_until(lambda: [r.body["case_no"] for r in county_peer.state.received] == [smart],
               timeout=20, interval=0.3, what="delivery after resubmit")
    shot(page, "04-resubmitted")

    # the manual queue: export (one zip, named by county, item and date), fill, import
    page.goto(f"{served.url}/admin/manual?county={MANUAL}&item=rental_filing")
    assert manual in page.inner_text("#manual-queue")
    queue_link = page.locator(f"a[href='/admin/manual?county={MANUAL}']")
    assert queue_link.inner_text().endswith(" 1")
    shot(page, "05-manual")
    assert codes_on(page) == []
    page.click("button.manual-export >> nth=0")  # runs in the background: progress, notice
    page.wait_for_selector("#manual-jobs tr.job")
    assert "导出人工办理清单" in page.inner_text("#manual-jobs")
    page.wait_for_selector("#manual-progress:has-text('导出完成')", timeout=30000)
    assert page.inner_text("#manual-jobs .job-state") == "完成"
    assert page.inner_text("#manual-jobs .job-progress") == "1 / 1"
    shot(page, "06-exported")
    with page.expect_download() as got:
        page.click("#manual-progress a.job-download")
    download = got.value
    name = download.suggested_filename
    assert re.fullmatch(r"渠县-房屋租赁备案-\d{8}\.zip", name), name
    with zipfile.ZipFile(download.path()) as z:
        [xlsx] = [n for n in z.namelist() if n.endswith(".xlsx")]
        assert xlsx.startswith(f"manual-{MANUAL}-rental_filing-")
        wb = openpyxl.load_workbook(io.BytesIO(z.read(xlsx)))
    ws = wb["房屋租赁备案"]
    header = [c.value for c in ws[1]]
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == manual)
    ws.cell(row, header.index("新环节") + 1, "不予受理")
    ws.cell(row, header.index("意见") + 1, "材料不全")
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)
    page.set_input_files("#manual-import input[type=file]", str(filled))
    page.click("#manual-import button[type=submit]")
    page.wait_for_selector("#import-report")
    assert "导入完成：应用 1 行" in page.inner_text("#import-report")
    # the counts are right after the import: 渠县 has nothing left
    assert page.locator(f"a[href='/admin/manual?county={MANUAL}']").inner_text().endswith(" 0")
    shot(page, "07-imported")
    assert codes_on(page) == []

    # a workbook with a mistake: the error names the column and says what to do
    ws.cell(row, header.index("新环节") + 1, "办完了")
    wb.save(filled)
    page.set_input_files("#manual-import input[type=file]", str(filled))
    page.click("#manual-import button[type=submit]")
    errors = page.inner_text("#import-errors")
    assert "新环节" in errors and "请从下拉列表选择" in errors
    shot(page, "08-import-error")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366

    assert not after_merge, "needs the pages branch (timeline, alert links, names): " + \
        "; ".join(after_merge)


def test_export_filename_is_ascii_safe_with_rfc5987(served):  # noqa: F811
    from tests.test_admin_fixtures import Client

    add_operator(served.hub, "clerk", ALL_FUNCTIONS)
    new_case(served.hub, [MANUAL], "NAME-1")
    c = Client(served.url)
    c.login("clerk")
    resp = export_zip(c, county=MANUAL, item="rental_filing")
    disposition = resp.headers["Content-Disposition"]
    plain, star = disposition.split("; ")[1:]
    assert re.fullmatch(r'filename="manual-511725-rental_filing-\d{8}\.zip"', plain)
    assert disposition.isascii()
    assert urllib.parse.unquote(star.removeprefix("filename*=UTF-8''")).startswith(
        "渠县-房屋租赁备案-")
    with zipfile.ZipFile(io.BytesIO(resp.content)) as z:
        names = z.namelist()
    assert any(n.endswith(".xlsx") for n in names)
    assert not any(n.endswith(".zip") for n in names)  # materials are a folder, not a zip
    # a county that is not manual, or an unknown item: nothing exported
    assert export(c, county="511702").status_code == 404
    assert export(c, item="nope").status_code == 404


def test_queue_counts_are_right_after_an_import(served, tmp_path):  # noqa: F811
    """Over HTTP (no browser): the page after an import counts the queue anew."""
    from tests.test_admin_fixtures import Client

    add_operator(served.hub, "clerk", ALL_FUNCTIONS)
    first = new_case(served.hub, [MANUAL], "COUNT-1")["subs"][MANUAL]
    new_case(served.hub, [MANUAL], "COUNT-2")
    c = Client(served.url)
    c.login("clerk")
    link = f'href="/admin/manual?county={MANUAL}">渠县 '
    assert link + "2<" in c.get("/admin/manual").text
    wb, ws, header = exported_sheet(export_zip(c, county=MANUAL).content)
    row = next(r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value == first)
    ws.cell(row, header.index("新环节") + 1, "不予受理")
    page = import_page(c, saved(wb))
    assert "导入完成：应用 1 行" in page
    assert link + "1<" in page  # one case left, counted after the import
