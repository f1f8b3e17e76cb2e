"""The outbox against a real loopback peer: delivery, retries, parking, holding,
leases and resubmission — on SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from adapters.dispatch import Dispatcher
from routes.policy import RetryPolicy
from store.models import Alert, CallLogEntry, InterfaceSwitch, OutboxMessage, utcnow
from store.outbox import MessageFilter, NewMessage, counts_by_status, resubmit
from tests.support import wait_until

FAST = RetryPolicy(max_attempts=3, min_backoff=0.0, max_backoff=0.0, jitter=0.0)


def loopback_hub(make_hub, store_url, *peers):
    partners = {f"peer{i}": {"base_url": p.url + f"/p{i}"} for i, p in enumerate(peers)}
    return make_hub(store_url, partners=partners)


def put(hub, partner="peer0", n=1, policy=FAST, payload=None, interface="loopback.post"):
    ids = []
    with hub.transaction() as s:
        for i in range(n):
            ids.append(hub.enqueue(s, NewMessage(
                interface=interface, adapter="http", partner=partner, operation="msg",
                payload=payload or {"n": i, "applicant": {"id_no": "11010519491231002X"}},
                policy=policy, timeout=5, division="511702", item="rental_filing")))
    return ids


def drain(hub, worker="w1", rounds=50):
    d = Dispatcher(hub, worker)
    total = 0
    for _ in range(rounds):
        n = d.run_once()
        total += n
        if n == 0:
            break
    return total


def status_of(hub, mid):
    with hub.transaction() as s:
        return s.get(OutboxMessage, mid)


def test_delivers_signed_and_logs_each_call(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    ids = put(hub, n=3)
    assert drain(hub) == 3
    got = peer.state.received
    assert sorted(int(r.message_id) for r in got) == ids
    assert {r.app_id for r in got} == {"cityhub_511700"}
    assert got[0].path == "/p0/msg"
    assert all(status_of(hub, i).status == "done" for i in ids)
    with hub.transaction() as s:
        logs = s.scalars(select(CallLogEntry).where(CallLogEntry.direction == "out")).all()
        assert len(logs) == 3 and {x.outcome for x in logs} == {"ok"}
        # personal data is sealed at rest, in the outbox and in the call log
        raw = s.get(OutboxMessage, ids[0]).payload_enc + logs[0].request_enc
        assert b"11010519491231002X" not in raw
        opened = hub.cipher.open_json(logs[0].request_enc)
        assert opened["applicant"]["id_no"] == "11010519491231002X"


def test_failure_retries_then_succeeds(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    peer.state.mode = "fail"
    [mid] = put(hub)
    drain(hub, rounds=1)
    row = status_of(hub, mid)
    assert row.status == "pending" and row.attempts == 1 and "503" in row.last_error
    peer.state.mode = "ok"
    drain(hub)
    row = status_of(hub, mid)
    assert row.status == "done" and row.attempts == 2


def test_exhausted_and_permanent_failures_are_parked(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    peer.state.mode = "fail"
    [retried] = put(hub)
    drain(hub)
    row = status_of(hub, retried)
    assert row.status == "dead" and row.attempts == 3
    assert row.last_error.startswith("gave up after 3 attempts")
    peer.state.mode = "reject"
    [rejected] = put(hub)
    drain(hub)
    row = status_of(hub, rejected)
    assert row.status == "dead" and row.attempts == 1 and row.last_error.startswith("permanent")
    with hub.transaction() as s:  # each parked message raises an alert for the operators
        alerts = s.scalars(select(Alert).order_by(Alert.id)).all()
    assert [(a.kind, a.ref, a.division) for a in alerts] == [
        ("dead_message", f"message:{retried}", "511702"),
        ("dead_message", f"message:{rejected}", "511702")]
    assert "2002" in alerts[1].detail
    # in words an operator reads: what happened, and what to do
    assert f"消息 {retried}（" in alerts[0].title and "已尝试 3 次，已停止重试" in alerts[0].title
    assert "对方拒绝接收，已停止重试" in alerts[1].title
    assert all(a.title.endswith("请检查对方系统后在办件页“重新提交”") for a in alerts)


def test_an_odd_answer_is_recorded_bounded_and_retried_to_its_end(make_hub, store_url, peer):
    """A peer's ``code`` of 17 characters did not fit PostgreSQL's call-log column: the
    outcomes of the whole batch failed to record, the rows stayed in flight and went out
    again at every lease's end, never parked. The row is recorded (code cut to 16, a
    failure's answer kept to 256 KB) and the message parked after its attempts."""
    from store.calllog import MAX_LOGGED_BODY
    from store.models import CallLogEntry

    hub = loopback_hub(make_hub, store_url, peer)
    peer.state.mode = "odd"
    [odd] = put(hub)
    drain(hub)
    row = status_of(hub, odd)
    assert row.status == "dead" and row.attempts == 3, (row.status, row.attempts)
    with hub.transaction() as s:
        calls = s.scalars(select(CallLogEntry).where(CallLogEntry.message_id == odd)).all()
    assert len(calls) == 3 and {c.code for c in calls} == {"5" * 16}
    for c in calls:
        kept = hub.cipher.open_json(c.response_enc)
        assert kept["truncated"] is True and len(kept["text"]) == MAX_LOGGED_BODY


def test_parked_message_does_not_block_others(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    peer.state.mode = "reject"
    [bad] = put(hub)
    drain(hub)
    peer.state.mode = "ok"
    later = put(hub, n=5)
    drain(hub)
    assert status_of(hub, bad).status == "dead"
    assert all(status_of(hub, i).status == "done" for i in later)


def test_disabled_interface_and_partner_hold_messages(make_hub, store_url, make_peer):
    a, b = make_peer(), make_peer()
    hub = loopback_hub(make_hub, store_url, a, b)
    with hub.transaction() as s:
        s.add(InterfaceSwitch(kind="partner", name="peer0", enabled=False, changed_by="op"))
    held = put(hub, "peer0", n=2)
    flowing = put(hub, "peer1", n=2)
    drain(hub)
    assert [status_of(hub, i).status for i in held] == ["pending", "pending"]
    assert [status_of(hub, i).attempts for i in held] == [0, 0]
    assert all(status_of(hub, i).status == "done" for i in flowing)
    with hub.transaction() as s:
        assert counts_by_status(s)["held"] == 2
        s.execute(update(InterfaceSwitch).values(enabled=True))
    drain(hub)
    assert all(status_of(hub, i).status == "done" for i in held)
    assert len(a.state.received) == 2


def test_expired_lease_is_claimed_again(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    [mid] = put(hub)
    with hub.transaction() as s:  # a worker claimed it and died
        s.execute(update(OutboxMessage).values(
            status="in_flight", claimed_by="dead-worker", attempts=1,
            lease_until=utcnow() - timedelta(seconds=1)))
    drain(hub, worker="w2")
    row = status_of(hub, mid)
    assert row.status == "done" and row.attempts == 2
    assert peer.state.ids()[str(mid)] == 1


def test_resubmit_by_id_and_filter_records_who(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    peer.state.mode = "reject"
    ids = put(hub, n=3)
    drain(hub)
    assert {status_of(hub, i).status for i in ids} == {"dead"}
    peer.state.mode = "ok"
    with hub.transaction() as s:
        assert resubmit(s, MessageFilter(ids=(ids[0],)), actor="alice") == [ids[0]]
        # a second click finds it pending already and moves nothing
        assert resubmit(s, MessageFilter(ids=(ids[0],)), actor="alice") == []
        assert resubmit(s, MessageFilter(item="rental_filing", division="511702"),
                        actor="bob") == ids[1:]
    drain(hub)
    rows = [status_of(hub, i) for i in ids]
    assert [r.status for r in rows] == ["done"] * 3
    assert [r.resubmitted_by for r in rows] == ["alice", "bob", "bob"]
    assert peer.state.ids() == {str(i): 1 for i in ids}


def test_workers_threads_deliver_in_background(make_hub, store_url, peer):
    hub = loopback_hub(make_hub, store_url, peer)
    hub.start_workers(threads=3)
    ids = put(hub, n=40)
    wait_until(lambda: len(peer.state.received) >= 40, what="40 deliveries")
    wait_until(lambda: all(status_of(hub, i).status == "done" for i in ids), what="done")
    assert peer.state.ids() == {str(i): 1 for i in ids}
