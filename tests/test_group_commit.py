"""Group commit (store.group_commit) on a real store: concurrent units share commits, a
failing unit fails only itself, nothing is answered before it is committed."""

from __future__ import annotations

import threading
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


def test_buffered_writes_land_together_at_the_end(store_url: str) -> None:
    """Rows collected in ``buffered_writes`` land when the block ends — on PostgreSQL in
    one statement (unnest of column arrays) — with their values intact."""
    from routes.policy import RetryPolicy
    from store.crypto import DataCipher, decode_master_key, new_master_key
    from store.driver import buffered_writes
    from store.models import OutboxMessage
    from store.outbox import NewMessage, enqueue_rows

    db = Database(store_url)
    cipher = DataCipher(decode_master_key(new_master_key()))
    messages = [NewMessage(interface="test.buffer", adapter="http", partner="p",
                           operation="op", payload={"n": n}, timeout=5 + n * 0.5,
                           policy=RetryPolicy(3, 1, 60 + n), division=None, item=None)
                for n in range(3)]
    with db.engine.begin() as conn:
        with buffered_writes(conn):
            enqueue_rows(conn, cipher, messages)
            inside = conn.execute(select(func.count()).select_from(OutboxMessage.__table__)
                                  ).scalar_one()
        after = conn.execute(select(OutboxMessage.timeout, OutboxMessage.max_backoff,
                                    OutboxMessage.division, OutboxMessage.payload_enc)
                             .order_by(OutboxMessage.id)).all()
    assert inside == 0  # collected, not yet written
    assert [(t, b, d) for t, b, d, _ in after] == [(5.0, 60.0, None), (5.5, 61.0, None),
                                                    (6.0, 62.0, None)]
    assert [cipher.open_json(p) for *_, p in after] == [{"n": 0}, {"n": 1}, {"n": 2}]
    db.dispose()


def test_a_duplicate_in_buffered_writes_fails_the_block(store_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    from store.driver import DriverStatement, buffered_writes

    db = Database(store_url)
    stmt = DriverStatement(insert(Nonce.__table__), ("app_id", "nonce", "seen_at"))
    row = {"app_id": "test", "nonce": "twice", "seen_at": utcnow()}
    with pytest.raises(IntegrityError), db.engine.begin() as conn, buffered_writes(conn):
        stmt.executemany(conn, [row, dict(row)])
    assert _count(db, "twice") == 0
    db.dispose()


def test_questions_are_asked_once_per_group_and_again_for_a_rerun(store_url: str) -> None:
    """Units' questions are answered together, in the group's transaction, before any
    unit runs; a failing unit (its group then reruns each unit alone, asking again)
    fails only itself."""
    from store.group_commit import Question

    db = Database(store_url)
    group = GroupCommit(db.engine)
    calls: list[list[str]] = []

    def ask(conn: Connection, asked: list[str]) -> list[int]:
        calls.append(list(asked))
        before = conn.execute(select(func.count()).select_from(Nonce.__table__)).scalar_one()
        return [before] * len(asked)

    def unit_for(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        question = Question(ask, name)

        def work(conn: Connection) -> tuple[str, int]:
            if fail:
                raise ValueError("broken")
            _insert_nonce(name)(conn)
            return name, question.answer
        return lambda: group.run(work, question)

    start = threading.Barrier(THREADS)
    out: dict[str, Any] = {}

    def run(i: int) -> None:
        start.wait()
        try:
            out[f"q{i}"] = unit_for(f"q{i}", fail=(i == 3))()
        except ValueError as exc:
            out[f"q{i}"] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert isinstance(out.pop("q3"), ValueError)
    assert sorted(out) == sorted(f"q{i}" for i in range(THREADS) if i != 3)
    asked = [name for call in calls for name in call]
    # every unit was asked, and at least one call covered several units (a group)
    assert set(asked) == {f"q{i}" for i in range(THREADS)}
    assert any(len(call) > 1 for call in calls)
    # each answer was read in the unit's own transaction, before its own insert
    assert all(0 <= answer < THREADS for _, answer in out.values())
    assert _count(db, "q%") == THREADS - 1
    db.dispose()
