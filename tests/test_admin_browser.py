"""In real headless Chromium (Debian's, driven by Playwright): sign in, find a failed
case, open its journey, resubmit it after the county peer is back, see it delivered;
a county operator cannot open another county's case by URL."""

from __future__ import annotations

import shutil

import pytest

from tests.support import wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    PASSWORD,
    add_operator,
    county_peer,
    new_case,
    served,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/admin/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("text=首页统计")


def test_find_failed_case_resubmit_and_see_it_delivered(served, county_peer, browser):  # noqa: F811
    hub = served.hub
    add_operator(hub, "root", ALL_FUNCTIONS)
    county_peer.state.mode = "fail"  # the county platform is down
    case = new_case(hub, ["511702"], "BROWSER-1")
    sub = case["subs"]["511702"]
    hub.start_workers(threads=2)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    _sign_in(page, served.url, "root")
    # the dead message shows on the messages page once the retries are used up
    def dead_listed() -> bool:
        page.goto(served.url + "/admin/messages?status=dead")
        return "房屋租赁备案 · 推送区县" in page.inner_text("#message-list")
    wait_until(dead_listed, timeout=30, interval=0.5, what="a dead message")
    page.click("text=办件查询")
    page.fill("input[name=apply_no]", "BROWSER-1")
    page.click("#case-search button[type=submit]")
    page.click(f"#case-results a:text('{sub}')")
    assert page.inner_text("#messages-attention .status") == "已停止"
    page.click("#technical > summary")  # the technical log, folded under the timeline
    journey = page.inner_text("#journey")
    assert "拆分子办件 → 511702" in journey and "503" in page.content()
    # the county is back; resubmit from the case page
    county_peer.state.mode = "ok"
    page.click("#messages-attention button.resubmit")
    assert "已重新提交 1 条报文" in page.inner_text("main")

    def delivered() -> bool:
        page.reload()
        page.click("#technical > summary")
        return page.inner_text("#messages .status") == "已送达"
    wait_until(delivered, timeout=20, interval=0.3, what="delivery after resubmit")
    assert [r.body["case_no"] for r in county_peer.state.received] == [sub]
    assert "root" in page.inner_text("#messages")  # who resubmitted, shown on the case
    assert page.query_selector("#needs-action") is None  # nothing left to do
    # the layout fits a 1366-wide screen: no horizontal scrolling (case page, dashboard)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    page.goto(served.url + "/admin/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366


def test_county_operator_cannot_open_another_countys_case(served, browser):  # noqa: F811
    hub = served.hub
    add_operator(hub, "op703", COUNTY_FUNCTIONS, ("511703",))
    other = new_case(hub, ["511702"], "OTHER-1")["subs"]["511702"]
    own = new_case(hub, ["511703"], "OWN-1")["subs"]["511703"]
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    _sign_in(page, served.url, "op703")
    resp = page.goto(f"{served.url}/admin/cases/{other}")
    assert resp.status == 404 and "OTHER-1" not in page.content()
    assert "没有找到" in page.inner_text("main")
    resp = page.goto(f"{served.url}/admin/cases/{own}")
    assert resp.status == 200 and "OWN-1" in page.content()
