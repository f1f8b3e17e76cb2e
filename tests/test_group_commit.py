"""Group commit (store.group_commit) on a real store: concurrent units share commits, a
failing unit fails only itself, nothing is answered before it is committed."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, func, insert, select

from store.db import Database
from store.group_commit import GroupCommit
from store.models import Nonce, utcnow

THREADS = 12


def _insert_nonce(name: str):  # type: ignore[no-untyped-def]
    def unit(conn: Connection) -> str:
        conn.execute(insert(Nonce.__table__), {"app_id": "test", "nonce": name,
                                                "seen_at": utcnow()})
        return name
    return unit


def _count(db: Database, like: str = "%") -> int:
    with db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Nonce.__table__)
                            .where(Nonce.nonce.like(like))).scalar_one()


def _run_together(group: GroupCommit, units: list[Any]) -> list[tuple[str, Any]]:
    """Start every unit at the same moment; (outcome, value) per unit, in order."""
    start = threading.Barrier(len(units))
    out: list[tuple[str, Any]] = [("", None)] * len(units)

    def run(i: int) -> None:
        start.wait()
        try:
            out[i] = ("ok", group.run(units[i]))
        except Exception as exc:  # noqa: BLE001 - the test looks at which ones failed
            out[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(units))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out


def test_concurrent_units_share_commits_and_all_land(store_url: str) -> None:
    db = Database(store_url)
    group = GroupCommit(db.engine)
    rounds = 5
    for r in range(rounds):
        out = _run_together(group, [_insert_nonce(f"r{r}-{i}") for i in range(THREADS)])
        assert out == [("ok", f"r{r}-{i}") for i in range(THREADS)]
    assert _count(db) == rounds * THREADS
    assert group.units == rounds * THREADS
    # Units that arrive while a group commits wait for the next one: fewer commits than units.
    assert group.groups < group.units
    db.dispose()


def test_a_failing_unit_fails_alone_and_its_writes_roll_back(store_url: str) -> None:
    db = Database(store_url)
    group = GroupCommit(db.engine)

    def bad(conn: Connection) -> None:
        conn.execute(insert(Nonce.__table__), {"app_id": "test", "nonce": "bad-row",
                                                "seen_at": utcnow()})
        raise ValueError("this unit is broken")

    for attempt in range(3):
        units = [_insert_nonce(f"a{attempt}-{i}") for i in range(THREADS)]
        units[THREADS // 2] = bad
        out = _run_together(group, units)
        failed = [i for i, (outcome, _) in enumerate(out) if outcome == "error"]
        assert failed == [THREADS // 2]
        assert isinstance(out[THREADS // 2][1], ValueError)
    assert _count(db, "bad-row") == 0  # the broken unit's own write never committed
    assert _count(db, "a%") == 3 * (THREADS - 1)
    db.dispose()


def test_a_duplicate_key_fails_only_the_second_writer(store_url: str) -> None:
    db = Database(store_url)
    group = GroupCommit(db.engine)
    out = _run_together(group, [_insert_nonce("same") for _ in range(6)]
                        + [_insert_nonce(f"other-{i}") for i in range(6)])
    outcomes = [o for o, _ in out]
    assert outcomes[:6].count("ok") == 1 and outcomes[:6].count("error") == 5
    assert outcomes[6:] == ["ok"] * 6
    assert _count(db, "same") == 1 and _count(db, "other-%") == 6
    db.dispose()


def test_nothing_is_answered_before_the_commit(sqlite_url: str) -> None:
    """A unit's result is only returned once its row is visible to another connection."""
    db = Database(sqlite_url)
    group = GroupCommit(db.engine)
    seen: list[int] = []

    def check_after(name: str):  # type: ignore[no-untyped-def]
        unit = _insert_nonce(name)

        def run() -> None:
            group.run(unit)
            seen.append(_count(db, name))  # from a fresh connection, after the answer
        return run

    threads = [threading.Thread(target=check_after(f"v{i}")) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert seen == [1] * THREADS
    db.dispose()


@pytest.mark.parametrize("size", [1, 3])
def test_group_size_is_bounded(sqlite_url: str, size: int) -> None:
    db = Database(sqlite_url)
    group = GroupCommit(db.engine, max_group=size)
    out = _run_together(group, [_insert_nonce(f"b{i}") for i in range(THREADS)])
    assert all(o == "ok" for o, _ in out)
    assert group.groups >= THREADS / size
    db.dispose()


def test_a_failing_unit_rolls_back_to_its_savepoint_and_nothing_runs_twice(
        store_url: str) -> None:
    """Each unit runs in a savepoint of the group's transaction: a broken unit's writes
    roll back, the others of its group commit in that same transaction, each run once."""
    db = Database(store_url)
    group = GroupCommit(db.engine)
    runs: dict[str, int] = {}
    lock = threading.Lock()

    def counted(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        def work(session: Connection) -> str:
            with lock:
                runs[name] = runs.get(name, 0) + 1
            _insert_nonce(name)(session)
            if fail:
                raise ValueError("broken")
            return name
        return work

    out = _run_together(group, [counted(f"s{i}", fail=(i == 5)) for i in range(THREADS)])
    assert [o for o, _ in out] == ["ok"] * 5 + ["error"] + ["ok"] * (THREADS - 6)
    assert runs == {f"s{i}": 1 for i in range(THREADS)}  # nobody ran again
    assert _count(db, "s5") == 0 and _count(db, "s%") == THREADS - 1
    assert group.groups < THREADS  # the broken unit shared its group's transaction
    db.dispose()


def test_a_failing_first_unit_rolls_back_alone_and_the_rest_of_its_group_commits(
        store_url: str) -> None:
    """The first unit of a group has no savepoint: when it fails, its transaction (only
    its writes) is rolled back and the units queued behind it commit in a new one, each
    run once; one of them failing in its savepoint fails alone, with its own error."""
    db = Database(store_url)
    group = GroupCommit(db.engine)
    runs: dict[str, int] = {}
    leading, release = threading.Event(), threading.Event()

    def counted(name: str, fail: bool = False, hold: bool = False):  # type: ignore[no-untyped-def]
        def work(conn: Connection) -> str:
            runs[name] = runs.get(name, 0) + 1
            _insert_nonce(name)(conn)
            if hold:  # keeps the lead until the next group has queued behind it
                leading.set()
                assert release.wait(30)
            if fail:
                raise ValueError("broken")
            return name
        return work

    out: dict[str, tuple[str, Any]] = {}

    def run(name: str, work: Any) -> None:
        try:
            out[name] = ("ok", group.run(work))
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            out[name] = ("error", exc)

    def waiting() -> int:
        with group._lock:
            return len(group._waiting)

    threads = [threading.Thread(target=run, args=("f0", counted("f0", hold=True)))]
    threads[0].start()
    assert leading.wait(30)
    threads.append(threading.Thread(target=run, args=("f1", counted("f1", fail=True))))
    threads[-1].start()
    while waiting() < 1:  # the broken unit is the first of the next group
        threading.Event().wait(0.005)
    for i in range(2, 8):  # f4 fails too, in its savepoint
        threads.append(threading.Thread(target=run, args=(f"f{i}",
                                                          counted(f"f{i}", fail=i == 4))))
        threads[-1].start()
    while waiting() < 7:
        threading.Event().wait(0.005)
    release.set()
    for t in threads:
        t.join(30)
    assert out["f1"][0] == "error" and isinstance(out["f1"][1], ValueError)
    assert out["f4"][0] == "error" and isinstance(out["f4"][1], ValueError)
    # f4's error is its own: not chained to f1's (a traceback of one request in another's log)
    assert out["f4"][1].__context__ is None and out["f4"][1].__cause__ is None
    assert all(out[f"f{i}"] == ("ok", f"f{i}") for i in (0, 2, 3, 5, 6, 7)), out
    assert runs == {f"f{i}": 1 for i in range(8)}  # nobody ran again
    assert _count(db, "f1") == 0 and _count(db, "f4") == 0 and _count(db, "f%") == 6
    assert (group.groups, group.units) == (2, 7)  # f0 alone; f2..f7 together
    db.dispose()


def _temporary_files() -> list[str]:
    """SQLite's temporary files this process has open (created and unlinked at once, so
    only their descriptors show them): ``etilqs_...``."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            if "etilqs_" in os.readlink(fd):
                found.append(os.readlink(fd))
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")
def test_a_group_s_savepoints_need_no_temporary_file(sqlite_url: str) -> None:
    """Units after the first write inside savepoints; their journal stays in memory
    (store.db: temp_store) instead of a temporary file made under the write lock."""
    db = Database(sqlite_url)
    group = GroupCommit(db.engine)
    seen: list[list[str]] = []

    def unit(name: str):  # type: ignore[no-untyped-def]
        def work(conn: Connection) -> str:
            conn.execute(insert(Nonce.__table__), [  # enough pages for a 64 KiB journal
                {"app_id": "test", "nonce": f"{name}-{i}-{'x' * 60}", "seen_at": utcnow()}
                for i in range(400)])
            seen.append(_temporary_files())
            return name
        return work

    for attempt in range(3):
        out = _run_together(group, [unit(f"t{attempt}-{i}") for i in range(THREADS)])
        assert all(o == "ok" for o, _ in out)
    assert group.groups < group.units  # units shared groups, so savepoints were made
    assert _count(db, "t%") == 3 * THREADS * 400
    assert not any(seen), [files for files in seen if files][:3]
    db.dispose()


def _five_behind_a_holder(group: GroupCommit, before_release: Any = None
                          ) -> dict[str, Any]:
    """u0 leads a group alone and holds it until u1..u5 wait behind it (the next group,
    all five together); ``before_release()`` runs then. Each caller runs while handling a
    ``KeyError`` of its own name. The result or exception of each, by name."""
    leading, release = threading.Event(), threading.Event()

    def hold(conn: Connection) -> str:
        leading.set()
        assert release.wait(30)
        return "held"

    out: dict[str, Any] = {}

    def run(name: str, work: Any) -> None:
        try:
            raise KeyError(name)  # each caller is handling an error of its own
        except KeyError:
            try:
                out[name] = group.run(work)
            except Exception as exc:  # noqa: BLE001 - the outcome under test
                out[name] = exc

    threads = [threading.Thread(target=run, args=("u0", hold))]
    threads[0].start()
    assert leading.wait(30)
    for i in range(1, 6):
        threads.append(threading.Thread(target=run, args=(f"u{i}", lambda c: "unit")))
        threads[-1].start()
    while True:
        with group._lock:
            if len(group._waiting) == 5:
                break
        threading.Event().wait(0.005)
    if before_release is not None:
        before_release()
    release.set()
    for t in threads:
        t.join(30)
    assert out["u0"] == "held"
    return out


def test_a_group_lost_during_commit_fails_every_unit_with_an_error_of_its_own(
        sqlite_url: str) -> None:
    """Every COMMIT of a group is lost after it reached the store (an engine listener
    raising the driver's "connection lost" once SQLite has committed): after the runs of
    ``retry_on_disconnect`` every unit fails, still "during COMMIT" for its caller
    (``ambiguous``), each with an exception object of its own: one object raised in
    several threads would gather their tracebacks and take on each thread's handled
    exception as its context (another request's error in a request's log)."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from store.resilience import ambiguous

    db = Database(sqlite_url)
    group = GroupCommit(db.engine)
    commits = 0

    def lose_after_the_first(_conn: Any) -> None:  # the holding unit's group commits
        nonlocal commits
        commits += 1
        if commits > 1:
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"),
                                   connection_invalidated=True)

    event.listen(db.engine, "commit", lose_after_the_first)
    out = _five_behind_a_holder(group)
    errors = [out[f"u{i}"] for i in range(1, 6)]
    assert all(isinstance(e, OperationalError) and ambiguous(e) for e in errors), errors
    assert len({id(e) for e in errors}) == 5  # one object each
    for i, e in enumerate(errors, start=1):  # each caller's own context, nobody else's
        assert isinstance(e.__context__, KeyError) and e.__context__.args == (f"u{i}",)
    assert commits == 1 + 3  # the holder's, then the group's three runs
    event.remove(db.engine, "commit", lose_after_the_first)
    db.dispose()


def test_a_group_that_cannot_reach_the_store_fails_at_once_not_unit_by_unit(
        sqlite_url: str) -> None:
    """The store refuses every connection: the group's transaction is tried as
    ``retry_on_disconnect`` allows, then every unit fails at once (trying each alone
    would only try as often again per unit, while every caller waits)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    from store.resilience import ATTEMPTS, is_disconnect

    db = Database(sqlite_url)
    group = GroupCommit(db.engine)
    tries = 0
    refusing = False

    def refuse(*_args: Any) -> None:
        nonlocal tries
        if refusing:
            tries += 1
            raise sqlite3.OperationalError("unable to open database file")

    def cut_off() -> None:
        nonlocal refusing
        db.engine.dispose()  # a new pool: the next group needs a new connection
        refusing = True

    event.listen(db.engine, "do_connect", refuse)
    out = _five_behind_a_holder(group, cut_off)
    errors = [out[f"u{i}"] for i in range(1, 6)]
    assert all(isinstance(e, OperationalError) and is_disconnect(e) for e in errors), errors
    assert tries == ATTEMPTS  # the group's runs, and no unit tried again alone
    event.remove(db.engine, "do_connect", refuse)
    db.dispose()
