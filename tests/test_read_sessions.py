"""Reads never block writes: a page, a statistics query or an export runs in a read-only
transaction outside SQLite's writer queue, so the province's applications are answered
while it is open; a write through a read session is refused."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from sqlalchemy import func, select, text

from adapters.sim.province import ProvinceClient
from store.models import Case
from store.outbox import counts_by_status
from tests.hubserver import PROVINCE_SECRET, application, province_env


def _submit(env, n: int) -> float:  # type: ignore[no-untyped-def]
    client = ProvinceClient(env.server.url, PROVINCE_SECRET)
    try:
        started = time.perf_counter()
        answer = client.submit("rental_filing", application(apply_no=f"510000-20261122-{n:06d}"))
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    assert answer.status == 200 and answer.body["code"] == "0000", answer.body
    return elapsed


def test_an_application_is_answered_while_a_read_transaction_is_held_open(make_hub,
                                                                           store_url):
    env = province_env(make_hub, store_url)
    try:
        idle = [_submit(env, n) for n in range(1, 6)]
        held, release = threading.Event(), threading.Event()

        def reader() -> None:  # a slow statistics page or export: a transaction left open
            with env.hub.db.read_session() as s:
                s.scalar(select(func.count()).select_from(Case))
                counts_by_status(s)
                held.set()
                release.wait(30)

        t = threading.Thread(target=reader)
        t.start()
        assert held.wait(10)
        try:
            busy = [_submit(env, n) for n in range(6, 11)]
            still_reading = t.is_alive()
        finally:
            release.set()
            t.join(10)
        assert still_reading  # the answers came while the read was open
        # a read holding the write lock would keep each intake waiting until it ends (30 s)
        assert max(busy) < 5, busy
        assert statistics.median(busy) < 2 * statistics.median(idle) + 0.25, (idle, busy)
        with env.hub.db.read_session() as s:
            assert s.scalar(select(func.count()).select_from(Case)
                            .where(Case.parent_id.is_(None))) == 10
    finally:
        env.close()


def test_a_write_through_a_read_session_is_refused(make_hub, store_url):
    hub = make_hub(store_url)
    with pytest.raises(Exception, match="(?i)read.?only"), hub.db.read_session() as s:
        s.execute(text("DELETE FROM outbox"))
    with hub.db.session() as s:  # the connection went back to the pool able to write
        s.execute(text("DELETE FROM outbox"))
    for _ in range(3):  # whichever pooled connection a session gets
        with hub.db.session() as s:
            s.execute(text("DELETE FROM outbox"))
