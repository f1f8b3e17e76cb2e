"""Group commit: concurrent short write transactions of one process share one commit.

A request thread hands ``run`` a *unit*: a function that does its writes on the
``Connection`` it is given and returns its result. The first thread to arrive leads:
it opens one transaction, runs every unit waiting at that moment (its own first),
commits once, and hands each waiting thread its result. Threads that arrive meanwhile
form the next group. Nobody gets an answer before the group's commit, so "committed
before acknowledged" holds unit by unit.

A commit costs the same for one unit as for several (SQLite writes each touched page
once to the WAL; PostgreSQL flushes its WAL once), and on SQLite the process takes the
database's one write lock once a group instead of once a request.

On PostgreSQL the group's inserts are also written together, one statement per table
at the end of the group (store.driver.buffered_writes): a unit must not read back rows
it inserted itself.

Isolation: if any unit raises (a replayed nonce, a unique violation from a duplicate in
another process, a bug), the whole group is rolled back and every unit of it is run
again alone, in a transaction of its own, so a failing unit fails only itself. Units
must therefore have no effects outside the database that a second run would repeat.
A group whose connection is lost also runs again (store.resilience), even when it was
lost during COMMIT and may have committed: a unit must then recognise its own committed
work by an idempotency key and answer as before (the intake: its call-log row's ref id).
Units must not rely on thread-local state (a Flask ``g`` or request): they may run on the
leader's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine

from store.driver import buffered_writes
from store.resilience import ambiguous, retry_on_disconnect

T = TypeVar("T")

#: Units at most in one group (bounds one transaction's size and the lead thread's work).
MAX_GROUP = 32


class Question:
    """What a unit needs to learn before it writes, answered for the whole group at once.

    ``ask(conn, questions)`` answers a list of questions (``Question.asked``) with one
    list of answers, in order — on PostgreSQL typically in one statement, instead of one
    statement per unit. The group calls it, in its transaction, before any unit runs;
    the unit reads ``answer``. Units asking the same ``ask`` share the call.
    """

    __slots__ = ("ask", "asked", "answer")

    def __init__(self, ask: Callable[[Connection, list[Any]], list[Any]], asked: Any) -> None:
        self.ask, self.asked = ask, asked
        self.answer: Any = None


class _Unit(Generic[T]):
    __slots__ = ("work", "question", "wake", "finished", "lead", "result", "error")

    def __init__(self, work: Callable[[Connection], T], question: Question | None) -> None:
        self.work = work
        self.question = question
        self.wake = threading.Event()  # set when finished, or when made the next leader
        self.finished = False
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs units of work in shared transactions on ``engine`` (see the module doc).

    One leader at a time runs one group — the waiting units, its own first — then
    hands the lead to the first unit still waiting (or to nobody), so no thread leads
    for longer than its own group.
    """

    def __init__(self, engine: Engine, max_group: int = MAX_GROUP) -> None:
        self.engine = engine
        self.max_group = max_group
        # PostgreSQL: every statement is a round trip, so the group's inserts are written
        # together, one statement per table (store.driver.buffered_writes). SQLite runs
        # in-process and numbers new cases from max(id), which must see earlier inserts.
        self.buffer_writes = engine.dialect.name == "postgresql"
        self._lock = threading.Lock()
        self._waiting: list[_Unit[Any]] = []
        self._leading = False
        #: Transactions committed and units in them so far (for the benchmark's figures).
        self.groups = 0
        self.units = 0

    def run(self, work: Callable[[Connection], T], question: Question | None = None) -> T:
        """Run ``work`` in a transaction shared with concurrent units; its result once
        committed, or its exception (nothing of it committed). ``question``, if given, is
        answered (with those of the group's other units) before ``work`` runs."""
        unit: _Unit[T] = _Unit(work, question)
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
        self._run_group(group)
        with self._lock:
            if self._waiting:
                successor = self._waiting[0]
                successor.lead = True
                successor.wake.set()
            else:
                self._leading = False
        for unit in group:
            unit.wake.set()

    def _run_group(self, group: list[_Unit[Any]]) -> None:
        def transaction() -> list[Any]:
            with self.engine.begin() as conn:
                self._answer(conn, group)
                if self.buffer_writes:
                    with buffered_writes(conn):
                        return [unit.work(conn) for unit in group]
                return [unit.work(conn) for unit in group]

        try:  # a connection lost: the group again, on a fresh one (units are idempotent)
            results = retry_on_disconnect(transaction, "group commit", idempotent=True)
        except BaseException as exc:
            if len(group) == 1 or ambiguous(exc):
                # Still lost during COMMIT: each unit fails; the partner's retry meets
                # its idempotency key (store.resilience).
                for unit in group:
                    unit.error, unit.finished = exc, True
                return
            for unit in group:  # each alone, so a failing unit fails only itself
                self._run_alone(unit)
            return
        self._count(1, len(group))
        for unit, result in zip(group, results, strict=True):
            unit.result, unit.finished = result, True

    def _run_alone(self, unit: _Unit[Any]) -> None:
        def transaction() -> Any:
            with self.engine.begin() as conn:
                self._answer(conn, [unit])
                return unit.work(conn)

        try:
            unit.result = retry_on_disconnect(transaction, "group commit unit",
                                              idempotent=True)
            self._count(1, 1)
        except BaseException as exc:
            unit.error = exc
        unit.finished = True

    @staticmethod
    def _answer(conn: Connection, group: list[_Unit[Any]]) -> None:
        """Answer the group's questions: one ``ask`` call per kind of question."""
        by_ask: dict[Any, list[Question]] = {}
        for unit in group:
            if unit.question is not None:
                by_ask.setdefault(unit.question.ask, []).append(unit.question)
        for ask, questions in by_ask.items():
            answers = ask(conn, [q.asked for q in questions])
            for q, answer in zip(questions, answers, strict=True):
                q.answer = answer

    def _count(self, groups: int, units: int) -> None:
        with self._lock:
            self.groups += groups
            self.units += units
