"""What a unit of the intake reads first: its parent case, its nonce, its switch, ids.

Every province request's unit (adapters.intake) starts the same way: look up the parent
case of (item, apply_no), record the signing nonce (``INSERT ... ON CONFLICT DO
NOTHING``), see whether an operator switched the interface off, and reserve the ids its
new cases will have. ``open_unit`` does all four:

- PostgreSQL: one statement (the nonce's INSERT as a data-modifying CTE, the rest as
  sub-queries of its SELECT): one round trip instead of four.
- Any other store (SQLite, in-process): the portable twin, two statements: the nonce's
  INSERT (``store.nonces``), then one SELECT of the parent, the switch and, on SQLite,
  the highest case id (the ids after it are this writer's: ``reserve_case_ids``).

Both give the same answer (tests/test_row_batch.py). On PostgreSQL ids are taken from
the sequence even when the unit ends up writing no case (a repeat): a gap in the ids,
as a rolled-back transaction leaves one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, exists, func, literal, select, text
from sqlalchemy.orm import Session

from store.case_write import reserve_case_ids
from store.driver import DriverStatement, connection_of
from store.models import Case, InterfaceSwitch
from store.nonces import insert_new


@dataclass(frozen=True)
class Opening:
    #: The parent case found (its id, case_no, stage, answer_enc as the driver gives them) or None.
    found: tuple[Any, ...] | None
    #: The nonce was not seen before (True when no nonce was given).
    nonce_new: bool
    #: An operator switched the interface off (False when none was named, or the nonce
    #: was seen before: the switch is asked only of a new one).
    disabled: bool
    #: Fresh case ids, as ``reserve_case_ids`` gives them.
    ids: list[int]


_OPEN_PG = DriverStatement(text("""
WITH fresh AS (
    INSERT INTO nonces (app_id, nonce, seen_at)
    SELECT CAST(:app_id AS VARCHAR), CAST(:nonce AS VARCHAR),
           CAST(:seen_at AS TIMESTAMP WITHOUT TIME ZONE)
    WHERE CAST(:with_nonce AS BOOLEAN)
    ON CONFLICT DO NOTHING
    RETURNING 1)
SELECT (SELECT count(*) FROM fresh),
       EXISTS (SELECT 1 FROM interface_switches AS s WHERE s.kind = 'interface'
               AND s.name = CAST(:interface AS VARCHAR) AND s.enabled IS false),
       ARRAY(SELECT nextval(pg_get_serial_sequence('cases', 'id'))
             FROM generate_series(1, CAST(:ids AS INTEGER))),
       p.id, p.case_no, p.stage, p.answer_enc
FROM (SELECT 1) AS one
LEFT JOIN cases AS p ON p.item = CAST(:item AS VARCHAR)
    AND p.apply_no = CAST(:apply_no AS VARCHAR) AND p.county_code = ''
    AND p.namespace = CAST(:namespace AS VARCHAR)
"""))


def open_unit(conn: Session | Connection, item: str, apply_no: str,
              nonce: tuple[str, str, datetime] | None, interface: str | None, ids: int,
              namespace: str = "") -> Opening:
    """The unit's opening reads (see the module doc). ``nonce``: (app id, nonce, seen
    at) to record, or None; ``ids``: how many case ids to reserve."""
    connection = connection_of(conn)
    if connection.dialect.name == "postgresql":
        app_id, value, seen_at = nonce if nonce is not None else (None, None, None)
        ((fresh, disabled, reserved, *found),) = _OPEN_PG.execute(connection, {
            "app_id": app_id, "nonce": value, "seen_at": seen_at,
            "with_nonce": nonce is not None, "interface": interface, "ids": ids,
            "item": item, "apply_no": apply_no, "namespace": namespace})
        nonce_new = nonce is None or bool(fresh)
        return Opening(tuple(found) if found[0] is not None else None, nonce_new,
                       bool(disabled) and nonce_new and interface is not None,
                       sorted(int(i) for i in reserved))
    return portable_open_unit(connection, item, apply_no, nonce, interface, ids, namespace)


def portable_open_unit(conn: Connection, item: str, apply_no: str,
                       nonce: tuple[str, str, datetime] | None, interface: str | None,
                       ids: int, namespace: str = "") -> Opening:
    """``open_unit`` as two statements (every store): the nonce's INSERT, then one SELECT
    of the parent, the switch and (SQLite) the highest case id."""
    nonce_new = nonce is None or insert_new(conn, *nonce)
    ((top, disabled, *found),) = _READS.execute(conn, {
        "item": item, "apply_no": apply_no, "namespace": namespace,
        "interface": interface or ""})
    if conn.dialect.name == "sqlite":  # the writer holds the lock: see reserve_case_ids
        reserved = list(range((top or 0) + 1, (top or 0) + 1 + ids))
    else:
        reserved = reserve_case_ids(conn, ids)
    return Opening(tuple(found) if found[0] is not None else None, nonce_new,
                   bool(disabled) and nonce_new and interface is not None, reserved)


_CASES = Case.__table__
_PARENT = _CASES.alias("p")
_READS = DriverStatement(
    select(
        select(func.max(_CASES.c.id)).scalar_subquery(),
        exists().where(InterfaceSwitch.kind == "interface",
                       InterfaceSwitch.name == bindparam("interface"),
                       InterfaceSwitch.enabled.is_(False)),
        _PARENT.c.id, _PARENT.c.case_no, _PARENT.c.stage, _PARENT.c.answer_enc)
    .select_from(select(literal(1).label("one")).subquery("one").outerjoin(_PARENT, and_(
        _PARENT.c.item == bindparam("item"), _PARENT.c.apply_no == bindparam("apply_no"),
        _PARENT.c.county_code == "", _PARENT.c.namespace == bindparam("namespace")))))
