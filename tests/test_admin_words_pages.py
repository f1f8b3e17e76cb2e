"""No raw catalogue code as visible text on the pages a clerk reads most — the dashboard,
a case, the interfaces page (with its "where would this go" answer and call log), the
messages, the manual queue and the audit trail — through the
real server, with a dead message so every section has rows. Codes stay findable in a
grey ``span.code``, a tooltip or a folded ``<details>``; the detector is the one of
tests/test_admin_words_time.py."""

from __future__ import annotations

from datetime import date

import lxml.html
from sqlalchemy import select

from store.calendar import watch_next_year
from store.models import Alert, CallLogEntry
from tests.test_admin_fixtures import county_peer, served  # noqa: F401  (fixtures)
from tests.test_admin_words_time import _dead, _signed_in, raw_codes, visible_text


def test_dashboard_case_and_interfaces_show_names_not_codes(served, county_peer):  # noqa: F811
    root = _signed_in(served)
    case, mid = _dead(served, county_peer, "PAGES-1")
    sub = case["subs"]["511702"]
    pages = {
        "dashboard": root.get("/admin/").text,
        "case": root.get(f"/admin/cases/{sub}").text,
        "interfaces": root.get("/admin/interfaces").text,
        "route": root.get("/admin/interfaces/route",
                          params={"county": "511702", "item": "rental_filing"}).text,
        "route-refused": root.get("/admin/interfaces/route",
                                  params={"county": "511702", "item": "no_such_item"}).text,
        "calls": root.get("/admin/calls").text,
    }
    with served.hub.transaction() as s:
        call_id = s.scalars(select(CallLogEntry.id).where(CallLogEntry.message_id == mid)).first()
    pages["call"] = root.get(f"/admin/calls/{call_id}").text
    for page, html in pages.items():
        assert raw_codes(visible_text(html)) == [], page
    # the dashboard's alert groups are open <details>: read (and checked) like the page
    assert f"消息 {mid}（房屋租赁备案 · 推送区县 → 通川区智慧平台）发送失败" \
        in visible_text(pages["dashboard"])
    # the codes are on the pages (so the check can fail), only not as visible text
    for page in ("case", "interfaces", "route", "calls", "call"):
        assert "county.rental_filing" in raw_codes(pages[page]) \
            or "county_511702" in raw_codes(pages[page]), page

    doc = lxml.html.fromstring(pages["interfaces"])
    row = doc.get_element_by_id("if-county.rental_filing")
    assert row.xpath("./td[1]")[0].text_content().split() == [
        "房屋租赁备案", "·", "推送区县", "county.rental_filing"]
    assert row.xpath("./td[1]/span[@class='code']")[0].text == "county.rental_filing"
    partner = doc.get_element_by_id("partner-county_511702").xpath("./td[1]")[0]
    assert partner.text_content().split() == ["通川区智慧平台", "county_511702"]
    route = lxml.html.fromstring(pages["route"]).get_element_by_id("route-result")
    shown = " ".join(visible_text(lxml.html.tostring(route, encoding="unicode")).split())
    assert "区县智慧平台接口" in shown and "通川区智慧平台" in shown and "自动" in shown
    assert "通川区 511702 的事项" not in shown  # a route was found: no refusal
    assert "未知事项 no_such_item（不在事项目录中）" in pages["route-refused"]

    # the dead message's alert: what happened and what to do, the error under a label
    with served.hub.transaction() as s:
        alert = s.scalars(select(Alert).where(Alert.ref == f"message:{mid}")).one()
    assert alert.title == (f"消息 {mid}（房屋租赁备案 · 推送区县 → 通川区智慧平台）发送失败："
                           "已尝试 5 次，已停止重试；请检查对方系统后在办件页“重新提交”")
    assert "503" in alert.detail  # the technical error as it came, shown under a label
    dash = lxml.html.fromstring(pages["dashboard"]).get_element_by_id(f"alert-{alert.id}")
    assert "最后错误：" in dash.text_content() and "请检查对方系统" in dash.text_content()


def test_the_hubs_own_advice_is_readable_on_the_dashboard(served):  # noqa: F811
    """An alert's detail the hub wrote (what to do) is not masked like a partner's text."""
    root = _signed_in(served)
    assert watch_next_year(served.hub.db, date(2040, 12, 1))
    with served.hub.transaction() as s:
        alert_id = s.scalars(select(Alert.id).where(Alert.kind == "calendar_missing")).one()
    row = lxml.html.fromstring(root.get("/admin/").text).get_element_by_id(f"alert-{alert_id}")
    shown = " ".join(row.text_content().split())
    assert "工作日历缺少 2041 年的节假日安排" in shown
    assert "请在“系统设置 → 工作日历”中录入国务院办公厅公布的 2041 年节假日及调休安排" in shown


def test_switch_notice_names_the_partner(served):  # noqa: F811
    root = _signed_in(served)
    root.get("/admin/interfaces")
    done = root.post("/admin/interfaces/switch", {"kind": "partner", "name": "county_511702",
                                                  "enabled": "0", "confirm": "1"})
    assert "已停用：通川区智慧平台" in done.text
    assert raw_codes(visible_text(done.text)) == []


def test_messages_manual_and_audit_show_names_not_codes(served, county_peer):  # noqa: F811
    root = _signed_in(served)
    case, mid = _dead(served, county_peer, "PAGES-2")
    root.get("/admin/interfaces")
    for enabled in ("0", "1"):  # two audit entries with a partner as their target
        assert root.post("/admin/interfaces/switch", {
            "kind": "partner", "name": "county_511702", "enabled": enabled,
            "confirm": "1"}).status_code == 200
    pages = {
        "messages": root.get("/admin/messages").text,
        "messages-dead": root.get("/admin/messages", params={
            "status": "dead", "interface": "county.rental_filing",
            "partner": "county_511702"}).text,
        "manual": root.get("/admin/manual").text,
        "audit": root.get("/admin/audit").text,
        "audit-one": root.get("/admin/audit", params={"action": "disable_interface"}).text,
    }
    for page, html in pages.items():
        assert raw_codes(visible_text(html), extra=("audit_actions",)) == [], page
    # the codes are on the pages, in tooltips and grey code spans (so the check can fail)
    for page in ("messages", "messages-dead", "audit"):
        assert {"county.rental_filing", "county_511702"} & set(raw_codes(pages[page])), page
    assert "disable_interface" in raw_codes(pages["audit"], extra=("audit_actions",))

    doc = lxml.html.fromstring(pages["messages-dead"])
    [row] = [r for r in doc.get_element_by_id("message-list").xpath("./tr[td]")
             if r.xpath("./td[1]")[0].text_content().strip() == str(mid)]
    shown = " ".join(visible_text(lxml.html.tostring(row, encoding="unicode")).split())
    assert "房屋租赁备案 · 推送区县" in shown and "通川区智慧平台" in shown and "已停止" in shown
    audit = lxml.html.fromstring(pages["audit-one"]).get_element_by_id("audit")
    [entry] = audit.xpath("./tr[td]")
    shown = " ".join(visible_text(lxml.html.tostring(entry, encoding="unicode")).split())
    assert "关闭接口" in shown and "通川区智慧平台" in shown, shown
    chosen = lxml.html.fromstring(pages["audit-one"]).xpath(
        "//select[@name='action']/option[@selected]")[0]
    assert chosen.get("value") == "disable_interface" and chosen.text == "关闭接口"
