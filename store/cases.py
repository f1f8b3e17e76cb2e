"""Cases and their stages: the one place that opens cases, splits them per county,
records stages and queues the pushes to the province.

Everything here runs inside the caller's transaction (``hub.transaction()``), so a
case, its sub-cases and the messages they cause are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mapping.canonical import CanonicalCase
from mapping.items import can_follow
from routes.table import Route
from store.models import Case, StageEvent, utcnow
from store.outbox import NewMessage

if TYPE_CHECKING:
    from hub import Hub

#: Where pushes to the province go (partner app id in config.yaml).
PROVINCE = "province"


@dataclass
class OpenedCase:
    parent: Case
    subs: list[tuple[Case, Route]]


def case_no_for(prefix: str, row_id: int, when: datetime) -> str:
    """Readable, unique case numbers: city or county code, date, row id."""
    return f"{prefix}{when:%Y%m%d}{row_id:08d}"


def _new_case(session: Session, **fields: Any) -> Case:
    now = utcnow()
    case = Case(case_no=f"tmp-{id(fields)}-{now.timestamp()}", created_at=now, updated_at=now,
                **fields)
    session.add(case)
    session.flush()  # assigns the id the case number is made from
    case.case_no = case_no_for(fields.get("county_code") or fields["city_code"], case.id, now)
    return case


def open_case(
    session: Session, hub: Hub, canonical: CanonicalCase, answer: dict[str, Any] | None = None,
    source: str = "province", stage: str = "received", deliver: bool = True,
) -> OpenedCase:
    """Store a case and one sub-case per county, each routed on its own.

    An auto route gets its delivery message queued in this transaction; a manual one
    waits in the operators' queue (its sub-case's ``route_mode`` is ``manual``).
    ``deliver=False`` queues nothing: a case the county opened itself (申请并受理).
    """
    payload = canonical.to_dict()
    id_hash = hub.cipher.id_hash(canonical.applicant.id_no or canonical.applicant.uscc)
    parent = _new_case(
        session, item=canonical.item, apply_no=canonical.apply_no,
        city_code=canonical.city_code, county_code="", source=source, stage=stage,
        applicant_id_hash=id_hash, payload_enc=hub.cipher.seal_json(payload),
        answer_enc=None if answer is None else hub.cipher.seal_json(answer),
    )
    subs: list[tuple[Case, Route]] = []
    for county in canonical.county_codes:
        route = hub.routes.resolve(county, canonical.item)
        sub = _new_case(
            session, parent_id=parent.id, item=canonical.item, apply_no=canonical.apply_no,
            city_code=canonical.city_code, county_code=county, source=source, stage=stage,
            route_adapter=route.adapter, route_mode=route.mode, applicant_id_hash=id_hash,
            payload_enc=hub.cipher.seal_json(payload),
        )
        subs.append((sub, route))
        if deliver and not route.manual and hub.adapter(route.adapter).delivers:
            queue_county_delivery(session, hub, canonical, sub, route)
    return OpenedCase(parent, subs)


def queue_county_delivery(session: Session, hub: Hub, canonical: CanonicalCase, sub: Case,
                          route: Route) -> int:
    return hub.enqueue(session, NewMessage(
        interface=f"county.{canonical.item}", adapter=route.adapter, partner=route.partner or "",
        operation=canonical.item, payload=canonical.for_county(sub.county_code, sub.case_no),
        policy=route.retry, timeout=route.timeout, division=sub.county_code,
        item=canonical.item, case_id=sub.id,
    ))


def province_message(hub: Hub, case: Case, operation: str, payload: dict[str, Any]) -> NewMessage:
    partner = hub.partner(PROVINCE)
    policy = hub.config.retry_policies.get("province") or hub.config.retry_policies["default"]
    return NewMessage(
        interface=f"province.{operation}", adapter="province", partner=PROVINCE,
        operation=operation, payload=payload, policy=policy, timeout=partner.timeout,
        division=case.county_code or None, item=case.item, case_id=case.id,
    )


@dataclass(frozen=True)
class StageOutcome:
    recorded: bool
    duplicate: bool
    event: StageEvent | None = None
    reason: str = ""


def last_event(session: Session, case: Case) -> StageEvent | None:
    return session.scalars(
        select(StageEvent).where(StageEvent.case_id == case.id)
        .order_by(StageEvent.id.desc()).limit(1)
    ).first()


def record_stage(
    session: Session, hub: Hub, case: Case, stage: str, *, at: datetime | None = None,
    operator: str | None = None, opinion: str | None = None, filing_no: str | None = None,
    result: Any = None, source: str = "county", push: bool = True,
) -> StageOutcome:
    """Record a stage on a (sub-)case if it may follow, and queue its push to the province.

    Stages move forward only. A repeat of the last event (same stage, time, operator)
    or any event after a final stage is a duplicate: answered, and changes nothing.
    ``approved`` may repeat when it is a new event (another time or operator).
    """
    at = at or utcnow()
    if stage == case.stage:  # only then can it be a repeat of the last event
        last = last_event(session, case)
        if last is not None and last.stage == stage and (
            stage != "approved" or (last.at == at and last.operator == operator)
        ):
            return StageOutcome(False, True, last, "already recorded")
    previous = case.stage if case.stage not in ("received",) else None
    if not can_follow(previous, stage):
        final = case.stage in ("completed", "rejected", "validation_failed")
        return StageOutcome(False, final, None,
                            f"stage {stage} cannot follow {case.stage}")
    event = StageEvent(
        case_id=case.id, stage=stage, at=at, operator=operator, opinion=opinion,
        filing_no=filing_no, source=source,
        result_enc=None if result is None else hub.cipher.seal_json(result),
    )
    session.add(event)
    case.stage = stage
    case.updated_at = utcnow()
    if push:
        hub.enqueue(session, want_id=False, message=province_message(hub, case, "status", {
            "apply_no": case.apply_no, "item": case.item, "county_code": case.county_code or None,
            "case_no": case.case_no, "stage": stage, "at": _iso(at), "operator": operator,
            "opinion": opinion, "filing_no": filing_no,
        }))
    return StageOutcome(True, False, event)


def _iso(at: datetime) -> str:
    """Naive UTC (as stored) to ISO 8601 with offset, as the contracts want."""
    return at.isoformat(timespec="seconds") + "+00:00" if at.tzinfo is None else at.isoformat()


def find_case(session: Session, case_no: str) -> Case | None:
    return session.scalars(select(Case).where(Case.case_no == case_no)).first()


def sub_cases(session: Session, parent: Case) -> list[Case]:
    return list(session.scalars(
        select(Case).where(Case.parent_id == parent.id).order_by(Case.id)))


def count_cases(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Case)) or 0
