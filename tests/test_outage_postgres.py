"""PostgreSQL outages while the province sends applications and deliveries flow.

The hub's connections are terminated with ``pg_terminate_backend`` from a separate admin
connection (what a restart or a failover does to them), or the store is unreachable for
a while (the hub reaches PostgreSQL through a TCP proxy that the test cuts: every
connection closed, new ones refused). The hub is served by the production HTTP server,
the province and the county are real HTTP peers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from store.models import CallLogEntry, Case, OutboxMessage
from tests.conftest import PG_URL
from tests.hubserver import application, province_env
from tests.support import wait_until
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.skipif(not PG_URL, reason="PostgreSQL outages need "
                                "HUB_TEST_DATABASE_URL")

TERMINATE = text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                 "AND backend_type = 'client backend'")


class Admin:
    """A connection of its own (never terminated) that breaks the hub's."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)
        self.conn = self.engine.connect()

    def terminate(self) -> int:
        return int(self.conn.execute(TERMINATE).scalar_one())

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def admin(postgres_url: str):  # type: ignore[no-untyped-def]
    a = Admin(postgres_url)
    yield a
    a.close()


@pytest.fixture
def proxy(postgres_url: str):  # type: ignore[no-untyped-def]
    url = make_url(postgres_url)
    p = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    p.url = url.set(host="127.0.0.1", port=p.port).render_as_string(hide_password=False)
    yield p
    p.close()


def _send(env: Any, apply_no: str) -> tuple[str, int, Any, str | None]:
    from adapters.sim.province import ProvinceClient
    from tests.hubserver import PROVINCE_SECRET

    client = ProvinceClient(env.server.url, PROVINCE_SECRET)
    try:
        answer = client.submit("rental_filing", application(apply_no=apply_no))
    finally:
        client.close()
    code = answer.body.get("code") if isinstance(answer.body, dict) else None
    return apply_no, answer.status, code, answer.headers.get("X-Ref-Id")


def _settled(env: Any) -> bool:
    with env.hub.db.session() as s:
        left = s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_(("pending", "in_flight"))))
    return left == 0 and env.hub.call_log_buffer.stats()["buffered"] == 0


def _check_nothing_lost(env: Any, answers: list[tuple[str, int, Any, str | None]]) -> None:
    """Every 0000 stored once and delivered once at least; every answer in the call log."""
    hub = env.hub
    accepted = {a for a, _, code, _ in answers if code == "0000"}
    with hub.db.session() as s:
        parents = Counter(s.scalars(select(Case.apply_no).where(Case.parent_id.is_(None))))
        statuses = Counter(s.scalars(select(OutboxMessage.status)))
        messages = set(s.scalars(select(OutboxMessage.id)))
        logged_in = set(s.scalars(select(CallLogEntry.ref_id)
                                  .where(CallLogEntry.direction == "in")))
        logged_out = Counter(s.scalars(select(CallLogEntry.message_id)
                                       .where(CallLogEntry.direction == "out")))
    assert {a for a in accepted if parents[a] != 1} == set(), "stored once, each"
    assert statuses == Counter({"done": len(messages)}), statuses
    delivered = {h.get("X-Message-Id") for _, _, h in env.county.state.received}
    assert {str(m) for m in messages} <= delivered
    missing = [ref for *_, ref in answers if ref not in logged_in]
    assert missing == [], f"{len(missing)} answered request(s) not in the call log"
    assert all(logged_out[m] >= 1 for m in messages), "a delivery without its call-log row"


def test_terminated_connections_under_load_answer_no_5000_and_lose_nothing(
        make_hub, postgres_url, admin):
    env = province_env(make_hub, postgres_url,
                       delivery={"threads": 2, "batch": 10, "lease_seconds": 150,
                                 "poll_interval": 0.1})
    env.hub.start_workers()
    answers: list[tuple[str, int, Any, str | None]] = []
    lock = threading.Lock()
    stop = threading.Event()
    terminated: list[int] = []

    def sender(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            result = _send(env, f"510000-20261122-{n}{i:05d}")
            with lock:
                answers.append(result)

    def killer() -> None:
        time.sleep(0.5)
        while not stop.is_set():
            terminated.append(admin.terminate())
            time.sleep(0.3)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(6)]
    threads.append(threading.Thread(target=killer))
    try:
        for t in threads:
            t.start()
        time.sleep(8)
        stop.set()
        for t in threads:
            t.join(60)
        wait_until(lambda: _settled(env), timeout=90, what="every delivery done")
        codes = Counter((status, code) for _, status, code, _ in answers)
        assert sum(terminated) >= 10, f"the outage did not happen: {terminated}"
        assert codes == Counter({(200, "0000"): len(answers)}), codes
        assert len(answers) >= 50
        _check_nothing_lost(env, answers)
    finally:
        stop.set()
        env.close()


def test_requests_answered_while_the_store_is_down_reach_the_call_log_later(make_hub, proxy):
    env = province_env(make_hub, proxy.url)
    try:
        assert _send(env, "510000-20261122-000001")[2] == "0000"
        proxy.cut()
        down = [_send(env, f"510000-20261122-10000{i}") for i in range(3)]
        assert {code for _, _, code, _ in down} == {"5000"}  # unreachable: honest 5000
        assert env.hub.call_log_buffer.stats()["buffered"] == 3
        assert env.client.request("GET", "/healthz", sign=False).status == 503
        proxy.restore()
        wait_until(lambda: env.hub.call_log_buffer.stats()["buffered"] == 0, timeout=30,
                   what="the buffered call-log rows to be written")
        health = env.client.request("GET", "/healthz", sign=False).body
        assert health["call_log"] == {"buffered": 0, "written_late": 3, "dropped": 0}
        with env.hub.db.session() as s:
            rows = {r.ref_id: r for r in s.scalars(select(CallLogEntry).where(
                CallLogEntry.ref_id.in_([ref for *_, ref in down])))}
        assert set(rows) == {ref for *_, ref in down}
        assert {(r.outcome, r.code) for r in rows.values()} == {("error", "5000")}
        # sealed like every call-log row: no plaintext body at rest
        assert all(b"11010519491231002X" not in (r.request_enc or b"") for r in rows.values())
        assert _send(env, "510000-20261122-000002")[2] == "0000"  # and the hub serves again
    finally:
        env.close()


def test_outcomes_of_a_batch_are_recorded_once_the_store_is_back(make_hub, proxy):
    env = province_env(make_hub, proxy.url,
                       delivery={"threads": 1, "batch": 10, "lease_seconds": 150,
                                 "poll_interval": 0.1})
    try:
        answers = [_send(env, f"510000-20261122-20000{i}") for i in range(3)]
        assert {code for _, _, code, _ in answers} == {"0000"}
        env.county.state.mode, env.county.state.delay = "slow", 1.0
        env.hub.start_workers()
        wait_until(lambda: len(env.county.state.received) >= 1, timeout=30,
                   what="the batch under way")
        proxy.cut()  # while the batch calls the county
        time.sleep(5)
        proxy.restore()
        wait_until(lambda: _settled(env), timeout=25,  # well before the 30 s lease ends
                   what="the outcomes recorded")
        _check_nothing_lost(env, answers)
        sent = Counter(h.get("X-Message-Id") for _, _, h in env.county.state.received)
        assert max(sent.values()) == 1, f"a message was sent again: {sent}"
        with env.hub.db.session() as s:
            out = Counter(s.scalars(select(CallLogEntry.message_id)
                                    .where(CallLogEntry.direction == "out")))
        assert max(out.values()) == 1, "the first send's call-log row, once"
    finally:
        env.close()


def test_the_call_log_buffer_is_bounded_and_counts_what_it_could_not_keep(make_hub, proxy):
    from datetime import datetime

    from store.calllog import CallRecord
    from store.calllog_buffer import CallLogBuffer

    hub = make_hub(proxy.url)
    buffer = CallLogBuffer(hub.db, hub.cipher, capacity=5, interval=0.1)
    records = [CallRecord(interface="province.in.rental_filing", direction="in",
                          party="province", started_at=datetime(2026, 11, 22, 10, 0),
                          outcome="error", code="5000") for _ in range(8)]
    proxy.cut()
    try:
        for r in records:
            buffer.add(r)
        time.sleep(0.5)  # the flusher tries, and the store refuses
        assert buffer.stats() == {"buffered": 5, "written_late": 0, "dropped": 3}
    finally:
        proxy.restore()
    wait_until(lambda: buffer.stats()["buffered"] == 0, timeout=20, what="the flush")
    assert buffer.stats() == {"buffered": 0, "written_late": 5, "dropped": 3}
    with hub.db.session() as s:
        stored = set(s.scalars(select(CallLogEntry.ref_id)))
    assert stored == {r.ref_id for r in records[:5]}
    buffer.close()


def test_a_frozen_store_leaves_health_checks_and_scrapes_bounded_and_threads_free(
        make_hub, proxy):
    """The store stops answering without refusing (packets held: a frozen host): every
    /healthz and /metrics request answers within a few seconds that the store is down
    (503, cityhub_store_up 0), twenty of them at once leave the server threads for
    other requests, and all is well again once the store answers. Before, each such
    request waited on the store for ever and twenty took every waitress thread."""
    import requests

    hub = make_hub(proxy.url, inbound=["province"])
    from tests.hubserver import HubServer

    server = HubServer(hub).start()
    try:
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
        proxy.freeze()
        started = time.monotonic()
        with ThreadPoolExecutor(20) as pool:
            checks = [pool.submit(requests.get, server.url + path, timeout=30)
                      for path in ["/healthz"] * 14 + ["/metrics"] * 6]
            time.sleep(0.5)
            # the server still has threads for what needs no store
            root = requests.get(server.url + "/", allow_redirects=False, timeout=5)
            assert root.status_code == 302
            answers = [c.result() for c in checks]
        assert time.monotonic() - started < 15
        health = [a for a in answers if a.url.endswith("/healthz")]
        assert {a.status_code for a in health} == {503}
        assert all(a.json()["store"]["ok"] is False for a in health)
        scrapes = [a for a in answers if a.url.endswith("/metrics")]
        assert all(a.status_code == 200 and "cityhub_store_up 0.0" in a.text
                   for a in scrapes), [a.text[:200] for a in scrapes]
        proxy.thaw()
        wait_until(lambda: requests.get(server.url + "/healthz", timeout=10).status_code
                   == 200, timeout=30, what="healthy once the store answers again")
    finally:
        proxy.thaw()
        server.stop()
