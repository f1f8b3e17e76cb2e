"""A delivery batch never outlives its lease: a slow real peer, two workers whose batches
take longer than the lease they claimed with, and the start-up check that refuses a lease
a batch of the slowest calls could outlive."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from adapters.dispatch import Dispatcher
from hub import ConfigError, Hub, load_config
from routes.policy import RetryPolicy
from store.models import CallLogEntry, OutboxMessage
from store.outbox import NewMessage

PATIENT = RetryPolicy(max_attempts=5, min_backoff=0.1, max_backoff=0.2, jitter=0.0)


def put(hub: Hub, n: int, timeout: float) -> list[int]:
    with hub.transaction() as s:
        return [hub.enqueue(s, NewMessage(interface="loopback.post", adapter="http",
                                          partner="peer0", operation="msg", payload={"n": i},
                                          policy=PATIENT, timeout=timeout))
                for i in range(n)]


def statuses(hub: Hub, ids: list[int]) -> dict[int, str]:
    with hub.db.session() as s:
        rows = s.execute(select(OutboxMessage.id, OutboxMessage.status)
                         .where(OutboxMessage.id.in_(ids))).all()
    return {i: status for i, status in rows}


def test_two_workers_with_batches_longer_than_the_lease_send_each_message_once(
        make_hub, store_url, peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}})
    ids = put(hub, 10, timeout=1.0)
    peer.state.mode, peer.state.delay = "slow", 0.6  # a batch of 5: 3 s; its lease: 2 s
    workers = []
    for name, batch in (("w1", 5), ("w2", 1)):  # w2 comes back for more while w1 calls
        d = Dispatcher(hub, name)
        d.batch, d.lease_seconds = batch, 2.0  # e.g. a store slow to record: a short lease
        workers.append(d)
    errors: list[BaseException] = []

    def run(d: Dispatcher) -> None:
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                if set(statuses(hub, ids).values()) == {"done"}:
                    return
                if not d.run_once():
                    time.sleep(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    assert set(statuses(hub, ids).values()) == {"done"}
    # each message went out once: no worker claimed a row whose first call was under way
    assert peer.state.ids() == {str(i): 1 for i in ids}
    with hub.db.session() as s:
        rows = s.execute(select(OutboxMessage.id, OutboxMessage.attempts)
                         .where(OutboxMessage.id.in_(ids))).all()
        logged = s.scalars(select(CallLogEntry.message_id)
                           .where(CallLogEntry.message_id.in_(ids))).all()
    assert {a for _, a in rows} == {1}
    assert sorted(logged) == sorted(ids)  # one call-log row per message, recorded as it ended


def test_each_outcome_is_recorded_as_its_call_ends(make_hub, store_url, peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}})
    ids = put(hub, 3, timeout=2.0)
    peer.state.mode, peer.state.delay = "slow", 0.5
    seen: list[dict[int, str]] = []
    d = Dispatcher(hub, "w1")
    t = threading.Thread(target=d.run_once)
    t.start()
    time.sleep(1.2)  # the first two calls have ended, the third is under way
    seen.append(statuses(hub, ids))
    t.join(10)
    assert seen[0][ids[0]] == "done" and seen[0][ids[1]] == "done"
    assert seen[0][ids[2]] == "in_flight"
    assert set(statuses(hub, ids).values()) == {"done"}


def test_a_row_whose_lease_was_lost_is_not_called(make_hub, store_url, peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}})
    ids = put(hub, 3, timeout=1.0)
    peer.state.mode, peer.state.delay = "slow", 0.4
    d = Dispatcher(hub, "w1")
    d.lease_seconds = 1.0  # shorter than a call and its record: renewed before each call
    t = threading.Thread(target=d.run_once)
    t.start()
    time.sleep(0.2)  # the first call is under way: another worker takes the third row
    with hub.db.session() as s:
        s.execute(OutboxMessage.__table__.update()
                  .where(OutboxMessage.id == ids[2]).values(claimed_by="w2"))
    t.join(10)
    assert peer.state.ids() == {str(ids[0]): 1, str(ids[1]): 1}
    st = statuses(hub, ids)
    assert st[ids[0]] == st[ids[1]] == "done" and st[ids[2]] == "in_flight"


def test_a_lease_a_batch_of_slow_calls_could_outlive_is_refused(make_config, sqlite_url):
    # the Dazhou table's slowest route: 5 s connect + 10 s read; 20 of them need 300 s
    path = make_config(sqlite_url, delivery={"batch": 20, "lease_seconds": 120})
    with pytest.raises(ConfigError, match=r"config\.yaml: delivery\.lease_seconds: 120s is "
                                          r"shorter .* \(20 × \(5s connect \+ 10s read\) = 300s"):
        Hub(load_config(path))
    # a partner slower than every route decides
    path = make_config(sqlite_url, delivery={"batch": 8, "lease_seconds": 120},
                       partners={"peer0": {"base_url": "http://127.0.0.1:9", "timeout": 30}})
    with pytest.raises(ConfigError, match=r"partner peer0"):
        Hub(load_config(path))
    # the shipped defaults fit: 20 × 15 s = 300 s
    Hub(load_config(make_config(sqlite_url, delivery={"batch": 20, "lease_seconds": 300}))
        ).close()


@pytest.mark.parametrize("setting", [{"batch": 0}, {"batch": "20"}, {"lease_seconds": -1},
                                     {"threads": True}])
def test_wrong_delivery_numbers_name_the_key(make_config, sqlite_url, setting):
    key = next(iter(setting))
    with pytest.raises(ConfigError, match=rf"config\.yaml: delivery: {key}: must be"):
        load_config(make_config(sqlite_url, delivery=setting))


class _TricklingPeer:
    """A raw-socket peer that answers at once, then sends its body (or, with
    ``headers=True``, its header lines) one byte every ``gap`` seconds: each read is
    within the read timeout, the whole answer is not."""

    def __init__(self, gap: float, headers: bool = False) -> None:
        import socket

        self.gap, self.headers, self.requests = gap, headers, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn) -> None:  # type: ignore[no-untyped-def]
        with conn:
            conn.recv(65536)
            self.requests += 1
            body = b'{"code":"0000"}' + b" " * 100
            if self.headers:
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                slow = b"X-Slow: " + b"a" * 100 + b"\r\n"
                tail = b"Content-Length: %d\r\n\r\n" % len(body) + body
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                slow, tail = body, b""
            try:
                for ch in slow:
                    if self.stopped.is_set():
                        return
                    conn.sendall(bytes([ch]))
                    time.sleep(self.gap)
                conn.sendall(tail)
            except OSError:
                return  # the hub shut its end: what this test is about

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


@pytest.mark.parametrize("headers", [False, True], ids=["body", "header-lines"])
def test_a_trickling_peer_cannot_hold_a_call_past_connect_and_read_timeout(
        make_hub, store_url, headers):
    """urllib3's read timeout bounds each read, not the call: a peer sending a byte
    every 0.3 s under a 1 s timeout held the call as long as it liked, past the lease,
    and the message went out again while its first attempt still ran. The call now ends
    within connect + read timeout and is recorded as timed out; one request was sent."""
    peer = _TricklingPeer(gap=0.3, headers=headers)
    try:
        hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}})
        [mid] = put(hub, 1, timeout=1.0)
        Dispatcher(hub, "w1").run_once()
        with hub.db.session() as s:
            row = s.get(OutboxMessage, mid)
            assert (row.status, row.attempts) == ("pending", 1), (row.status, row.last_error)
            assert "no whole answer within" in (row.last_error or ""), row.last_error
        assert peer.requests == 1  # (the whole answer would have taken 35 s)
    finally:
        peer.stop()
