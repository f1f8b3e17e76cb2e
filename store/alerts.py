"""Alerts that close themselves: a dead message's alert once that message is delivered
(an operator resubmitted it and the partner took it), so the dashboard shows only what
still needs someone."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Alert, utcnow

#: Alert kinds whose detail the hub writes itself, in words for operators (what to do),
#: with no partner's text in it: shown like a title (long numbers masked), not as a
#: partner's free text would be (every Chinese word masked).
WORDED_BY_HUB = frozenset({"calendar_missing", "case_overdue", "number_reissued",
                           "project_overdue_acceptance", "presale_without_permit",
                           "share_not_own"})

#: Who closed an alert that closed itself (shown in the alert's acknowledgement).
CLOSED_BY_DELIVERY = "系统（报文已送达）"


def message_ref(message_id: int) -> str:
    return f"message:{message_id}"


def close_delivered(session: Session, message_ids: Iterable[int]) -> int:
    """Acknowledge the open ``dead_message`` alerts of these delivered messages (in the
    caller's transaction, the one that records the delivery); returns how many."""
    refs = [message_ref(i) for i in message_ids]
    if not refs:
        return 0
    alerts = list(session.scalars(select(Alert).where(
        Alert.acknowledged_at.is_(None), Alert.kind == "dead_message", Alert.ref.in_(refs))))
    now = utcnow()
    for alert in alerts:
        alert.acknowledged_at, alert.acknowledged_by = now, CLOSED_BY_DELIVERY
    return len(alerts)
