"""The one function that writes a planned application: ``write_case``.

Every kind of application — a new one (with or without materials), a sync query, a
valid request taking over the record of a failed validation, a failed validation
itself, a listed defaulter's refusal, a county's 申请并受理 — is planned by its
adapter (``adapters.case_plan``: routes resolved there, numbers given, answer made)
and written here, in the caller's transaction: the case rows, the update of a parent
taken over, the stage events and the outbox rows (through ``store.outbox``, which also
wakes the workers after the commit). Nothing here resolves a route or decides anything.

``written`` counts the plans written per kind: the proof (and a metric) that every kind
ends here.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from store.crypto import DataCipher
from store.driver import DriverStatement
from store.models import Case, StageEvent, utcnow
from store.outbox import NewMessage, insert_messages, mark_new_rows
from store.row_batch import RowBatch

_CASES = Case.__table__
_CASE_COLUMNS = tuple(c.key for c in _CASES.columns)
_INSERT_CASES = DriverStatement(insert(_CASES), _CASE_COLUMNS)
_EVENT_COLUMNS = ("case_id", "stage", "at", "operator", "opinion", "filing_no", "source",
                  "result_enc", "on_time", "recorded_at")
_INSERT_EVENTS = DriverStatement(insert(StageEvent.__table__), _EVENT_COLUMNS)
#: The columns a parent taken over gets (the rest of the row stays as it was).
PARENT_UPDATE_COLUMNS = ("stage", "payload_enc", "applicant_id_hash", "answer_enc",
                         "updated_at")
_UPDATE_PARENT = DriverStatement(
    update(_CASES).where(_CASES.c.id == bindparam("_id"))
    .values({c: bindparam(c) for c in PARENT_UPDATE_COLUMNS}),
    ("_id", *PARENT_UPDATE_COLUMNS))

_MAX_ID = DriverStatement(select(func.max(_CASES.c.id)))
#: PostgreSQL's twin of ``_MAX_ID`` + 1...: the table's own sequence (no lock needed).
_NEXT_IDS = DriverStatement(text("SELECT nextval(pg_get_serial_sequence('cases', 'id')) "
                                 "FROM generate_series(1, :n)"))


@dataclass
class CasePlan:
    """What one application writes. ``kind`` names it (``written``)."""

    kind: str
    #: New ``cases`` rows (column -> value, ids reserved by ``reserve_case_ids``).
    cases: list[dict[str, Any]] = field(default_factory=list)
    #: An existing parent's new values (``PARENT_UPDATE_COLUMNS``, plus ``_id``).
    parent_update: dict[str, Any] | None = None
    #: ``stage_events`` rows (``_EVENT_COLUMNS``).
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Outbox messages (county deliveries, pushes to the province).
    messages: list[NewMessage] = field(default_factory=list)
    #: Keep the workers off these messages until then (a sync query delivers them itself).
    hold_until: datetime | None = None


#: Plans written, per kind, since the process started.
written: Counter[str] = Counter()
_written_lock = threading.Lock()


def write_case(target: Session | Connection, cipher: DataCipher, plan: CasePlan,
               batch: RowBatch | None = None) -> None:
    """Write ``plan`` in the caller's transaction; the workers wake after its commit
    when messages were queued (``store.outbox.mark_new_rows``). With ``batch``, the
    INSERTs are added to it (the caller flushes it before its transaction ends; the
    parent's UPDATE runs now)."""
    conn = target.connection() if isinstance(target, Session) else target
    rows = RowBatch() if batch is None else batch
    rows.add(_INSERT_CASES, plan.cases)
    if plan.parent_update is not None:
        _UPDATE_PARENT.execute(conn, plan.parent_update)
    if plan.events:
        now = utcnow()
        rows.add(_INSERT_EVENTS, [{**dict.fromkeys(_EVENT_COLUMNS), "recorded_at": now, **e}
                                  for e in plan.events])
    if plan.messages:
        mark_new_rows(target)
        insert_messages(conn, cipher, plan.messages, hold_until=plan.hold_until, batch=rows)
    if batch is None:
        rows.flush(conn)
    with _written_lock:
        written[plan.kind] += 1


def reserve_case_ids(conn: Session | Connection, count: int) -> list[int]:
    """``count`` fresh ids for new cases, so their numbers are known before the INSERT.

    PostgreSQL: the table's own sequence. SQLite: every write transaction of the hub
    starts with ``BEGIN IMMEDIATE`` (store.db), so this writer holds the database's one
    write lock and ``max(id) + 1 ...`` are exactly the rowids SQLite would assign."""
    if count <= 0:
        return []
    dialect = (conn.get_bind() if isinstance(conn, Session) else conn).dialect.name
    if dialect == "postgresql":
        return sorted(int(r) for r, in _NEXT_IDS.execute(conn, {"n": count}))
    if dialect != "sqlite":
        raise RuntimeError(f"the hub's store is SQLite or PostgreSQL, not {dialect}")
    top = _MAX_ID.scalar(conn) or 0
    return list(range(top + 1, top + 1 + count))
