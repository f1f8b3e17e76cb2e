"""Resubmission from the admin page: dry run, one message, a filter, double clicks and
overlapping bulk runs never send twice; reprocess re-queues a county delivery."""

from __future__ import annotations

import threading

from sqlalchemy import select

from store.models import AuditEntry, OutboxMessage
from tests.support import wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    Client,
    add_operator,
    client,
    county_peer,
    new_case,
    served,
)


def _messages(hub, status=None):
    with hub.transaction() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.interface.like("county.%"))
        if status:
            stmt = stmt.where(OutboxMessage.status == status)
        return list(s.scalars(stmt.order_by(OutboxMessage.id)))


def _dead_cases(served, county_peer, n):  # noqa: F811
    county_peer.state.mode = "reject"  # a permanent failure parks at once
    for i in range(n):
        new_case(served.hub, ["511702"], f"R-{i}")
    served.hub.start_workers(threads=2)
    wait_until(lambda: len(_messages(served.hub, "dead")) == n, what="dead messages")
    county_peer.state.mode = "ok"
    return [m.id for m in _messages(served.hub, "dead")]


def test_dry_run_then_filter_resubmit_delivers_once(served, county_peer):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    ids = _dead_cases(served, county_peer, 3)
    c = Client(served.url)
    c.login("root")
    c.get("/admin/messages?status=dead")
    preview = c.post("/admin/messages/resubmit", {"status": "dead", "division": "511702",
                                                  "dry_run": "1"})
    assert 'id="preview-count">3<' in preview.text
    assert [m.status for m in _messages(served.hub)] == ["dead"] * 3  # nothing moved
    done = c.post("/admin/messages/resubmit", {"status": "dead", "division": "511702",
                                               "confirm_filter": "1", "id": ids})
    assert "已重新提交 3 条" in done.text
    wait_until(lambda: len(_messages(served.hub, "done")) == 3, what="delivered")
    assert county_peer.state.ids() == {str(i): 1 for i in ids}
    assert {m.resubmitted_by for m in _messages(served.hub)} == {"root"}
    with served.hub.transaction() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "resubmit")).one()


def test_overlapping_clicks_never_send_twice(served, county_peer):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    add_operator(served.hub, "op702", COUNTY_FUNCTIONS, ("511702",))
    ids = _dead_cases(served, county_peer, 4)
    clients = []
    for name in ("root", "op702", "root", "op702"):
        cl = Client(served.url)
        cl.login(name)
        cl.get("/admin/messages")
        clients.append(cl)
    start = threading.Barrier(len(clients))
    answers: list[str] = []

    def click(cl: Client) -> None:
        start.wait()
        answers.append(cl.post("/admin/messages/resubmit", {
            "status": "dead", "confirm_filter": "1", "division": "511702"}).text)

    threads = [threading.Thread(target=click, args=(cl,)) for cl in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum("已重新提交 4 条" in a for a in answers) == 1
    wait_until(lambda: len(_messages(served.hub, "done")) == 4, what="delivered")
    assert county_peer.state.ids() == {str(i): 1 for i in ids}
    assert all(m.resubmit_count == 1 for m in _messages(served.hub))


def test_county_operator_cannot_resubmit_another_countys_message(served, county_peer):  # noqa: F811
    add_operator(served.hub, "op703", COUNTY_FUNCTIONS, ("511703",))
    [mid] = _dead_cases(served, county_peer, 1)
    c = Client(served.url)
    c.login("op703")
    c.get("/admin/messages")
    assert c.post("/admin/messages/resubmit", {"id": mid, "division": "511702"}).status_code \
        == 404
    c.post("/admin/messages/resubmit", {"id": mid})  # narrowed to its own county
    assert _messages(served.hub)[0].status == "dead"


def test_reprocess_requeues_county_delivery_once(served, county_peer):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    case = new_case(served.hub, ["511702"], "P-1")  # workers not started: stays pending
    sub = case["subs"]["511702"]
    c = Client(served.url)
    c.login("root")
    c.get(f"/admin/cases/{sub}")
    refused = c.post(f"/admin/cases/{sub}/reprocess").text
    assert "已在队列中，不会重复发送" in refused
    served.hub.start_workers(threads=1)
    wait_until(lambda: len(_messages(served.hub, "done")) == 1, what="first delivery")
    served.hub.workers.stop()  # hold the next one in the queue while we click twice
    page = c.post(f"/admin/cases/{sub}/reprocess").text
    assert "已重新排队投递到区县" in page
    assert "已在队列中" in c.post(f"/admin/cases/{sub}/reprocess").text
    assert len(_messages(served.hub)) == 2
    served.hub.start_workers(threads=1)
    wait_until(lambda: len(_messages(served.hub, "done")) == 2, what="second delivery")
    bodies = [r.body["case_no"] for r in county_peer.state.received]
    assert bodies == [sub, sub]
