"""Group commit: concurrent short write transactions of one process share one commit.

A request thread hands ``run`` a *unit*: a function that does its writes on the
``Connection`` it is given and returns its result. The first thread to arrive leads: it
opens one transaction, runs every unit waiting at that moment (its own first), each but
the first in a savepoint of its own, commits once, and hands each
waiting thread its result. Threads that arrive meanwhile form the next group. Nobody
gets an answer before the group's commit, so "committed before acknowledged" holds
unit by unit.

Measured (bench/intake.py, issue 12): on SQLite a commit syncs the WAL, and one commit
per request fell from 0.26 to 0.09 of the bare endpoint, so the province intake's
applications of every kind are units of this one path.

Isolation: a unit that raises (a replayed nonce, a unique violation from a duplicate in
another process, a bug) rolls back to its savepoint and fails alone; the others commit.
The first unit needs no savepoint: when it raises, the transaction holds only its
writes and is rolled back, and the units after it go on in a transaction of their own
(a savepoint costs a round trip on PostgreSQL, and on SQLite about a tenth of the
intake's throughput, bench/intake.py, issue 12).
A group whose connection is lost runs again (store.resilience), even when it was lost
during COMMIT and may have committed: a unit must then recognise its own committed
work by an idempotency key and answer as before (the intake: its call-log row's ref
id). Still lost after those runs, or lost during COMMIT, every unit of the group fails
(each with an exception object of its own); a COMMIT that fails otherwise (the store
refused it) runs each unit again alone. Units must therefore
have no effects outside the database that a second run would repeat, and must not rely
on thread-local state (a Flask ``g`` or request): they may run on the leader's thread.
The workers wake after the commit of a group that queued messages (``store.outbox``'s
signal: the group is the after-commit listener of its bare connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from store.driver import run_on_cursor
from store.outbox import new_rows_committed, took_new_rows
from store.resilience import ambiguous, is_disconnect, retry_on_disconnect

T = TypeVar("T")

_SAVEPOINT = "SAVEPOINT group_unit"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT group_unit"

#: Units at most in one group (bounds one transaction's size and the lead thread's work;
#: each unit is a savepoint nested in the one before, see ``_in_savepoint``).
MAX_GROUP = 32


class _FirstFailed(Exception):
    """The group's first unit raised ``error``: the transaction, holding only its writes,
    is rolled back instead of rolling back to a savepoint (it has none)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class _Unit(Generic[T]):
    __slots__ = ("work", "wake", "finished", "lead", "result", "error")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.wake = threading.Event()  # set when finished, or when made the next leader
        self.finished = False
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


def _fail_all(group: list[_Unit[Any]], exc: BaseException) -> None:
    """Every unit fails with ``exc``, each with an exception object of its own: one object
    raised in several threads would gather all their tracebacks, and take on each
    thread's handled exception as its context (another request's error in a log)."""
    for n, unit in enumerate(group):
        shared = n > 0 and isinstance(exc, DBAPIError)  # several fail together only so
        unit.error, unit.finished = _twin(exc) if shared else exc, True


def _twin(exc: DBAPIError) -> DBAPIError:
    """A fresh exception like ``exc``, for another thread to raise: the same class,
    statement, driver error and flags (``resilience.ambiguous`` reads ``during_commit``).
    A group's shared failures are the store's: a lost connection, before or during
    COMMIT."""
    made = type(exc)(exc.statement, None, exc.orig, hide_parameters=True,
                     connection_invalidated=exc.connection_invalidated)
    if getattr(exc, "during_commit", False):
        made.during_commit = True  # type: ignore[attr-defined]
    made.__cause__ = exc.orig
    return made


class GroupCommit:
    """Runs units of work in shared transactions on ``engine`` (see the module doc).

    One leader at a time runs one group — the waiting units, its own first — then
    hands the lead to the first unit still waiting (or to nobody), so no thread leads
    for longer than its own group.
    """

    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self.engine = engine
        self.max_group = max_group
        self._lock = threading.Lock()
        self._waiting: list[_Unit[Any]] = []
        self._leading = False
        #: Transactions committed and units in them so far, and the seconds a leader was
        #: running groups (``/metrics``: units per commit; the share of time the write
        #: path is busy, near 1 when the store or the CPU is the limit).
        self.groups = 0
        self.units = 0
        self.busy_seconds = 0.0

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction shared with concurrent units, in a savepoint of
        its own; its result once committed, or its exception (nothing of it committed)."""
        unit: _Unit[T] = _Unit(work)
        with self._lock:
            self._waiting.append(unit)
            if not self._leading:
                self._leading = unit.lead = True
        while not unit.finished:
            if unit.lead:
                self._lead()
            else:
                unit.wake.wait()
                unit.wake.clear()
        if unit.error is not None:
            raise unit.error
        return unit.result  # type: ignore[no-any-return]

    def _lead(self) -> None:
        with self._lock:
            group = self._waiting[: self.max_group]
            del self._waiting[: self.max_group]
        started = time.perf_counter()
        self._run_group(group)
        with self._lock:
            self.busy_seconds += time.perf_counter() - started
            if self._waiting:
                successor = self._waiting[0]
                successor.lead = True
                successor.wake.set()
            else:
                self._leading = False
        for unit in group:
            unit.wake.set()

    def _committed(self, work: Callable[[Connection], T], what: str) -> T:
        """``work`` in one transaction, committed; run again on a fresh connection when
        the connection is lost (units are idempotent). The workers wake after a commit
        that queued messages."""
        queued = False

        def transaction() -> T:
            nonlocal queued
            with self.engine.begin() as conn:
                try:
                    return work(conn)
                finally:
                    queued = took_new_rows(conn) or queued

        result = retry_on_disconnect(transaction, what, idempotent=True)
        if queued:
            new_rows_committed(self.engine)
        return result

    def _run_group(self, group: list[_Unit[Any]]) -> None:
        def work(conn: Connection) -> list[tuple[bool, Any]]:
            head, *rest = group
            try:  # first: its failure rolls back a transaction that holds nothing else
                first = head.work(conn)
            except Exception as exc:
                if is_disconnect(exc):
                    raise
                raise _FirstFailed(exc) from exc
            return [(True, first), *(self._in_savepoint(conn, unit) for unit in rest)]

        each_alone = False
        try:
            outcomes = self._committed(work, "group commit")
        except _FirstFailed as failed:  # rolled back: the others go on in a new group
            group[0].error, group[0].finished = failed.error, True
            outcomes = None
        except BaseException as exc:
            if len(group) == 1 or ambiguous(exc) or is_disconnect(exc):
                # Lost during COMMIT: each unit fails, and the partner's retry meets its
                # idempotency key (store.resilience). The store still unreachable after
                # retry_on_disconnect's runs: each unit alone would wait as long again.
                _fail_all(group, exc)
                return
            outcomes, each_alone = None, True  # the COMMIT itself failed
        # outside the handler: no unit's own error chains to another's
        if each_alone:
            for unit in group:
                self._run_alone(unit)
            return
        if outcomes is None:
            if len(group) > 1:
                self._run_group(group[1:])
            return
        self._count(1, len(group))
        for unit, (ok, value) in zip(group, outcomes, strict=True):
            if ok:
                unit.result = value
            else:
                unit.error = value
            unit.finished = True

    @staticmethod
    def _in_savepoint(conn: Connection, unit: _Unit[Any]) -> tuple[bool, Any]:
        """(True, result), or (False, exception) with the unit's writes rolled back; a
        lost connection ends the whole group (it is run again). The savepoint is the
        driver's own statement: SQLAlchemy's transaction stays the group's.

        Savepoints are never released: each unit's is opened inside the one before it
        (``ROLLBACK TO`` names the newest), and the COMMIT ends them all. One statement
        a unit instead of two: a round trip each on PostgreSQL. A group is at most
        ``MAX_GROUP`` (32) deep, below PostgreSQL's 64 subtransactions cached per
        backend."""
        run_on_cursor(conn, _SAVEPOINT, ())  # its errors as SQLAlchemy's (a lost
        try:                                 # connection recycles the pool)
            return True, unit.work(conn)
        except Exception as exc:
            if is_disconnect(exc):
                raise
            run_on_cursor(conn, _ROLLBACK_TO, ())
            return False, exc

    def _run_alone(self, unit: _Unit[Any]) -> None:
        try:
            unit.result = self._committed(unit.work, "group commit unit")
            self._count(1, 1)
        except BaseException as exc:
            unit.error = exc
        unit.finished = True

    def figures(self) -> tuple[int, int, float]:
        """(transactions committed, units in them, seconds spent leading) so far."""
        with self._lock:
            return self.groups, self.units, self.busy_seconds

    def _count(self, groups: int, units: int) -> None:
        with self._lock:
            self.groups += groups
            self.units += units
