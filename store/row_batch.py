"""The INSERTs of one unit of work, sent to the database as one statement.

An accepted province application writes its case rows, its outbox row and its call-log
row: three or four INSERTs, each a round trip to PostgreSQL with its share of the
driver's per-statement work (py-spy: psycopg's own Python code was 39 % of the gunicorn
workers' GIL-held samples under ``bench/intake.py``). A ``RowBatch`` collects those rows
while the unit plans and writes them at its end:

- PostgreSQL: one statement, ``WITH w0 AS (INSERT ...), w1 AS (INSERT ...) INSERT ...``
  (data-modifying CTEs; foreign keys between the rows are checked at the end of the
  statement, so a sub-case and its parent may be in it together). Its text depends only
  on the batch's *shape* (which statements, how many rows each), so it is built once per
  shape and the driver prepares it like any other.
- Any other store (SQLite, in-process: no round trip to save): the portable twin, each
  statement's ``executemany`` in order.

Both give the same rows (tests/test_row_batch.py). The rows go through each column
type's bind processor exactly as ``DriverStatement.executemany`` does.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from store.driver import DriverStatement, connection_of, run_on_cursor

_NUMBER = re.compile(r"\$(\d+)")
#: Combined statements per (dialect, shape); the shapes of the hub's writers
#: are a handful (an application to one county or to several, a failed validation...).
_combined: dict[tuple[Any, ...], str] = {}
_combined_lock = threading.Lock()
MAX_SHAPES = 256


class RowBatch:
    """Rows for several single-row INSERTs (``DriverStatement``s; what they would
    return is not asked for), in order."""

    def __init__(self) -> None:
        self._parts: list[tuple[DriverStatement, list[dict[str, Any]]]] = []

    def add(self, statement: DriverStatement, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._parts.append((statement, rows))

    def __bool__(self) -> bool:
        return bool(self._parts)

    def flush(self, conn: Session | Connection) -> None:
        """Write every row collected so far on ``conn``, in its transaction."""
        parts, self._parts = self._parts, []
        if not parts:
            return
        connection = connection_of(conn)
        if connection.dialect.name != "postgresql" or len(parts) == 1:
            for statement, rows in parts:
                statement.executemany(connection, rows)
            return
        params: list[Any] = []
        for statement, rows in parts:  # in the statement's $n order: part by part, row by row
            compiled = statement.compiled_for(connection.dialect)
            for row in rows:
                values = statement.params_of(compiled, row)
                params.extend(values.get(name) for name in compiled.raw_order)
        run_on_cursor(connection, _statement_for(connection, parts), params, raw=True)


def _statement_for(connection: Connection,
                   parts: list[tuple[DriverStatement, list[dict[str, Any]]]]) -> str:
    """The combined statement for ``parts``' shape, from each statement's ``$n`` form
    (``store.driver``: run on psycopg's raw cursor, since a statement this long, with
    this many parameters, is beyond psycopg's cache of converted queries, and converting
    it again on every request cost more than the round trips it saves), its placeholders
    numbered on across parts and rows."""
    dialect = connection.dialect
    key = (dialect.name, *((id(s), len(rows)) for s, rows in parts))
    found = _combined.get(key)
    if found is not None:
        return found
    offset = 0
    inserts = []
    for statement, rows in parts:
        compiled = statement.compiled_for(dialect)
        sql = compiled.raw_sql
        if sql is None:
            raise ValueError(f"no $n form for {compiled.sql[:80]}")
        head, sep, values = sql.partition(" VALUES ")
        values = values.partition(" RETURNING ")[0]  # a batch returns nothing
        if not sep or not head.startswith("INSERT INTO ") or not values.endswith(")"):
            raise ValueError(f"not a single-row INSERT ... VALUES (...): {sql[:80]}")
        tuples = []
        for _ in rows:
            tuples.append(_NUMBER.sub(lambda m, o=offset: f"${int(m.group(1)) + o}", values))
            offset += len(compiled.raw_order)
        inserts.append(head + " VALUES " + ", ".join(tuples))
    *ctes, main = inserts
    sql = "WITH " + ", ".join(f"w{i} AS ({s})" for i, s in enumerate(ctes)) + " " + main
    with _combined_lock:
        if len(_combined) >= MAX_SHAPES:
            _combined.clear()
        _combined[key] = sql
    return sql
