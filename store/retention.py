"""Retention of the outbox: delivered rows move to ``outbox_archive`` after
``scheduler.outbox_archive_days`` (without their payload: the call log keeps the request
for its own retention), so the queue the workers scan and ``/healthz`` counts stays the
size of recent traffic; the archive is pruned with the call log.

Rows move in chunks, each in its own short transaction (a writer never waits long).
Parked (``dead``) rows stay in the outbox until an operator resubmits them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert, literal, select

from store.db import Database
from store.models import ArchivedMessage, OutboxMessage, utcnow
from store.outbox import DONE

#: Rows moved per transaction.
CHUNK = 2000

_O, _A = OutboxMessage.__table__, ArchivedMessage.__table__
#: The archive's columns that come from the outbox row (same keys).
_KEPT = [c.key for c in _A.c if c.key != "archived_at"]


def archive_chunk(db: Database, older_than: datetime, limit: int = CHUNK) -> int:
    """Move up to ``limit`` rows delivered before ``older_than``; how many moved."""
    with db.session() as s:
        due = (select(_O.c.id).where(_O.c.status == DONE, _O.c.delivered_at < older_than)
               .order_by(_O.c.id).limit(limit))
        if db.postgres:  # a row being resubmitted right now is left for the next run
            due = due.with_for_update(skip_locked=True)
        ids = list(s.scalars(due))
        if not ids:
            return 0
        now = utcnow()
        s.execute(insert(_A).from_select(
            [*(_A.c[key] for key in _KEPT), _A.c.archived_at],
            select(*(_O.c[key] for key in _KEPT), literal(now, _A.c.archived_at.type))
            .where(_O.c.id.in_(ids))))
        s.execute(delete(_O).where(_O.c.id.in_(ids)))
        return len(ids)


def archive_delivered(db: Database, days: float, now: datetime | None = None) -> int:
    """Move every row delivered more than ``days`` ago, chunk by chunk; how many moved."""
    older_than = (now or utcnow()) - timedelta(days=days)
    total = 0
    while True:
        n = archive_chunk(db, older_than)
        total += n
        if n < CHUNK:
            return total


def prune_archive(db: Database, days: float, now: datetime | None = None) -> int:
    """Forget archived rows created more than ``days`` ago (the call log's retention)."""
    older_than = (now or utcnow()) - timedelta(days=days)
    with db.session() as s:
        return s.execute(delete(_A).where(_A.c.created_at < older_than)).rowcount
