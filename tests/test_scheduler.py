"""Scheduler jobs: housekeeping forgets what is past its window and keeps the rest."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from scheduler import acquire_lease, housekeeping, release_lease
from store.calllog import CallRecord, write_call
from store.models import CallLogEntry, Nonce, utcnow


def test_housekeeping_forgets_old_nonces_and_calls(make_hub, store_url):
    hub = make_hub(store_url, inbound=[], scheduler={"nonce_window_seconds": 600,
                                                     "call_log_retention_days": 30})
    now = utcnow()
    with hub.transaction() as s:
        s.add_all([Nonce(app_id="province", nonce="a" * 16, seen_at=now - timedelta(hours=1)),
                   Nonce(app_id="province", nonce="b" * 16, seen_at=now)])
        for ref, age in (("old", 31), ("new", 29)):
            write_call(s, hub.cipher, CallRecord(interface="x", direction="in", party="p",
                                                 started_at=now - timedelta(days=age),
                                                 ref_id=ref))
    assert housekeeping(hub) == {"nonces": 1, "call_log": 1, "login_failures": 0,
                                 "entry_handovers": 0, "share_rate_windows": 0,
                                 "outbox_archived": 0, "outbox_archive_pruned": 0}
    with hub.transaction() as s:
        assert s.scalars(select(Nonce.nonce)).all() == ["b" * 16]
        assert s.scalars(select(CallLogEntry.ref_id)).all() == ["new"]
    assert housekeeping(hub) == {"nonces": 0, "call_log": 0, "login_failures": 0,
                                 "entry_handovers": 0, "share_rate_windows": 0,
                                 "outbox_archived": 0, "outbox_archive_pruned": 0}


def test_scheduler_lease_is_held_by_one_holder_until_released_or_expired(make_hub, store_url):
    hub = make_hub(store_url, inbound=[])
    now = utcnow()
    assert acquire_lease(hub, "a", 30, now=now)
    assert not acquire_lease(hub, "b", 30, now=now + timedelta(seconds=10))
    assert acquire_lease(hub, "a", 30, now=now + timedelta(seconds=10))  # renewal
    assert acquire_lease(hub, "b", 30, now=now + timedelta(seconds=41))  # a's lease expired
    release_lease(hub, "b")
    assert acquire_lease(hub, "a", 30, now=now + timedelta(seconds=42))
    with hub.transaction() as s:
        from store.models import Lease

        assert s.scalar(select(func.count()).select_from(Lease)) == 1
