"""The outbox keeps each policy's jitter, moves delivered rows to the archive after
``scheduler.outbox_archive_days`` (statistics and case journeys still show them), and
``/healthz`` counts it with bounded queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from adapters.dispatch import Dispatcher
from admin import journey, stats
from admin.perms import Principal
from hub import ConfigError, load_config
from routes.policy import RetryPolicy
from scheduler import housekeeping
from store.models import ArchivedMessage, Case, OutboxMessage, utcnow
from store.outbox import NewMessage
from store.reads import queue_counts
from tests.hubserver import application, province_env

EVERYONE = Principal(1, "t", "t", frozenset({"view"}), None)


def put(hub, n, policy, partner="peer0"):  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return [hub.enqueue(s, NewMessage(interface="loopback.post", adapter="http",
                                          partner=partner, operation="msg", payload={"n": i},
                                          policy=policy, timeout=2, division="511702"))
                for i in range(n)]


def delays(hub, ids):  # type: ignore[no-untyped-def]
    """Seconds from the failed attempt to the next one, per message."""
    with hub.db.read_session() as s:
        rows = s.execute(select(OutboxMessage.next_attempt_at, OutboxMessage.jitter)
                         .where(OutboxMessage.id.in_(ids))).all()
    now = utcnow()
    return [(at - now).total_seconds() for at, _ in rows], {j for _, j in rows}


def test_the_configured_jitter_reaches_the_outbox_and_the_next_attempt(make_hub, store_url,
                                                                       peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}})
    route = hub.routes.resolve("511702", "rental_filing")
    assert route.retry.jitter == 0.1  # tests/support.py's default policy
    exact = put(hub, 8, RetryPolicy(5, 100.0, 100.0, jitter=0.0))
    spread = put(hub, 8, RetryPolicy(5, 100.0, 100.0, jitter=0.5))
    routed = put(hub, 1, route.retry)
    peer.state.mode = "fail"
    d = Dispatcher(hub, "w1")
    while d.run_once():
        pass
    exact_delays, exact_jitter = delays(hub, exact)
    spread_delays, spread_jitter = delays(hub, spread)
    assert exact_jitter == {0.0} and spread_jitter == {0.5}
    assert delays(hub, routed)[1] == {0.1}
    assert max(exact_delays) - min(exact_delays) < 2  # no jitter: all the same backoff
    assert all(40 < x < 151 for x in spread_delays)
    assert max(spread_delays) - min(spread_delays) > 5  # spread over ±50 s


def test_delivered_rows_move_to_the_archive_and_statistics_still_count_them(
        make_hub, store_url, peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}},
                   scheduler={"outbox_archive_days": 30, "call_log_retention_days": 60})
    ids = put(hub, 4, RetryPolicy(3, 0.0, 0.0, 0.0))
    d = Dispatcher(hub, "w1")
    while d.run_once():
        pass
    now = utcnow()
    with hub.db.session() as s:  # three delivered 31 days ago, one of them created 61 ago
        s.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids[:3]))
                  .values(delivered_at=now - timedelta(days=31),
                          created_at=now - timedelta(days=31)))
        s.execute(update(OutboxMessage).where(OutboxMessage.id == ids[0])
                  .values(created_at=now - timedelta(days=61)))
    since, until = now - timedelta(days=40), now + timedelta(days=1)
    with hub.db.read_session() as s:
        before = stats.message_outcomes(s, EVERYONE, since, until)
    result = housekeeping(hub)
    assert result["outbox_archived"] == 3 and result["outbox_archive_pruned"] == 1
    with hub.db.read_session() as s:
        assert s.scalars(select(OutboxMessage.id)).all() == [ids[3]]
        archived = s.scalars(select(ArchivedMessage).order_by(ArchivedMessage.id)).all()
        assert [a.id for a in archived] == ids[1:3]
        assert {(a.status, a.attempts, a.interface) for a in archived} == {
            ("done", 1, "loopback.post")}
        assert stats.message_outcomes(s, EVERYONE, since, until) == before
        assert before["succeeded"] == 3
    assert housekeeping(hub)["outbox_archived"] == 0  # nothing moves twice


def test_a_case_journey_shows_its_archived_messages(make_hub, store_url):
    env = province_env(make_hub, store_url)
    try:
        answer = env.client.submit("rental_filing", application())
        assert answer.body["code"] == "0000", answer.body
        env.drain()
        with env.hub.db.session() as s:
            s.execute(update(OutboxMessage).where(OutboxMessage.status == "done")
                      .values(delivered_at=utcnow() - timedelta(days=400)))
        assert housekeeping(env.hub)["outbox_archived"] >= 1
        with env.hub.db.read_session() as s:
            sub = s.scalars(select(Case).where(Case.parent_id.is_not(None))).one()
            j = journey.build(s, env.hub, EVERYONE, sub, reveal=False)
        assert [m.status for m in j.messages] == ["done"]
        assert j.messages[0].archived and j.messages[0].interface == "county.rental_filing"
    finally:
        env.close()


def test_health_counts_are_bounded(make_hub, store_url, peer):
    hub = make_hub(store_url, partners={"peer0": {"base_url": peer.url}})
    put(hub, 7, RetryPolicy(3, 0.0, 0.0, 0.0))
    with hub.db.read_session() as s:
        assert queue_counts(s) == {"pending": 7, "held": 0}
        assert queue_counts(s, cap=5) == {"pending": 5, "held": 0, "capped": ["pending"]}
        total = s.scalar(select(func.count()).select_from(OutboxMessage))
    assert total == 7


@pytest.mark.parametrize("days", [0, "30", 1.5])
def test_a_wrong_archive_age_names_the_key(make_config, sqlite_url, days):
    with pytest.raises(ConfigError, match=r"config\.yaml: scheduler: outbox_archive_days: "):
        load_config(make_config(sqlite_url, scheduler={"outbox_archive_days": days}))
