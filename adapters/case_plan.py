"""Planning an application's writes: routes resolved, rows numbered, answer made.

The adapters that open cases (the province intake, a county's 申请并受理, the listed
defaulter's refusal) plan here and hand the plan to the store's one writer
(``store.case_write.write_case``). Routing is resolved here, per county, through the
hub's routing table (with the operators' overrides), never inside the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session, make_transient_to_detached

from mapping.canonical import CanonicalCase
from routes.table import Route
from store.case_write import CasePlan, reserve_case_ids, write_case
from store.cases import CaseRow, case_day, case_no_for, case_no_on, county_delivery, deadline
from store.models import Case, utcnow

if TYPE_CHECKING:
    from hub import Hub


@dataclass
class PlannedCase:
    """A planned case: the plan, the parent's row (its values as after the write) and
    each sub-case's row with its route."""

    plan: CasePlan
    parent: CaseRow
    subs: list[tuple[CaseRow, Route]]


@dataclass(frozen=True)
class CaseBasis:
    """What an application's rows hold that no state of the store decides: routes (the
    routing table and the operators' overrides are in-memory snapshots), the sealed
    payload, the applicant's hash, the deadlines, the time and day. Made before the
    unit's transaction (``case_basis``), so the writer holds the store's lock (SQLite's
    one writer, the group commit's leader) only for what needs it: ids, numbers, rows."""

    routes: list[tuple[str, Route]]
    payload_enc: bytes
    id_hash: str | None
    deadlines: dict[str, dict[str, Any]]
    now: datetime
    day: str


def case_basis(hub: Hub, canonical: CanonicalCase, now: datetime | None = None) -> CaseBasis:
    now = now or utcnow()
    routes = [(county, hub.routes.resolve(county, canonical.item))
              for county in canonical.county_codes]
    return CaseBasis(
        routes=routes,
        payload_enc=hub.cipher.seal_json(canonical.to_dict()),  # sealed once, stored on each
        id_hash=hub.cipher.id_hash(canonical.applicant.id_no or canonical.applicant.uscc),
        deadlines={county: deadline(hub, county, canonical.item, now) for county, _ in routes},
        now=now, day=case_day(now))


def plan_case(
    hub: Hub, session: Session | Connection, canonical: CanonicalCase, *, kind: str,
    answer_for: Callable[[Any, list[Any]], dict[str, Any] | None] | None = None,
    source: str = "province", stage: str = "received", namespace: str = "",
    deliver: bool = True, taken_over: tuple[Any, ...] | None = None,
    now: datetime | None = None, ids: list[int] | None = None,
    basis: CaseBasis | None = None,
) -> PlannedCase:
    """A case and one sub-case per county, each routed on its own; an auto route gets
    its county delivery queued, a manual one waits in the operators' queue.

    ``taken_over``: the parent found for (item, apply_no) (``store.unit_open``)
    whose failed validation this valid request takes over: it keeps its row and history
    and gets the sub-cases. ``answer_for(parent, subs)``
    makes the answer sealed on the parent. ``deliver=False`` queues nothing (a case the
    county opened itself, in its ``namespace``). ``ids``: case ids reserved already
    (``store.unit_open``), at least as many as the new rows; the rest stay unused.
    ``basis``: made already (``case_basis``); else made here, at ``now``.
    """
    cipher = hub.cipher
    basis = basis or case_basis(hub, canonical, now)
    now, routes, payload_enc, id_hash = basis.now, basis.routes, basis.payload_enc, basis.id_hash
    ids = _ids(session, len(routes) + (taken_over is None), ids)
    common = {"item": canonical.item, "apply_no": canonical.apply_no, "namespace": namespace,
              "city_code": canonical.city_code, "source": source, "stage": stage,
              "applicant_id_hash": id_hash, "payload_enc": payload_enc, "answer_enc": None,
              "created_at": now, "updated_at": now}
    if taken_over is None:
        parent_id = ids.pop(0)
        parent = CaseRow(common, id=parent_id,
                         case_no=case_no_on(canonical.city_code, parent_id, basis.day),
                         parent_id=None, county_code="", route_adapter=None,
                         route_mode=None, promised_days=None, due_at=None)
    else:
        parent_id, case_no, *_ = taken_over
        created_at = session.scalar(select(Case.created_at).where(Case.id == parent_id))
        parent = CaseRow(common, id=parent_id, case_no=case_no, parent_id=None,
                         county_code="", route_adapter=None, route_mode=None,
                         promised_days=None, due_at=None, created_at=created_at)
    subs = [(CaseRow(common, id=i, case_no=case_no_on(county, i, basis.day),
                     parent_id=parent_id, county_code=county, route_adapter=route.adapter,
                     route_mode=route.mode, **basis.deadlines[county]),
             route)
            for i, (county, route) in zip(ids, routes, strict=True)]
    made = answer_for(parent, [row for row, _ in subs]) if answer_for is not None else None
    parent["answer_enc"] = None if made is None else cipher.seal_json(made)
    plan = CasePlan(kind, cases=[row for row, _ in subs])
    if taken_over is None:
        plan.cases.insert(0, parent)
    else:
        plan.parent_update = {"_id": parent_id, "stage": stage, "payload_enc": payload_enc,
                              "applicant_id_hash": id_hash,
                              "answer_enc": parent["answer_enc"], "updated_at": now}
    plan.messages = [county_delivery(canonical, sub, route)  # type: ignore[arg-type]
                     for sub, route in subs
                     if deliver and not route.manual and hub.adapter(route.adapter).delivers]
    return PlannedCase(plan, parent, subs)


def plan_failure(hub: Hub, session: Session | Connection, item: str, apply_no: str,
                 doc: dict[str, Any], answer: dict[str, Any], opinion: str,
                 found: tuple[Any, ...] | None, stage: str,
                 now: datetime | None = None, ids: list[int] | None = None) -> PlannedCase:
    """A request that failed validation (spec 4.1): a parent at ``stage`` holding what
    was sent (or the earlier failed record, updated), its stage event and that stage
    pushed to the province."""
    from store.cases import province_message  # the province's push format

    cipher = hub.cipher
    now = now or utcnow()
    applicant = doc.get("applicant") if isinstance(doc.get("applicant"), dict) else {}
    id_no = applicant.get("id_no") if isinstance(applicant.get("id_no"), str) else None
    values = {"stage": stage, "payload_enc": cipher.seal_json(doc),
              "applicant_id_hash": cipher.id_hash(id_no), "answer_enc": cipher.seal_json(answer),
              "updated_at": now}
    plan = CasePlan("validation_failed")
    if found is None:
        (case_id,) = _ids(session, 1, ids)
        parent = CaseRow(values, id=case_id, case_no=case_no_for(hub.city.code, case_id, now),
                         parent_id=None, item=item, apply_no=apply_no, namespace="",
                         city_code=hub.city.code, county_code="", source="province",
                         route_adapter=None, route_mode=None, promised_days=None,
                         due_at=None, created_at=now)
        plan.cases.append(parent)
    else:
        case_id, case_no, *_ = found
        parent = CaseRow(values, id=case_id, case_no=case_no, item=item, apply_no=apply_no,
                         county_code="")
        plan.parent_update = {"_id": case_id, **values}
    plan.events.append({"case_id": case_id, "stage": stage, "at": now, "opinion": opinion,
                        "source": "hub"})
    plan.messages.append(province_message(hub, parent, "status", {  # type: ignore[arg-type]
        "apply_no": apply_no, "item": item, "county_code": None, "case_no": parent.case_no,
        "stage": stage, "at": _iso(now), "operator": hub.config.hub_app_id,
        "opinion": opinion, "filing_no": None}))
    return PlannedCase(plan, parent, [])


def _ids(session: Session | Connection, count: int, reserved: list[int] | None) -> list[int]:
    """``count`` case ids: the first of ``reserved``, or fresh ones."""
    if reserved is not None and len(reserved) >= count:
        return list(reserved[:count])
    return reserve_case_ids(session, count)


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds") + "+00:00" if at.tzinfo is None else at.isoformat()


# ----------------------------------------------------------------- for ORM callers


@dataclass
class OpenedCase:
    parent: Case
    subs: list[tuple[Case, Route]]


def _attached(session: Session, row: CaseRow) -> Case:
    """The written row as a ``Case`` in ``session``, as if loaded (later changes flush as
    UPDATEs)."""
    case = Case(**row)
    make_transient_to_detached(case)
    session.add(case)
    return case


def open_case(
    session: Session, hub: Hub, canonical: CanonicalCase, answer: dict[str, Any] | None = None,
    source: str = "province", stage: str = "received", deliver: bool = True,
    answer_for: Callable[[Any, list[Any]], dict[str, Any]] | None = None,
    namespace: str = "", kind: str = "open",
) -> OpenedCase:
    """``plan_case`` written (``write_case``), with the rows as ``Case`` objects in the
    session for callers that go on with the ORM (record a stage, a test's fixtures)."""
    planned = plan_case(hub, session, canonical, kind=kind, source=source, stage=stage,
                        namespace=namespace, deliver=deliver,
                        answer_for=answer_for or (lambda _p, _s: answer))
    write_case(session, hub.cipher, planned.plan)
    return OpenedCase(_attached(session, planned.parent),
                      [(_attached(session, row), route) for row, route in planned.subs])
