"""Delivery wakes on commit, not polling: with a poll interval far longer than the test
waits, a message queued by a unit of work, by a bare ORM session (the fund SOAP
service's kind) or by a province application reaches its peer at once."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from routes.policy import RetryPolicy
from store.outbox import NewMessage, enqueue
from tests.hubserver import application, province_env
from tests.support import wait_until

POLL = 30.0  # a worker that only polled would not look again within the test
FAST = RetryPolicy(3, 0.0, 0.0, 0.0)


def message(n: int) -> NewMessage:
    return NewMessage(interface="loopback.post", adapter="http", partner="peer0",
                      operation="msg", payload={"n": n}, policy=FAST, timeout=2)


def test_a_commit_that_queues_messages_wakes_the_workers(make_hub, store_url, peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}},
                   delivery={"poll_interval": POLL, "threads": 1})
    hub.start_workers()
    time.sleep(0.3)  # the worker found nothing and waits for its poll or a wake-up
    with hub.transaction() as s:
        first = hub.enqueue(s, message(1))
    wait_until(lambda: str(first) in peer.state.ids(), timeout=5, what="the first message")
    with Session(hub.db.engine) as s:  # a bare session, committed by hand
        second = enqueue(s, hub.cipher, message(2))
        s.commit()
    wait_until(lambda: str(second) in peer.state.ids(), timeout=5, what="the second message")
    with Session(hub.db.engine) as s:  # rolled back: nothing to wake for, nothing sent
        enqueue(s, hub.cipher, message(3))
        s.rollback()
    time.sleep(0.5)
    assert set(peer.state.ids()) == {str(first), str(second)}


def test_a_province_application_wakes_the_workers_on_commit(make_hub, store_url):
    env = province_env(make_hub, store_url, delivery={"poll_interval": POLL, "threads": 1})
    try:
        env.hub.start_workers()
        time.sleep(0.3)
        started = time.monotonic()
        answer = env.client.submit("rental_filing", application())
        assert answer.body["code"] == "0000", answer.body
        wait_until(lambda: env.county.items() == ["rental_filing"], timeout=5,
                   what="the county delivery")
        assert time.monotonic() - started < 5
    finally:
        env.close()
