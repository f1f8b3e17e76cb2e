"""Writing call-log rows: one function, called by the hooks around every adapter."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.orm import Session

from store.crypto import DataCipher
from store.driver import DriverStatement
from store.models import CallLogEntry
from store.row_batch import RowBatch

MAX_LOGGED_BODY = 256 * 1024


def new_ref_id() -> str:
    """A short random reference an operator can quote to find a call (and its error)."""
    return secrets.token_hex(8)


@dataclass
class CallRecord:
    """One call in or out, filled in while it runs and written when it ends."""

    interface: str
    direction: str  # "in" or "out"
    party: str
    started_at: datetime
    division: str | None = None
    item: str | None = None
    case_id: int | None = None
    message_id: int | None = None
    duration_ms: float = 0.0
    outcome: str = "ok"  # ok | error | rejected
    code: str | None = None
    error: str | None = None
    request: Any = None
    response: Any = None
    ref_id: str = field(default_factory=new_ref_id)
    #: The request already sealed (e.g. an outbox payload sent as stored).
    request_sealed: bytes | None = None


def _loggable(body: Any) -> Any:
    """Bodies as JSON-safe values, cut to a bounded size (a 10 MB upload is not logged whole)."""
    if body is None:
        return None
    if isinstance(body, bytes | bytearray):
        text = bytes(body[:MAX_LOGGED_BODY]).decode("utf-8", errors="replace")
        return {"truncated": len(body) > MAX_LOGGED_BODY, "text": text, "bytes": len(body)}
    if isinstance(body, str) and len(body) > MAX_LOGGED_BODY:
        return {"truncated": True, "text": body[:MAX_LOGGED_BODY], "bytes": len(body)}
    return body


def _cut(value: Any, size: int) -> Any:
    """A text to its column's size (what a party sent may be longer)."""
    return value[:size] if isinstance(value, str) else value


def _bounded(body: Any) -> Any:
    """A parsed body (dict, list) kept whole when its JSON is within ``MAX_LOGGED_BODY``,
    else its JSON text cut to that size (a peer's 8 MB error message was stored whole,
    for every attempt)."""
    if not isinstance(body, dict | list):
        return body
    text = json.dumps(body, ensure_ascii=False)
    if len(text) <= MAX_LOGGED_BODY:
        return body
    return {"truncated": True, "text": text[:MAX_LOGGED_BODY], "bytes": len(text.encode())}


def sealed_body(cipher: DataCipher, body: Any) -> bytes:
    """``body`` as its call-log column holds it (cut to size, sealed): for a caller that
    seals the request before the transaction that writes the row
    (``CallRecord.request_sealed``)."""
    return cipher.seal_json(_loggable(body))


#: Called with every record whose row is built (``adapters.metrics`` counts calls here).
_observers: list[Callable[[CallRecord], None]] = []


def add_observer(fn: Callable[[CallRecord], None]) -> None:
    """Have ``fn(record)`` called as each call's row is built (maybe more than once for
    one call when its transaction is retried: ``record.ref_id`` tells them apart)."""
    if fn not in _observers:
        _observers.append(fn)


def call_row(cipher: DataCipher, record: CallRecord) -> dict[str, Any]:
    """The call-log row for ``record`` as column values; bodies sealed."""
    for fn in _observers:
        try:
            fn(record)
        except Exception:  # counting never stops a call from being logged
            logging.getLogger("cityhub.calllog").exception("call-log observer failed")
    request, response = _loggable(record.request), _loggable(record.response)
    if record.outcome != "ok":  # a failure's answer is read by people: kept to size
        response = _bounded(response)
    return {
        "ref_id": record.ref_id,
        "interface": _cut(record.interface, 64),
        "direction": record.direction,
        "party": _cut(record.party, 64),
        "division": _cut(record.division, 6),
        "item": _cut(record.item, 64),
        "case_id": record.case_id,
        "message_id": record.message_id,
        "started_at": record.started_at,
        "duration_ms": record.duration_ms,
        "outcome": record.outcome,
        # a peer's "code" of 17 characters did not fit PostgreSQL's column: the row, and
        # the outcomes recorded with it, failed, and the messages went out again for ever
        "code": _cut(record.code, 16),
        "error": (record.error or None) and record.error[:4000],
        "request_enc": record.request_sealed if request is None else cipher.seal_json(request),
        "response_enc": None if response is None else cipher.seal_json(response),
    }


#: On every call's path: run on the driver's cursor (store.driver).
_INSERT = DriverStatement(insert(CallLogEntry.__table__), (
    "ref_id", "interface", "direction", "party", "division", "item", "case_id", "message_id",
    "started_at", "duration_ms", "outcome", "code", "error", "request_enc", "response_enc"))


def write_calls(session: Session | Connection, cipher: DataCipher, records: list[CallRecord],
                batch: RowBatch | None = None) -> None:
    """Insert call-log rows in the caller's transaction, as one multi-row statement (or
    add them to ``batch``, which its owner flushes in that transaction)."""
    if records:
        rows = [call_row(cipher, r) for r in records]
        if batch is None:
            _INSERT.executemany(session, rows)
        else:
            batch.add(_INSERT, rows)


def write_call(session: Session | Connection, cipher: DataCipher, record: CallRecord,
               batch: RowBatch | None = None) -> None:
    write_calls(session, cipher, [record], batch)


_LOGGED = DriverStatement(select(CallLogEntry.__table__.c.id).where(
    CallLogEntry.__table__.c.ref_id == bindparam("ref_id")))


def logged(conn: Session | Connection, ref_id: str) -> bool:
    """Whether the call ``ref_id`` has its row already: the idempotency key of work that
    runs again after a COMMIT whose answer was lost (store.resilience)."""
    return bool(_LOGGED.execute(conn, {"ref_id": ref_id}))
