"""Interfaces page: disabling holds messages (shown as held), enabling delivers them;
the "where would this go" form; alerts shown until acknowledged, by division."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Alert, AuditEntry, InterfaceSwitch, OutboxMessage
from tests.support import wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    Client,
    add_operator,
    county_peer,
    new_case,
    served,
)


def _statuses(hub):
    with hub.transaction() as s:
        return [m.status for m in s.scalars(select(OutboxMessage))]


def test_disable_holds_and_enable_delivers(served, county_peer):  # noqa: F811
    hub = served.hub
    add_operator(hub, "root", ALL_FUNCTIONS)
    add_operator(hub, "op702", COUNTY_FUNCTIONS, ("511702",))
    c = Client(served.url)
    c.login("root")
    c.get("/admin/interfaces")
    ask = c.post("/admin/interfaces/switch", {"kind": "interface", "name": "county.rental_filing",
                                              "enabled": "0", "reason": "县平台维护"})
    # a confirmation first: nothing switched until the operator confirms
    assert 'id="switch-confirm"' in ask.text and "确定停用" in ask.text
    with hub.transaction() as s:
        assert s.get(InterfaceSwitch, ("interface", "county.rental_filing")) is None
    c.post("/admin/interfaces/switch", {"kind": "interface", "name": "county.rental_filing",
                                        "enabled": "0", "reason": "县平台维护", "confirm": "1"})
    hub.start_workers(threads=1)
    new_case(hub, ["511702"], "H-1")
    page = c.get("/admin/messages?status=held").text
    assert "暂停中" in page.split('id="message-list"')[1]
    assert 'class="num held">1<' in c.get("/admin/interfaces").text
    assert _statuses(hub) == ["pending"] and not county_peer.state.received
    # a county operator may look but not switch
    op = Client(served.url)
    op.login("op702")
    op.get("/admin/interfaces")
    assert op.post("/admin/interfaces/switch", {"kind": "interface", "enabled": "1",
                                                "name": "county.rental_filing"}
                   ).status_code == 403
    c.post("/admin/interfaces/switch", {"kind": "interface", "name": "county.rental_filing",
                                        "enabled": "1"})
    wait_until(lambda: _statuses(hub) == ["done"], what="delivered after enabling")
    with hub.transaction() as s:
        assert s.get(InterfaceSwitch, ("interface", "county.rental_filing")).enabled
        actions = [a.action for a in s.scalars(select(AuditEntry).where(
            AuditEntry.action.like("%_interface")).order_by(AuditEntry.id))]
    assert actions == ["disable_interface", "enable_interface"]


def test_where_would_this_go(served):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    c = Client(served.url)
    c.login("root")
    page = c.get("/admin/interfaces/route", params={"county": "511724",
                                                    "item": "rental_filing"}).text
    assert "county_smart" in page and "county_511724" in page
    page = c.get("/admin/interfaces/route", params={"county": "511724",
                                                    "item": "survey_review"}).text
    assert "manual_excel" in page and "人工" in page
    assert "未知区县 999999（不在达州市区划表中）" in c.get("/admin/interfaces/route", params={
        "county": "999999", "item": "rental_filing"}).text
    assert "未知事项 no_such（不在事项目录中）" in c.get("/admin/interfaces/route", params={
        "county": "511724", "item": "no_such"}).text


def test_alerts_until_acknowledged_by_division(served):  # noqa: F811
    hub = served.hub
    add_operator(hub, "root", ALL_FUNCTIONS)
    add_operator(hub, "op702", COUNTY_FUNCTIONS, ("511702",))
    with hub.transaction() as s:
        s.add(Alert(kind="dead_message", severity="critical", title="报文失败 702",
                    division="511702"))
        s.add(Alert(kind="bank_frozen", severity="critical", title="账户冻结 703",
                    division="511703"))
    op = Client(served.url)
    op.login("op702")
    page = op.get("/admin/").text
    assert "报文失败 702" in page and "账户冻结 703" not in page
    with hub.transaction() as s:
        other = s.scalars(select(Alert.id).where(Alert.division == "511703")).one()
        mine = s.scalars(select(Alert.id).where(Alert.division == "511702")).one()
    assert op.post(f"/admin/alerts/{other}/ack").status_code == 404
    op.post(f"/admin/alerts/{mine}/ack")
    assert "报文失败 702" not in op.get("/admin/").text
    root = Client(served.url)
    root.login("root")
    assert "账户冻结 703" in root.get("/admin/").text
    with hub.transaction() as s:
        assert s.get(Alert, mine).acknowledged_by == "op702"
        assert s.get(Alert, other).acknowledged_at is None
