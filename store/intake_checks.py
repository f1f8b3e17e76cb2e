"""What the province intake must learn before it writes a new application.

Four questions, asked for every application: is the signing nonce new (it is recorded
at the same time), has an operator switched the interface off, is there a case for this
(item, apply_no) already, and which ids will the new case and its sub-cases get. On
PostgreSQL every statement is a round trip, so the four travel as ONE statement (a
data-modifying CTE); SQLite runs in-process, where a statement costs microseconds, and
asks them one by one with the statements the rest of the hub uses.

The answers only steer the common case. A nonce seen before is not judged here: the
caller then runs the full check (``PendingNonce.claim``: replay, or a stale sighting
refreshed), which also gives the answers their contract order (1003 before 3001).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from store.cases import next_case_ids
from store.driver import DriverStatement
from store.models import Case
from store.nonces import insert_new
from store.outbox import interface_disabled

_CASES = Case.__table__.c
_FIND_PARENT = DriverStatement(select(
    _CASES.id, _CASES.case_no, _CASES.stage, _CASES.answer_enc).where(
    _CASES.item == bindparam("item"), _CASES.apply_no == bindparam("apply_no"),
    _CASES.county_code == ""))

_POSTGRES = DriverStatement(text("""
WITH fresh AS (
    INSERT INTO nonces (app_id, nonce, seen_at) VALUES (:app_id, :nonce, :seen_at)
    ON CONFLICT DO NOTHING RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM fresh),
       EXISTS (SELECT 1 FROM interface_switches
               WHERE kind = 'interface' AND name = :interface AND enabled IS false),
       parent.id, parent.case_no, parent.stage, parent.answer_enc,
       ARRAY(SELECT nextval(pg_get_serial_sequence('cases', 'id'))
             FROM generate_series(1, :count))
FROM (SELECT 1) AS one
LEFT JOIN cases AS parent
       ON parent.item = :item AND parent.apply_no = :apply_no AND parent.county_code = ''
"""))


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


def intake_checks(conn: Connection, *, app_id: str, nonce: str, seen_at: datetime,
                  interface: str | None, item: str, apply_no: str, count: int
                  ) -> IntakeChecks:
    """Answer the four questions in ``conn``'s transaction (``count``: ids wanted)."""
    if conn.dialect.name == "postgresql":
        [row] = _POSTGRES.execute(conn, {
            "app_id": app_id, "nonce": nonce, "seen_at": seen_at, "interface": interface,
            "item": item, "apply_no": apply_no, "count": count})
        fresh, disabled, parent_id, *parent = row[:6]
        return IntakeChecks(bool(fresh), bool(disabled),
                            None if parent_id is None else (parent_id, *parent),
                            sorted(int(i) for i in row[6]))
    fresh = insert_new(conn, app_id, nonce, seen_at)
    disabled = interface is not None and interface_disabled(conn, interface)
    found = _FIND_PARENT.execute(conn, {"item": item, "apply_no": apply_no})
    return IntakeChecks(fresh, disabled, found[0] if found else None,
                        None if found else next_case_ids(conn, count))
