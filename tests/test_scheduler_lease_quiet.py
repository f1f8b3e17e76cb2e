"""Trying for the scheduler lease is not an error: a process that is not the leader runs
no failing statement (PostgreSQL logged a duplicate key every 10 s per process)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import event, select, text

from scheduler import LEASE_NAME, acquire_lease, release_lease
from store.models import Lease, utcnow


def _count_errors(engine):  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    event.listen(engine, "handle_error", lambda ctx: errors.append(ctx.original_exception))
    return errors


def _rollbacks(hub) -> int:  # type: ignore[no-untyped-def]
    """PostgreSQL's count of transactions of this database that ended in error."""
    with hub.db.engine.begin() as conn:  # committed: a rollback here would count itself
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.execute(text(
            "SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )).scalar_one()


def test_a_process_that_is_not_the_leader_runs_no_failing_statement(make_hub, store_url):
    leader, follower = make_hub(store_url), make_hub(store_url)
    assert acquire_lease(leader, "leader", 30)
    errors = _count_errors(follower.db.engine)
    before = _rollbacks(follower) if follower.db.postgres else 0
    for _ in range(20):
        assert not acquire_lease(follower, "follower", 30)
    assert errors == []
    if follower.db.postgres:  # the server saw no failed statement either (stats lag: poll)
        import time

        time.sleep(1.5)
        assert _rollbacks(follower) - before == 0
    with follower.db.session() as s:
        assert s.scalar(select(Lease.holder).where(Lease.name == LEASE_NAME)) == "leader"


def test_the_lease_is_taken_when_free_renewed_by_its_holder_and_taken_when_expired(
        make_hub, store_url):
    hub = make_hub(store_url)
    errors = _count_errors(hub.db.engine)
    now = utcnow()
    assert acquire_lease(hub, "a", 30, now=now)  # free: inserted
    assert acquire_lease(hub, "a", 30, now=now + timedelta(seconds=5))  # renewed
    assert not acquire_lease(hub, "b", 30, now=now + timedelta(seconds=10))  # held
    assert acquire_lease(hub, "b", 30, now=now + timedelta(seconds=40))  # expired: taken
    assert not acquire_lease(hub, "a", 30, now=now + timedelta(seconds=41))
    release_lease(hub, "b")
    assert acquire_lease(hub, "a", 30, now=now + timedelta(seconds=42))  # released: free
    assert errors == []
