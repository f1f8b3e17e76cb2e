"""SIGTERM drains a hub process: it stops taking requests, finishes the delivery under
way, hands back the rest of its batch and the scheduler lease, so another process takes
them at once, not when the leases run out (real processes, a slow real peer)."""

from __future__ import annotations

import signal
import socket
import time

import pytest
import yaml
from sqlalchemy import func, select

from hub import Hub, load_config
from routes.policy import RetryPolicy
from scheduler import LEASE_NAME
from store.models import Lease, OutboxMessage
from store.outbox import NewMessage
from tests.support import start_hub_process, stop_process, wait_until
from tests.test_serve import get_json

pytestmark = pytest.mark.slow

PATIENT = RetryPolicy(max_attempts=50, min_backoff=0.1, max_backoff=0.5, jitter=0.1)
#: Far longer than the test may take: a row taken over before this ran out was handed back.
LONG_LEASE = 150


def enqueue(hub: Hub, n: int) -> list[int]:
    with hub.transaction() as s:
        return [hub.enqueue(s, NewMessage(
            interface="loopback.post", adapter="http", partner="peer0", operation="msg",
            payload={"n": i}, policy=PATIENT, timeout=10)) for i in range(n)]


def statuses(hub: Hub) -> dict[str, int]:
    with hub.db.session() as s:
        return dict(s.execute(select(OutboxMessage.status, func.count())
                              .group_by(OutboxMessage.status)).all())


def lease_holder(hub: Hub) -> str | None:
    with hub.db.session() as s:
        return s.scalar(select(Lease.holder).where(Lease.name == LEASE_NAME))


def drain_config(make_config, store_url, peer):  # type: ignore[no-untyped-def]
    return make_config(store_url, partners={"peer0": {"base_url": peer.url}}, inbound=[],
                       delivery={"threads": 1, "batch": 10, "lease_seconds": LONG_LEASE,
                                 "poll_interval": 0.1, "drain_seconds": 15},
                       scheduler={"enabled": True, "lease_seconds": LONG_LEASE})


def test_sigterm_on_a_worker_mid_batch_hands_everything_over_at_once(
        make_config, store_url, peer, tmp_path):
    config = drain_config(make_config, store_url, peer)
    hub = Hub(load_config(config))
    ids = enqueue(hub, 10)
    peer.state.mode, peer.state.delay = "slow", 1.0
    first = start_hub_process(config, "worker", "--scheduler", log=tmp_path / "w1.log")
    second = None
    try:
        wait_until(lambda: len(peer.state.received) >= 2, timeout=60, what="a batch under way")
        under_way = statuses(hub)  # one batch of 10: each outcome recorded as it ends
        assert under_way.get("in_flight", 0) >= 7, under_way
        assert under_way.get("in_flight", 0) + under_way.get("done", 0) == 10, under_way
        assert str(first.pid) in (lease_holder(hub) or "")
        first.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert first.wait(20) == 0, (tmp_path / "w1.log").read_text()
        drained_in = time.monotonic() - started
        # the call under way was finished and recorded; the rest went back; the lease too
        after = statuses(hub)
        assert after.get("in_flight", 0) == 0, after
        assert after.get("done", 0) >= 2 and after.get("done", 0) + after.get("pending", 0) == 10
        assert after.get("pending", 0) >= 5, after  # it did not go on through its batch
        assert lease_holder(hub) is None
        assert drained_in < 6
        peer.state.delay = 0.05
        second = start_hub_process(config, "worker", "--scheduler", log=tmp_path / "w2.log")
        wait_until(lambda: statuses(hub).get("done") == 10, timeout=30,
                   what="the second worker to deliver the rest")
        wait_until(lambda: str(second.pid) in (lease_holder(hub) or ""), timeout=15,
                   what="the second worker to take the scheduler lease")
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
        hub.close()
    received = peer.state.ids()
    assert set(received) == {str(i) for i in ids}
    assert max(received.values()) == 1, received  # nothing sent twice


def test_sigterm_on_serve_stops_taking_requests_and_hands_over(
        make_config, store_url, peer, tmp_path):
    config = drain_config(make_config, store_url, peer)
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    hub = Hub(load_config(config))
    proc = start_hub_process(config, "serve", "--threads", "1", log=tmp_path / "serve.log")
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{port}/healthz")[0] == 200, timeout=30,
                   what="the hub to answer /healthz")
        assert str(proc.pid) in (lease_holder(hub) or "")
        peer.state.mode, peer.state.delay = "slow", 1.0
        enqueue(hub, 10)
        wait_until(lambda: len(peer.state.received) >= 1, timeout=30, what="a batch under way")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, (tmp_path / "serve.log").read_text()
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # no longer listening: a load balancer sends requests elsewhere
        after = statuses(hub)
        assert after.get("in_flight", 0) == 0, after
        assert after.get("done", 0) >= 1
        assert after.get("pending", 0) >= 5, after  # handed back, not sent during the drain
        assert lease_holder(hub) is None
    finally:
        stop_process(proc)
        hub.close()
    assert max(peer.state.ids().values()) == 1


def test_a_call_that_outlasts_the_drain_has_its_row_handed_back(
        make_config, store_url, peer, tmp_path):
    config = make_config(store_url, partners={"peer0": {"base_url": peer.url}}, inbound=[],
                         delivery={"threads": 1, "batch": 3, "lease_seconds": LONG_LEASE,
                                   "poll_interval": 0.1, "drain_seconds": 1})
    hub = Hub(load_config(config))
    enqueue(hub, 3)
    peer.state.mode, peer.state.delay = "slow", 6.0
    worker = start_hub_process(config, "worker", log=tmp_path / "w.log")
    try:
        wait_until(lambda: len(peer.state.received) >= 1, timeout=30, what="a call under way")
        worker.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert worker.wait(20) == 0, (tmp_path / "w.log").read_text()
        assert time.monotonic() - started < 5  # bounded by drain_seconds, not the peer
        after = statuses(hub)
        # the first call ended and was recorded; the one under way and the last row were
        # handed back: nothing in flight until the lease ends
        assert after == {"done": 1, "pending": 2}, after
    finally:
        stop_process(worker)
        hub.close()
