"""Reprocess an incoming case again: re-queue the county delivery of a sub-case from
its stored payload, unless one is already waiting or in flight (no double sends)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mapping.canonical import CanonicalCase
from store.cases import queue_county_delivery
from store.models import Case, OutboxMessage

if TYPE_CHECKING:
    from hub import Hub


class ReprocessRefused(ValueError):
    pass


def reprocess_sub_case(s: Session, hub: Hub, case: Case) -> int:
    """Queue a new county delivery for ``case``; returns the new message id."""
    if case.parent_id is None:
        raise ReprocessRefused("只能对子办件（区县）重新处理")
    # Lock the case row (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers)
    # so two clicks cannot both pass the check below.
    s.execute(select(Case.id).where(Case.id == case.id).with_for_update())
    route = hub.routes.resolve(case.county_code, case.item)
    if route.manual or not hub.adapter(route.adapter).delivers:
        raise ReprocessRefused("该区县此事项为人工办理，无需重新投递")
    waiting = s.scalars(select(OutboxMessage.id).where(
        OutboxMessage.case_id == case.id,
        OutboxMessage.interface == f"county.{case.item}",
        OutboxMessage.status.in_(("pending", "in_flight")),
    ).limit(1)).first()
    if waiting is not None:
        raise ReprocessRefused(f"报文 #{waiting} 已在队列中，不会重复发送")
    canonical = CanonicalCase.from_dict(hub.cipher.open_json(case.payload_enc))
    return queue_county_delivery(s, hub, canonical, case, route)
