"""What bounds a wait on a store that stops answering: libpq's settings on every
PostgreSQL connection (unless the URL sets them), and ``SingleFlight`` (one check at a
time, a bounded wait for each caller, a stale check replaced)."""

from __future__ import annotations

import threading
import time

import pytest

from adapters.single_flight import SingleFlight, StoreSlow
from store.db import PG_CONNECTION_BOUNDS, make_engine
from tests.conftest import PG_URL


@pytest.mark.skipif(not PG_URL, reason="HUB_TEST_DATABASE_URL is not set")
def test_every_postgres_connection_gets_the_bounds_unless_its_url_sets_them():
    for url, expected in ((PG_URL, PG_CONNECTION_BOUNDS),
                          (PG_URL + ("&" if "?" in PG_URL else "?") + "tcp_user_timeout=7000",
                           {**PG_CONNECTION_BOUNDS, "tcp_user_timeout": 7000})):
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                params = conn.connection.driver_connection.info.get_parameters()
            for key, value in expected.items():
                assert params.get(key) == str(value), (url, key, params.get(key))
        finally:
            engine.dispose()


def test_one_check_at_a_time_a_bounded_wait_and_a_stale_check_replaced():
    release = threading.Event()
    calls: list[int] = []

    def check() -> int:
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)  # the first check hangs
        return len(calls)

    flight = SingleFlight(check, wait=0.1, name="test", stale=0.6)
    started = time.monotonic()
    for _ in range(3):  # callers share the hanging check, each waits 0.1 s
        with pytest.raises(StoreSlow):
            flight()
    assert len(calls) == 1 and time.monotonic() - started < 0.6
    time.sleep(0.6)  # stale: the next caller starts a fresh check, which answers
    assert flight() == 2
    release.set()
    time.sleep(0.05)
    assert flight() == 3  # once a check has answered, the next call asks again


def test_a_frozen_store_never_has_more_than_two_checks_out():
    """Every stale check abandoned holds its pool connection for as long as it hangs: a
    new one is started only once the abandoned one has ended, never a third."""
    release = threading.Event()
    running: list[int] = []

    def check() -> int:
        running.append(1)
        release.wait(10)  # every check hangs until the store is back
        return len(running)

    flight = SingleFlight(check, wait=0.05, name="test", stale=0.2)
    for _ in range(12):  # 12 callers over 1.2 s: 5 stale periods
        with pytest.raises(StoreSlow):
            flight()
        time.sleep(0.05)
    assert len(running) == 2
    release.set()
    time.sleep(0.05)
    assert flight() >= 2  # back: a check answers

