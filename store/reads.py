"""Cheap reads for health checks: bounded whatever the table sizes."""

from __future__ import annotations

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from store.models import OutboxMessage
from store.outbox import DEAD, DONE, IN_FLIGHT, PENDING, held_condition

#: A status is counted up to this many rows; beyond, ``/healthz`` says "at least".
COUNT_CAP = 10_000


def _capped(session: Session, cap: int, *where) -> int:  # type: ignore[no-untyped-def]
    rows = select(literal(1)).select_from(OutboxMessage).where(*where).limit(cap)
    return int(session.scalar(select(func.count()).select_from(rows.subquery())) or 0)


def queue_counts(session: Session, cap: int = COUNT_CAP) -> dict[str, int | list[str]]:
    """Outbox rows by status, each an index range scan (``ix_outbox_due`` leads with the
    status) stopped at ``cap``; ``capped`` lists the statuses that reached it."""
    counts: dict[str, int | list[str]] = {}
    capped: list[str] = []
    for status in (PENDING, IN_FLIGHT, DEAD, DONE):
        n = _capped(session, cap, OutboxMessage.status == status)
        if n:
            counts[status] = n
        if n >= cap:
            capped.append(status)
    held = _capped(session, cap, OutboxMessage.status == PENDING, held_condition())
    counts["held"] = held
    if held >= cap:
        capped.append("held")
    if capped:
        counts["capped"] = capped
    return counts
