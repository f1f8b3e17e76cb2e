"""Riding through a lost database connection (a PostgreSQL restart, a failover, a
terminated backend) without answering 5000.

Two parts:

- **The whole pool is recycled on a disconnect.** SQLAlchemy does this for errors it
  sees itself; statements run on the driver's cursor (``store.driver``) report theirs
  through ``recycle_pool``. Every connection opened before the failure is then replaced
  at its next checkout, so one request never meets several dead connections in a row.
- **A transaction that failed before COMMIT because its connection was lost is run
  again** (``retry_on_disconnect``) on a fresh connection: nothing of it was committed,
  so running it again is safe. A failure *during* COMMIT is ambiguous (the server may
  have committed before the connection dropped): it is run again only where the work
  is idempotent — it finds its own committed rows by their key and answers as before
  (the province intake: the request's call-log row by its ref id, the case by
  ``(item, apply_no)``). Elsewhere the caller answers an error and the partner's retry
  meets the idempotency key (the province's ``(item, apply_no)``: the stored answer).

Whether COMMIT was under way is tracked per thread by the engine's ``begin`` and
``commit`` events (a transaction runs on one thread: the group commit's leader runs the
group's transaction and its retry).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("cityhub.store")
T = TypeVar("T")

#: Runs of a transaction broken by a lost connection: the first, once again on a fresh
#: connection, and once more if that one is lost too (a restart drops them in waves).
ATTEMPTS = 3
#: Pause before each further run (a restarting server needs a moment to accept).
PAUSES = (0.05, 0.3)

_state = threading.local()


def install(engine: Engine) -> None:
    """Track, per thread, whether the current transaction has reached COMMIT."""

    @event.listens_for(engine, "begin", insert=True)
    def _begun(_conn: Connection) -> None:
        _state.committing = False

    @event.listens_for(engine, "commit", insert=True)
    def _committing(_conn: Connection) -> None:
        _state.committing = True


def committing() -> bool:
    """The last transaction begun on this thread had reached COMMIT."""
    return bool(getattr(_state, "committing", False))


def recycle_pool(connection: Connection, exc: BaseException) -> None:
    """``connection`` was lost: invalidate it and every connection of its pool opened
    before now (as SQLAlchemy does for the errors it handles itself)."""
    connection.engine.pool._invalidate(connection.connection, exc, _checkin=False)
    connection.invalidate(exc)


def is_disconnect(exc: BaseException) -> bool:
    """The database connection was lost (or could not be made at all)."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # No connection could be checked out (the server refuses or is starting up): no
    # statement of the transaction was sent.
    return isinstance(exc, OperationalError) and exc.statement is None and not committing()


def retryable(exc: BaseException) -> bool:
    """Safe to run the transaction again: the connection was lost before COMMIT."""
    return is_disconnect(exc) and not committing()


def ambiguous(exc: BaseException) -> bool:
    """The connection was lost during COMMIT: the transaction may have committed. (On
    another thread than the transaction's, e.g. a group commit's unit: only for an error
    raised by ``retry_on_disconnect``, which marks it.)"""
    return getattr(exc, "during_commit", False) or (is_disconnect(exc) and committing())


def retry_on_disconnect(work: Callable[[], T], what: str = "transaction",
                        attempts: int = ATTEMPTS, idempotent: bool = False) -> T:
    """``work()`` (one whole transaction, begun and committed inside it), run again on a
    fresh connection while it fails because its connection was lost before COMMIT.

    ``idempotent``: also when it was lost during COMMIT — ``work`` then recognises its
    own committed rows by their idempotency key and only answers as before (the
    province intake: the request's call-log row, keyed on its ref id)."""
    for attempt in range(attempts):
        _state.committing = False
        try:
            return work()
        except DBAPIError as exc:
            if ambiguous(exc):
                exc.during_commit = True  # type: ignore[attr-defined]  # for other threads
            again = retryable(exc) or (idempotent and ambiguous(exc))
            if attempt + 1 >= attempts or not again:
                raise
            log.warning("%s: database connection lost (%s); running it again",
                        what, type(exc.orig).__name__ if exc.orig else type(exc).__name__)
            time.sleep(PAUSES[min(attempt, len(PAUSES) - 1)])
    raise AssertionError("unreachable")


def retry_until_back(work: Callable[[], T], budget: float, what: str = "transaction",
                     first_pause: float = 0.2, max_pause: float = 5.0) -> T:
    """``work()`` run again, with growing pauses, while the store is unreachable and
    ``budget`` seconds have not passed (for work that must not be dropped, e.g. the
    outcomes of a delivery batch). An ambiguous failure (during COMMIT) is also run
    again: callers make ``work`` safe to repeat (fenced updates, keyed inserts)."""
    deadline = time.monotonic() + budget
    pause = first_pause
    while True:
        _state.committing = False
        try:
            return work()
        except DBAPIError as exc:
            if not is_disconnect(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s: the store is unreachable (%s); trying again in %.1fs",
                        what, type(exc).__name__, pause)
            time.sleep(pause)
            pause = min(max_pause, pause * 2)

