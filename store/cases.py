"""Cases and their stages: the one place that opens cases, splits them per county,
records stages and queues the pushes to the province.

Everything here runs inside the caller's transaction (``hub.transaction()``), so a
case, its sub-cases and the messages they cause are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.orm import Session, make_transient_to_detached

from mapping.canonical import CanonicalCase
from mapping.items import can_follow
from routes.table import Route
from store.driver import DriverStatement
from store.models import Case, StageEvent, utcnow
from store.outbox import NewMessage, enqueue_rows

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


_CASE_COLUMNS = tuple(c.key for c in Case.__table__.columns)
_MAX_ID = DriverStatement(select(func.max(Case.__table__.c.id)))
_NEXT_IDS = DriverStatement(text("SELECT nextval(pg_get_serial_sequence('cases', 'id')) "
                                 "FROM generate_series(1, :n)"))
_INSERT = DriverStatement(insert(Case.__table__), _CASE_COLUMNS)


def next_case_ids(conn: Connection | Session, count: int) -> list[int] | None:
    """``count`` fresh ids for new cases, so their numbers are known before the INSERT;
    None where the store has no cheap way to reserve them (the ORM path is used).

    PostgreSQL: the table's own sequence. SQLite: every transaction of the hub starts
    with ``BEGIN IMMEDIATE`` (store.db), so this writer holds the database's one write
    lock and ``max(id) + 1 ...`` are exactly the rowids SQLite would have assigned.
    """
    if isinstance(conn, Session):
        conn = conn.connection()
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return sorted(int(r) for r, in _NEXT_IDS.execute(conn, {"n": count}))
    if dialect == "sqlite" and conn.in_transaction():
        top = _MAX_ID.scalar(conn) or 0
        return list(range(top + 1, top + 1 + count))
    return None


class CaseRow(dict[str, Any]):
    """A ``cases`` row as written (column -> value), read by attribute like a ``Case``:
    the grouped intake answers from it without building ORM objects."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class NewCase:
    """A case written by ``insert_case``: its rows and its sub-cases' routes."""

    parent: CaseRow
    subs: list[tuple[CaseRow, Route]]
    #: Whether county deliveries were queued (the delivery workers may be woken).
    queued: bool


def deadline(hub: Hub, county: str, item: str, received_at: datetime) -> dict[str, Any]:
    """A sub-case's promised working days and due time, fixed when it is received (a
    later change of the promise applies to cases received after it)."""
    days, due = hub.overrides.due(county, item, received_at)
    return {"promised_days": days, "due_at": due}


def insert_case(
    conn: Connection | Session, hub: Hub, canonical: CanonicalCase,
    answer: dict[str, Any] | None = None, source: str = "province", stage: str = "received",
    deliver: bool = True, answer_for: Callable[[Any, list[Any]], dict[str, Any]] | None = None,
    ids: list[int] | None = None,
) -> NewCase | None:
    """Write a case, its sub-cases and their county deliveries with three statements on
    the driver's cursor (store.driver), in the caller's transaction; None where the
    store cannot reserve ids first (then ``open_case`` uses the ORM).

    ``answer_for(parent, subs)`` is given the rows (``CaseRow``) with their numbers;
    ``ids``, if given, were reserved already (``next_case_ids``: one per county, plus one).
    """
    routes = [(county, hub.routes.resolve(county, canonical.item))
              for county in canonical.county_codes]
    ids = ids or next_case_ids(conn, 1 + len(routes))
    if ids is None:
        return None
    now = utcnow()
    common = {"item": canonical.item, "apply_no": canonical.apply_no,
              "city_code": canonical.city_code, "source": source, "stage": stage,
              "applicant_id_hash": hub.cipher.id_hash(canonical.applicant.id_no
                                                      or canonical.applicant.uscc),
              # sealed once, stored on each
              "payload_enc": hub.cipher.seal_json(canonical.to_dict()),
              "answer_enc": None, "created_at": now, "updated_at": now}
    parent = CaseRow(common, id=ids[0], case_no=case_no_for(canonical.city_code, ids[0], now),
                     parent_id=None, county_code="", route_adapter=None, route_mode=None,
                     promised_days=None, due_at=None)
    subs = [(CaseRow(common, id=i, case_no=case_no_for(county, i, now), parent_id=ids[0],
                     county_code=county, route_adapter=route.adapter, route_mode=route.mode,
                     **deadline(hub, county, canonical.item, now)),
             route)
            for i, (county, route) in zip(ids[1:], routes, strict=True)]
    made = answer_for(parent, [c for c, _ in subs]) if answer_for is not None else answer
    parent["answer_enc"] = None if made is None else hub.cipher.seal_json(made)
    _INSERT.executemany(conn, [parent, *(c for c, _ in subs)])
    messages = [county_delivery(canonical, sub, route) for sub, route in subs  # type: ignore[arg-type]
                if deliver and not route.manual and hub.adapter(route.adapter).delivers]
    enqueue_rows(conn, hub.cipher, messages)
    return NewCase(parent, subs, bool(messages))


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
    answer_for: Callable[[Case, list[Case]], dict[str, Any]] | None = None,
) -> OpenedCase:
    """Store a case and one sub-case per county, each routed on its own.

    An auto route gets its delivery message queued in this transaction; a manual one
    waits in the operators' queue (its sub-case's ``route_mode`` is ``manual``).
    ``deliver=False`` queues nothing: a case the county opened itself (申请并受理).
    ``answer_for(parent, subs)``, if given, makes the answer stored on the parent from
    the numbered cases, before anything is written (instead of ``answer``).

    Written by ``insert_case`` where the ids can be reserved first (SQLite, PostgreSQL);
    the returned ``Case`` objects are in the session as usual.
    """
    written = insert_case(session, hub, canonical, answer, source, stage, deliver, answer_for)
    if written is not None:
        parent = _attached(session, written.parent)
        subs = [(_attached(session, row), route) for row, route in written.subs]
        if written.queued:
            session.info["enqueued"] = True  # as hub.enqueue: wakes the delivery workers
        return OpenedCase(parent, subs)
    # another store: the ORM, one flush per case
    common = {"item": canonical.item, "apply_no": canonical.apply_no,
              "city_code": canonical.city_code, "source": source, "stage": stage,
              "applicant_id_hash": hub.cipher.id_hash(canonical.applicant.id_no
                                                      or canonical.applicant.uscc),
              "payload_enc": hub.cipher.seal_json(canonical.to_dict())}
    parent = _new_case(session, county_code="", **common, answer_enc=None if answer is None
                       else hub.cipher.seal_json(answer))
    subs = [(_new_case(session, parent_id=parent.id, county_code=county,
                       route_adapter=route.adapter, route_mode=route.mode,
                       **deadline(hub, county, canonical.item, utcnow()), **common), route)
            for county, route in ((c, hub.routes.resolve(c, canonical.item))
                                  for c in canonical.county_codes)]
    if answer_for is not None:
        parent.answer_enc = hub.cipher.seal_json(answer_for(parent, [c for c, _ in subs]))
    for sub, route in subs:
        if deliver and not route.manual and hub.adapter(route.adapter).delivers:
            hub.enqueue(session, county_delivery(canonical, sub, route), want_id=False)
    return OpenedCase(parent, subs)


def county_delivery(canonical: CanonicalCase, sub: Case, route: Route) -> NewMessage:
    """The message that delivers a sub-case to its county."""
    return NewMessage(
        interface=f"county.{canonical.item}", adapter=route.adapter, partner=route.partner or "",
        operation=canonical.item, payload=canonical.for_county(sub.county_code, sub.case_no),
        policy=route.retry, timeout=route.timeout, division=sub.county_code,
        item=canonical.item, case_id=sub.id,
    )


def queue_county_delivery(session: Session, hub: Hub, canonical: CanonicalCase, sub: Case,
                          route: Route) -> int:
    return hub.enqueue(session, county_delivery(canonical, sub, route))  # type: ignore[return-value]


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
        on_time=on_time(case, stage, at),
    )
    session.add(event)
    case.stage = stage
    case.updated_at = utcnow()
    if push:
        hub.enqueue(session, want_id=False, message=province_message(
            hub, case, "status", status_payload(case, stage, at, operator, opinion, filing_no)))
    return StageOutcome(True, False, event)


#: The stages whose timeliness is recorded (受理, 办结, and 申请并受理 which is both).
TIMED_STAGES = frozenset({"accepted", "completed", "apply_and_accept"})


def on_time(case: Case, stage: str, at: datetime) -> bool | None:
    """Whether ``stage`` at ``at`` came by the sub-case's due time (None: not timed)."""
    due = getattr(case, "due_at", None)
    if stage not in TIMED_STAGES or due is None:
        return None
    return at <= due


def status_payload(case: Case, stage: str, at: datetime, operator: str | None,
                   opinion: str | None, filing_no: str | None) -> dict[str, Any]:
    """The body of a ``/status`` push to the province (province.md) for one stage."""
    return {
        "apply_no": case.apply_no, "item": case.item, "county_code": case.county_code or None,
        "case_no": case.case_no, "stage": stage, "at": _iso(at), "operator": operator,
        "opinion": opinion, "filing_no": filing_no,
    }


def _iso(at: datetime) -> str:
    """Naive UTC (as stored) to ISO 8601 with offset, as the contracts want."""
    return at.isoformat(timespec="seconds") + "+00:00" if at.tzinfo is None else at.isoformat()


def find_case(session: Session, case_no: str) -> Case | None:
    return session.scalars(select(Case).where(Case.case_no == case_no)).first()
