"""What the province intake must learn before it writes a new application.

Four questions, asked for every application: is the signing nonce new (it is recorded
at the same time), has an operator switched the interface off, is there a case for this
(item, apply_no) already, and which ids will the new case and its sub-cases get. On
PostgreSQL every statement is a round trip, so the four travel as ONE statement (a
data-modifying CTE) — and for all the applications of a commit group at once
(``ask_together``, a ``store.group_commit.Question``). SQLite runs in-process, where a
statement costs microseconds, and asks them one by one (``intake_checks``) with the
statements the rest of the hub uses.

The answers only steer the common case. A nonce seen before is not judged here: the
caller then runs the full check (``PendingNonce.claim``: replay, or a stale sighting
refreshed), which also gives the answers their contract order (1003 before 3001).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.orm import Session

from store.cases import next_case_ids
from store.driver import DriverStatement
from store.models import Case
from store.nonces import insert_new
from store.outbox import interface_disabled

_CASES = Case.__table__.c
_FIND_PARENT = DriverStatement(select(
    _CASES.id, _CASES.case_no, _CASES.stage, _CASES.answer_enc).where(
    _CASES.item == bindparam("item"), _CASES.apply_no == bindparam("apply_no"),
    _CASES.county_code == "", _CASES.namespace == ""))

#: The four questions for a whole group of applications (store.group_commit.Question),
#: one row of answers per application, in order.
_POSTGRES = DriverStatement(text("""
WITH asked AS (
    SELECT * FROM unnest(CAST(:app_id AS VARCHAR[]), CAST(:nonce AS VARCHAR[]),
                         CAST(:seen_at AS TIMESTAMP[]), CAST(:interface AS VARCHAR[]),
                         CAST(:item AS VARCHAR[]), CAST(:apply_no AS VARCHAR[]),
                         CAST(:count AS INTEGER[]))
        WITH ORDINALITY AS a(app_id, nonce, seen_at, interface, item, apply_no, count, n)
), fresh AS (
    INSERT INTO nonces (app_id, nonce, seen_at)
    SELECT app_id, nonce, seen_at FROM asked
    ON CONFLICT DO NOTHING RETURNING app_id, nonce
)
SELECT EXISTS (SELECT 1 FROM fresh WHERE fresh.app_id = a.app_id AND fresh.nonce = a.nonce),
       EXISTS (SELECT 1 FROM interface_switches
               WHERE kind = 'interface' AND name = a.interface AND enabled IS false),
       parent.id, parent.case_no, parent.stage, parent.answer_enc,
       ARRAY(SELECT nextval(pg_get_serial_sequence('cases', 'id'))
             FROM generate_series(1, a.count))
FROM asked AS a
LEFT JOIN cases AS parent
       ON parent.item = a.item AND parent.apply_no = a.apply_no AND parent.county_code = ''
      AND parent.namespace = ''
ORDER BY a.n
"""))


@dataclass(frozen=True)
class Asked:
    """One application's questions: its nonce, the interface it came by, its key and how
    many case ids it needs (one per county, plus one)."""

    app_id: str
    nonce: str
    seen_at: datetime
    interface: str | None
    item: str
    apply_no: str
    count: int


@dataclass(frozen=True)
class IntakeChecks:
    #: The nonce was not seen before (and is now recorded in the transaction).
    nonce_new: bool
    #: An operator has switched the interface off.
    disabled: bool
    #: The case already stored for (item, apply_no): id, case_no, stage, answer_enc.
    parent: tuple[Any, ...] | None
    #: Ids for the new case and its sub-cases (None: this store cannot reserve them).
    ids: list[int] | None


def ask_together(conn: Connection, asked: list[Asked]) -> list[IntakeChecks | None]:
    """A group's questions at once (``store.group_commit.Question``): on PostgreSQL one
    statement for the whole group. Elsewhere every answer is None and each unit asks
    ``intake_checks`` itself when it runs: SQLite numbers cases from max(id), which must
    see the rows the group's earlier units inserted.

    Two applications of a group with the same nonce: the first is new, the others are
    not (the caller then finds the replay)."""
    if conn.dialect.name != "postgresql" or not asked:
        return [None] * len(asked)
    rows = _POSTGRES.execute(conn, {
        "app_id": [a.app_id for a in asked], "nonce": [a.nonce for a in asked],
        "seen_at": [a.seen_at for a in asked], "interface": [a.interface for a in asked],
        "item": [a.item for a in asked], "apply_no": [a.apply_no for a in asked],
        "count": [a.count for a in asked]})
    seen: set[tuple[str, str]] = set()
    answers: list[IntakeChecks | None] = []
    for a, (fresh, disabled, parent_id, *parent, ids) in zip(asked, rows, strict=True):
        first = (a.app_id, a.nonce) not in seen
        seen.add((a.app_id, a.nonce))
        answers.append(IntakeChecks(
            bool(fresh) and first, bool(disabled),
            None if parent_id is None else (parent_id, *parent),
            sorted(int(i) for i in ids)))
    return answers


def intake_checks(conn: Connection, asked: Asked) -> IntakeChecks:
    """One application's questions, one statement each (in ``conn``'s transaction)."""
    fresh = insert_new(conn, asked.app_id, asked.nonce, asked.seen_at)
    disabled = asked.interface is not None and interface_disabled(conn, asked.interface)
    parent = find_parent(conn, asked.item, asked.apply_no)
    return IntakeChecks(fresh, disabled, parent,
                        None if parent else next_case_ids(conn, asked.count))


def find_parent(conn: Connection | Session, item: str, apply_no: str
                ) -> tuple[Any, ...] | None:
    """The province's parent case for (item, apply_no): id, case_no, stage, answer_enc.
    Cases a county opened itself are in its own namespace and never found here."""
    found = _FIND_PARENT.execute(conn, {"item": item, "apply_no": apply_no})
    return found[0] if found else None
