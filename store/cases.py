"""Cases and their stages: the one place that opens cases, splits them per county,
records stages and queues the pushes to the province.

Everything here runs inside the caller's transaction (``hub.transaction()``), so a
case, its sub-cases and the messages they cause are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from mapping.canonical import CanonicalCase
from mapping.items import can_follow
from routes.table import Route
from store.driver import DriverStatement
from store.models import Case, StageEvent, utcnow
from store.outbox import NewMessage, enqueue_rows, mark_new_rows

if TYPE_CHECKING:
    from hub import Hub

#: Where pushes to the province go (partner app id in config.yaml).
PROVINCE = "province"


@dataclass
class OpenedCase:
    parent: Case
    subs: list[tuple[Case, Route]]


#: The day in a case number is the operators' day (a case at 01:00 Beijing time carries
#: that Beijing date, not the UTC date before it).
CASE_NO_TZ = ZoneInfo("Asia/Shanghai")


def case_no_for(prefix: str, row_id: int, when: datetime, tz: tzinfo = CASE_NO_TZ) -> str:
    """Readable, unique case numbers: city or county code, local date, row id (``when``
    is the store's naive UTC)."""
    local = when.replace(tzinfo=UTC).astimezone(tz) if when.tzinfo is None else when.astimezone(tz)
    return f"{prefix}{local:%Y%m%d}{row_id:08d}"


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
    ids: list[int] | None = None, namespace: str = "",
) -> NewCase | None:
    """Write a case, its sub-cases and their county deliveries with three statements on
    the driver's cursor (store.driver), in the caller's transaction; None where the
    store cannot reserve ids first (then ``open_case`` uses the ORM).

    ``answer_for(parent, subs)`` is given the rows (``CaseRow``) with their numbers;
    ``ids``, if given, were reserved already (``next_case_ids``: one per county, plus one).
    ``namespace``: whose number ``apply_no`` is (``Case.namespace``; "" the province's).
    """
    routes = [(county, hub.routes.resolve(county, canonical.item))
              for county in canonical.county_codes]
    ids = ids or next_case_ids(conn, 1 + len(routes))
    if ids is None:
        return None
    now = utcnow()
    common = {"item": canonical.item, "apply_no": canonical.apply_no, "namespace": namespace,
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
    namespace: str = "",
) -> OpenedCase:
    """Store a case and one sub-case per county, each routed on its own.

    An auto route gets its delivery message queued in this transaction; a manual one
    waits in the operators' queue (its sub-case's ``route_mode`` is ``manual``).
    ``deliver=False`` queues nothing: a case the county opened itself (申请并受理), whose
    number is in that county's ``namespace``.
    ``answer_for(parent, subs)``, if given, makes the answer stored on the parent from
    the numbered cases, before anything is written (instead of ``answer``).

    Written by ``insert_case`` where the ids can be reserved first (SQLite, PostgreSQL);
    the returned ``Case`` objects are in the session as usual.
    """
    written = insert_case(session, hub, canonical, answer, source, stage, deliver, answer_for,
                          namespace=namespace)
    if written is not None:
        parent = _attached(session, written.parent)
        subs = [(_attached(session, row), route) for row, route in written.subs]
        if written.queued:
            mark_new_rows(session)  # as hub.enqueue: wakes the workers after the commit
        return OpenedCase(parent, subs)
    # another store: the ORM, one flush per case
    common = {"item": canonical.item, "apply_no": canonical.apply_no, "namespace": namespace,
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


#: Stages after which nothing is recorded (an event after one is a duplicate).
CLOSED_STAGES = ("completed", "rejected", "validation_failed")
_LOCK_CHUNK = 500


class StageConflict(RuntimeError):
    """A stage's conditional UPDATE matched no row: the case moved under a writer that
    did not hold its row lock (``lock_stages``). Never expected; the transaction rolls
    back rather than record a second final stage."""


def lock_stages(session: Session, case_ids: Iterable[int]) -> dict[int, str]:
    """Each case's stage as committed, its row locked until the transaction ends.

    PostgreSQL: ``SELECT ... FOR UPDATE`` in id order (two writers of several cases never
    deadlock), so a concurrent writer of the same case waits here and then reads what
    the first one committed. SQLite: every transaction of the hub holds the database's
    write lock from its ``BEGIN IMMEDIATE`` (store.db), so the read is current already.
    """
    table = Case.__table__
    ordered = sorted(set(case_ids))
    stages: dict[int, str] = {}
    for i in range(0, len(ordered), _LOCK_CHUNK):
        rows = session.execute(
            select(table.c.id, table.c.stage).where(table.c.id.in_(ordered[i:i + _LOCK_CHUNK]))
            .order_by(table.c.id).with_for_update())
        stages.update((case_id, stage) for case_id, stage in rows)
    return stages


def advance_stages(session: Session, moves: Sequence[tuple[int, str, str]],
                   now: datetime) -> None:
    """Move each case ``(id, from_stage, to_stage)`` with a conditional UPDATE: only
    where the case is still at ``from_stage`` and not closed. The database's own rule
    for one final stage per case; ``StageConflict`` unless every case matched."""
    if not moves:
        return
    table = Case.__table__
    stmt = (update(table)
            .where(table.c.id == bindparam("_id"), table.c.stage == bindparam("_from"),
                   *(table.c.stage != closed for closed in CLOSED_STAGES))
            .values(stage=bindparam("_to"), updated_at=bindparam("_now")))
    params = [{"_id": i, "_from": old, "_to": new, "_now": now} for i, old, new in moves]
    result = session.connection().execute(stmt, params[0] if len(params) == 1 else params)
    if result.rowcount != len(moves):
        raise StageConflict(f"{len(moves) - result.rowcount} case(s) moved concurrently")


def decide_stage(current: str, last: tuple[str, datetime, str | None] | None, stage: str,
                 at: datetime, operator: str | None) -> StageOutcome:
    """Whether ``stage`` may be recorded on a case at ``current`` whose last event is
    ``last`` (stage, at, operator): the one rule for callbacks, marks and imports.

    Stages move forward only. A repeat of the last event (``approved``: same time and
    operator too) or any event after a closed stage is a duplicate: answered, and
    changes nothing. ``approved`` may repeat when it is a new event.
    """
    if stage == current and last is not None and last[0] == stage and (
            stage != "approved" or (last[1] == at and last[2] == operator)):
        return StageOutcome(False, True, None, "already recorded")
    previous = current if current != "received" else None
    if not can_follow(previous, stage):
        return StageOutcome(False, current in CLOSED_STAGES, None,
                            f"stage {stage} cannot follow {current}")
    return StageOutcome(True, False)


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
    """Record a stage on a (sub-)case if it may follow (``decide_stage``), and queue its
    push to the province.

    Concurrent writers of one case are serialised by its row lock (``lock_stages``) and
    the stage moves by a conditional UPDATE (``advance_stages``): of two final stages
    reported at the same moment exactly one is recorded, the other is a duplicate.
    """
    at = at or utcnow()
    current = lock_stages(session, [case.id])[case.id]
    set_committed_value(case, "stage", current)
    last = last_event(session, case) if stage == current else None
    decided = decide_stage(current, None if last is None else (last.stage, last.at, last.operator),
                           stage, at, operator)
    if not decided.recorded:
        return StageOutcome(False, decided.duplicate, last if decided.duplicate else None,
                            decided.reason)
    now = utcnow()
    advance_stages(session, [(case.id, current, stage)], now)
    set_committed_value(case, "stage", stage)
    set_committed_value(case, "updated_at", now)
    event = StageEvent(
        case_id=case.id, stage=stage, at=at, operator=operator, opinion=opinion,
        filing_no=filing_no, source=source,
        result_enc=None if result is None else hub.cipher.seal_json(result),
        on_time=on_time(case, stage, at),
    )
    session.add(event)
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
