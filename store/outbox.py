"""The outbox: every outgoing call is a row first (after procrastinate's job table).

A worker claims due rows in ONE short statement — ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, a write transaction on SQLite (which has one writer at a time) — marking
them ``in_flight`` with a lease. The call is made outside any lock; the result is
recorded by ``finish``, fenced on the claimer so a worker whose lease ran out cannot
overwrite the row another worker has since claimed. A row whose lease expired (its
worker died) is simply due again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary, WeakMethod

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.orm import Session

from routes.policy import RetryPolicy
from store.crypto import DataCipher
from store.driver import DriverStatement
from store.models import InterfaceSwitch, OutboxMessage, utcnow
from store.row_batch import RowBatch
from store.sealed import seal_text

PENDING, IN_FLIGHT, DONE, DEAD = "pending", "in_flight", "done", "dead"


@dataclass(frozen=True)
class NewMessage:
    """What a producer hands the outbox (in the same transaction as its cause)."""

    interface: str
    adapter: str
    partner: str
    operation: str
    payload: dict[str, Any]
    policy: RetryPolicy
    timeout: float
    division: str | None = None
    item: str | None = None
    case_id: int | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Claimed:
    id: int
    interface: str
    adapter: str
    partner: str
    operation: str
    division: str | None
    item: str | None
    case_id: int | None
    payload_enc: bytes
    attempts: int
    max_attempts: int
    min_backoff: float
    max_backoff: float
    timeout: float
    jitter: float

    @property
    def policy(self) -> RetryPolicy:
        """The message's retry policy as configured when it was queued (jitter too)."""
        return RetryPolicy(self.max_attempts, self.min_backoff, self.max_backoff, self.jitter)


_CLAIMED_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.interface,
    OutboxMessage.adapter,
    OutboxMessage.partner,
    OutboxMessage.operation,
    OutboxMessage.division,
    OutboxMessage.item,
    OutboxMessage.case_id,
    OutboxMessage.payload_enc,
    OutboxMessage.attempts,
    OutboxMessage.max_attempts,
    OutboxMessage.min_backoff,
    OutboxMessage.max_backoff,
    OutboxMessage.timeout,
    OutboxMessage.jitter,
)


#: The columns ``message_row`` gives (the others keep their NULL until the row is claimed).
ROW_COLUMNS = (
    "interface", "adapter", "partner", "operation", "division", "item", "case_id", "payload_enc",
    "status", "attempts", "max_attempts", "min_backoff", "max_backoff", "jitter", "timeout",
    "next_attempt_at", "created_at", "resubmit_count",
)
# Every producer's hot path: run on the driver's cursor (store.driver).
_INSERT = DriverStatement(insert(OutboxMessage.__table__), ROW_COLUMNS)
_INSERT_ID = DriverStatement(insert(OutboxMessage.__table__).returning(
    OutboxMessage.__table__.c.id), ROW_COLUMNS)


def message_row(cipher: DataCipher, msg: NewMessage, now: datetime,
                hold_until: datetime | None = None) -> dict[str, Any]:
    """The column values of an outbox row for ``msg`` (the one row format of the outbox).
    ``hold_until``: no worker takes it before then (its producer delivers it itself)."""
    return {
        "interface": msg.interface,
        "adapter": msg.adapter,
        "partner": msg.partner,
        "operation": msg.operation,
        "division": msg.division,
        "item": msg.item,
        "case_id": msg.case_id,
        "payload_enc": cipher.seal_json(msg.payload),
        "status": PENDING,
        "attempts": 0,
        "max_attempts": msg.policy.max_attempts,
        "min_backoff": msg.policy.min_backoff,
        "max_backoff": msg.policy.max_backoff,
        "jitter": msg.policy.jitter,
        "timeout": msg.timeout,
        "next_attempt_at": (now + timedelta(seconds=msg.delay) if hold_until is None
                            else hold_until),
        "created_at": now,
        "resubmit_count": 0,
    }


# ---------------------------------------------------------------- "new rows": wake the workers
# A producer marks its session (``mark_new_rows``); once that transaction has committed
# (SQLAlchemy's ``after_commit``), the callbacks registered for its engine run — the
# delivery workers of this process wake at once instead of at their next poll.

_NEW_ROWS = "outbox_new_rows"
_on_new_rows: WeakKeyDictionary[Engine, list[WeakMethod[Callable[[], None]]]] = (
    WeakKeyDictionary())


def on_new_rows(engine: Engine, callback: Callable[[], None]) -> None:
    """Call ``callback`` (a bound method, held weakly: a closed hub is forgotten) after
    each commit on ``engine`` that queued messages."""
    _on_new_rows.setdefault(engine, []).append(WeakMethod(callback))  # type: ignore[arg-type]


def mark_new_rows(target: Session | Connection) -> None:
    """The transaction queues messages: wake the workers once it commits. A Session's
    commit does so itself (below); a bare Connection's owner asks ``took_new_rows``."""
    target.info[_NEW_ROWS] = True


def took_new_rows(conn: Connection | Session) -> bool:
    """Whether work on the bare ``conn`` queued messages (the flag is cleared): its
    transaction's owner calls ``new_rows_committed`` once it has committed. A connection
    lost meanwhile answers False (its rows rolled back with it) rather than raising, so
    the loss itself reaches the caller's retry (store.resilience)."""
    if isinstance(conn, Connection) and conn.invalidated:
        return False
    try:
        return bool(conn.info.pop(_NEW_ROWS, False))
    except PendingRollbackError:  # the transaction failed on a lost connection
        return False


def new_rows_committed(engine: Engine) -> None:
    """Messages were committed on ``engine`` (a bare connection's caller says so itself)."""
    for ref in _on_new_rows.get(engine, ()):
        callback = ref()
        if callback is not None:
            callback()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_NEW_ROWS, False):
        bind = session.get_bind()
        new_rows_committed(getattr(bind, "engine", bind))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_NEW_ROWS, None)


def enqueue(session: Session, cipher: DataCipher, msg: NewMessage,
            want_id: bool = True) -> int | None:
    """Insert the message in the caller's transaction: one prepared Core statement (no
    ORM flush, no statement built per call — every producer's hot path); its id when
    ``want_id``. The workers wake when the transaction commits."""
    mark_new_rows(session)
    if want_id:
        return int(_INSERT_ID.scalar(session, message_row(cipher, msg, utcnow())))
    _INSERT.execute(session, message_row(cipher, msg, utcnow()))
    return None


def enqueue_many(session: Session, cipher: DataCipher, msgs: list[NewMessage]) -> None:
    """Insert many messages in the caller's transaction (one executemany), in order."""
    if msgs:
        insert_messages(session, cipher, msgs)


def insert_messages(session: Session | Connection, cipher: DataCipher,
                    msgs: list[NewMessage], hold_until: datetime | None = None,
                    batch: RowBatch | None = None) -> None:
    """Insert many messages in the caller's transaction (one executemany), in order, and
    wake the workers once it commits (``mark_new_rows``). With ``batch``, the rows are
    added to it instead (its owner flushes it in the same transaction)."""
    if msgs:
        mark_new_rows(session)
        now = utcnow()
        rows = [message_row(cipher, m, now, hold_until) for m in msgs]
        if batch is None:
            _INSERT.executemany(session, rows)
        else:
            batch.add(_INSERT, rows)


def outbox_insert_from(select_of: Callable[[list[Any]], Any]) -> Any:
    """An ``INSERT INTO outbox (ROW_COLUMNS) SELECT ...`` for a statement that builds the
    row itself (a data-modifying CTE): ``select_of(columns)`` gives the SELECT of those
    columns, in order; the values come from ``message_row``. Returns the insert,
    ``RETURNING id``."""
    table = OutboxMessage.__table__
    columns = [table.c[name] for name in ROW_COLUMNS]
    return insert(table).from_select(columns, select_of(columns)).returning(table.c.id)


def _disabled(kind: str):  # type: ignore[no-untyped-def]
    return select(InterfaceSwitch.name).where(
        InterfaceSwitch.kind == kind, InterfaceSwitch.enabled.is_(False)
    )


_INTERFACE_DISABLED = DriverStatement(select(InterfaceSwitch.name).where(
    InterfaceSwitch.kind == "interface", InterfaceSwitch.name == bindparam("name"),
    InterfaceSwitch.enabled.is_(False)))


def interface_disabled(conn: Connection | Session, name: str) -> bool:
    """Whether an operator has switched interface ``name`` off (on every request's path:
    one prepared statement on the driver's cursor)."""
    return bool(_INTERFACE_DISABLED.execute(conn, {"name": name}))


def held_condition():  # type: ignore[no-untyped-def]
    """True for rows whose interface or partner an operator has disabled."""
    return or_(
        OutboxMessage.interface.in_(_disabled("interface")),
        OutboxMessage.partner.in_(_disabled("partner")),
    )


def _claim_stmt(where, worker_id: str, lease_seconds: float, now: datetime):  # type: ignore[no-untyped-def]
    return (
        update(OutboxMessage)
        .where(where)
        .values(
            status=IN_FLIGHT,
            lease_until=now + timedelta(seconds=lease_seconds),
            claimed_by=worker_id,
            attempts=OutboxMessage.attempts + 1,
        )
        .returning(*_CLAIMED_COLUMNS)
        .execution_options(synchronize_session=False)
    )


def claim_one(session: Session, message_id: int, worker_id: str, lease_seconds: float,
              now: datetime | None = None) -> Claimed | None:
    """Claim one given message if it is pending and not held (e.g. a sync query that the
    intake wants delivered at once); None if a worker has it already."""
    now = now or utcnow()
    where = and_(OutboxMessage.id == message_id, OutboxMessage.status == PENDING,
                 ~held_condition())
    row = session.execute(_claim_stmt(where, worker_id, lease_seconds, now)).first()
    return Claimed(*row) if row else None


def claim(
    session: Session,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    postgres: bool,
    now: datetime | None = None,
) -> list[Claimed]:
    """Claim up to ``limit`` due rows for ``worker_id``; commit right after (short lock)."""
    now = now or utcnow()
    due = (
        select(OutboxMessage.id)
        .where(
            or_(
                and_(OutboxMessage.status == PENDING, OutboxMessage.next_attempt_at <= now),
                and_(OutboxMessage.status == IN_FLIGHT, OutboxMessage.lease_until < now),
            )
        )
        .where(~held_condition())
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
    )
    if postgres:
        due = due.with_for_update(skip_locked=True)
    stmt = _claim_stmt(OutboxMessage.id.in_(due.scalar_subquery()), worker_id, lease_seconds, now)
    return [Claimed(*row) for row in session.execute(stmt).all()]


def release(session: Session, worker_ids: list[str], ids: list[int] | None = None,
            attempted: bool = False) -> int:
    """Hand rows claimed by ``worker_ids`` back at once (a draining worker): pending and
    due now. ``ids`` None: every row they hold. Unless ``attempted`` (a call may be under
    way), the claim's attempt is not counted. Fenced on the claimer like ``finish``."""
    where = and_(OutboxMessage.claimed_by.in_(worker_ids), OutboxMessage.status == IN_FLIGHT)
    if ids is not None:
        where = and_(where, OutboxMessage.id.in_(ids))
    values: dict[str, Any] = {"status": PENDING, "claimed_by": None, "lease_until": None,
                              "next_attempt_at": utcnow()}
    if not attempted:
        values["attempts"] = case((OutboxMessage.attempts > 0, OutboxMessage.attempts - 1),
                                  else_=0)
    return session.execute(
        update(OutboxMessage).where(where).values(**values)
        .execution_options(synchronize_session=False)
    ).rowcount


def renew(session: Session, worker_id: str, ids: list[int], lease_seconds: float,
          now: datetime | None = None) -> set[int]:
    """Extend the lease of rows ``worker_id`` still holds (a batch under way); the ids
    still held. Fenced on the claimer like ``finish``: a row whose lease ran out and
    that another worker claimed since is not taken back."""
    if not ids:
        return set()
    now = now or utcnow()
    stmt = (
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == worker_id,
               OutboxMessage.status == IN_FLIGHT)
        .values(lease_until=now + timedelta(seconds=lease_seconds))
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return set(session.scalars(stmt).all())


_T = OutboxMessage.__table__
# Built once: finishing is on the hot path, and building a statement costs more than running it.
_FINISH = (
    update(_T)
    .where(_T.c.id == bindparam("b_id"), _T.c.claimed_by == bindparam("b_worker"),
           _T.c.status == IN_FLIGHT)
    .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"),
            delivered_at=bindparam("b_delivered"), last_error=bindparam("b_error"),
            lease_until=None, claimed_by=None)
)


@dataclass(frozen=True)
class Outcome:
    """One attempt's result, as ``finish_many`` records it."""

    claimed: Claimed
    ok: bool
    permanent: bool = False
    error: str | None = None


def _finish_params(outcome: Outcome, now: datetime) -> dict[str, Any]:
    claimed, error = outcome.claimed, outcome.error
    params: dict[str, Any] = {"b_id": claimed.id, "b_next": now, "b_delivered": None,
                              "b_error": None}
    if outcome.ok:
        params.update(b_status=DONE, b_delivered=now)
    elif outcome.permanent or claimed.policy.exhausted(claimed.attempts):
        reason = "permanent" if outcome.permanent else f"gave up after {claimed.attempts} attempts"
        params.update(b_status=DEAD, b_error=f"{reason}: {error or 'failed'}"[:4000])
    else:
        delay = claimed.policy.backoff(claimed.attempts)
        params.update(b_status=PENDING, b_next=now + timedelta(seconds=delay),
                      b_error=(error or "failed")[:4000])
    return params


# The whole batch in one statement and one round trip, as arrays: the statement text never
# changes, so it is parsed and planned once (a VALUES list would be compiled per batch).
_FINISH_PG = text("""
    UPDATE outbox AS o
       SET status = v.status, next_attempt_at = v.next_at, delivered_at = v.delivered_at,
           last_error_enc = v.error, lease_until = NULL, claimed_by = NULL
      FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS varchar[]),
                  CAST(:nexts AS timestamp[]), CAST(:delivered AS timestamp[]),
                  CAST(:errors AS bytea[])) AS v(id, status, next_at, delivered_at, error)
     WHERE o.id = v.id AND o.claimed_by = :worker AND o.status = 'in_flight'
    RETURNING o.id
""")


def finish_many(session: Session, worker_id: str, outcomes: list[Outcome], postgres: bool,
                now: datetime | None = None) -> list[str | None]:
    """Record attempts' outcomes; for each, its new status, or None if the lease was lost.

    Fenced on the claimer: a worker whose lease ran out cannot overwrite a row another
    worker claimed since. On PostgreSQL all rows go in one ``UPDATE … FROM unnest(arrays)``
    (one round trip per batch); SQLite is in-process, so one prepared UPDATE per row.
    The peer's answer is kept in the call log, with the request, not here.
    """
    now = now or utcnow()
    params = [_finish_params(o, now) for o in outcomes]
    conn = session.connection()
    if postgres:
        kept = set(conn.execute(_FINISH_PG, {
            "ids": [p["b_id"] for p in params], "statuses": [p["b_status"] for p in params],
            "nexts": [p["b_next"] for p in params],
            "delivered": [p["b_delivered"] for p in params],
            "errors": [seal_text(conn.dialect, p["b_error"]) for p in params],  # sealed
            "worker": worker_id,
        }).scalars())
    else:
        kept = {p["b_id"] for p in params
                if conn.execute(_FINISH, {**p, "b_worker": worker_id}).rowcount == 1}
    return [p["b_status"] if p["b_id"] in kept else None for p in params]


@dataclass(frozen=True)
class MessageFilter:
    """Which messages to resubmit (or list): all fields optional and combined with AND."""

    ids: tuple[int, ...] = ()
    item: str | None = None
    division: str | None = None
    interface: str | None = None
    partner: str | None = None
    statuses: tuple[str, ...] = (DEAD,)
    since: datetime | None = None
    until: datetime | None = None

    def where(self):  # type: ignore[no-untyped-def]
        conds = [OutboxMessage.status.in_(self.statuses)]
        if self.ids:
            conds.append(OutboxMessage.id.in_(self.ids))
        if self.item:
            conds.append(OutboxMessage.item == self.item)
        if self.division:
            conds.append(OutboxMessage.division == self.division)
        if self.interface:
            conds.append(OutboxMessage.interface == self.interface)
        if self.partner:
            conds.append(OutboxMessage.partner == self.partner)
        if self.since:
            conds.append(OutboxMessage.created_at >= self.since)
        if self.until:
            conds.append(OutboxMessage.created_at < self.until)
        return and_(*conds)


def find(session: Session, flt: MessageFilter, limit: int = 1000) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(flt.where()).order_by(OutboxMessage.id).limit(limit)
    return list(session.scalars(stmt))


def resubmit(session: Session, flt: MessageFilter, actor: str) -> list[int]:
    """Put matching parked messages back in the queue, with a fresh attempt budget.

    One UPDATE guarded by the status filter: a second click, or two overlapping bulk
    runs, find the rows already ``pending`` and move nothing twice.
    """
    now = utcnow()
    stmt = (
        update(OutboxMessage)
        .where(flt.where())
        .where(OutboxMessage.status.not_in((PENDING, IN_FLIGHT)))
        .values(
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            lease_until=None,
            claimed_by=None,
            resubmitted_by=actor,
            resubmitted_at=now,
            resubmit_count=OutboxMessage.resubmit_count + 1,
        )
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(session.scalars(stmt).all())


def counts_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    ).all()
    counts = {status: n for status, n in rows}
    held = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.status == PENDING, held_condition())
    )
    counts["held"] = held or 0
    return counts
