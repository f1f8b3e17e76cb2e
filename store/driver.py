"""Core statements executed on the driver's own cursor, inside SQLAlchemy's transaction.

On the hottest write path (the province intake: nonce, switch check, case rows, outbox
row, call-log row, several per request) SQLAlchemy's per-statement machinery — cache
key, parameter processing, execution context, result object, events — costs more than
the database does. A ``DriverStatement`` keeps the statement a normal Core construct
(one definition, one schema), compiles it once per dialect, runs each value through the
column type's own bind processor (so rows are stored exactly as the ORM stores them),
and hands SQL and parameters straight to the DBAPI cursor of the caller's connection.

It never opens, commits or ends a transaction: the caller's ``Session`` or
``Connection`` does, with all its events (SQLite's writer queue and ``BEGIN IMMEDIATE``,
see ``store.db``). Statements here do not touch a Session's identity map — exactly like
``Connection.execute`` of a Core statement.
"""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement

#: Up to this many rows, ``executemany`` runs one prepared statement per row on
#: PostgreSQL: psycopg's own executemany enters pipeline mode, whose set-up cost made
#: writing the intake's two or three case rows 32% of the gunicorn workers' GIL-held
#: samples (py-spy) under bench/intake.py's load; 16% this way (single-thread CPU per
#: application 1.85 -> 1.79 ms; throughput within the run-to-run spread).
FEW = 8
_PYFORMAT = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Bind names in order for positional paramstyles (qmark, format); None for named ones.
    positions: tuple[str, ...] | None
    processors: dict[str, Callable[[Any], Any]]
    #: Values the statement carries itself (literals compared in its WHERE clause).
    defaults: dict[str, Any]
    #: psycopg: the statement with PostgreSQL's own ``$n`` placeholders, run on the raw
    #: cursor (nothing for the driver to convert per execution), and the bind name of
    #: each ``$n``; None elsewhere.
    raw_sql: str | None = None
    raw_order: tuple[str, ...] = ()


class DriverStatement:
    """A Core statement run on the DBAPI cursor of the caller's connection."""

    def __init__(self, statement: ClauseElement, columns: Iterable[str] | None = None
                 ) -> None:
        """``columns``: for an INSERT, the columns its rows give (the others are left out
        of the statement, e.g. the autoincrement id)."""
        self.statement = statement
        self.columns = None if columns is None else list(columns)
        # Per dialect instance, not per dialect name: a type's processors may depend on
        # the engine (store.sealed binds each hub's data cipher to its engine's dialect).
        self._compiled: weakref.WeakKeyDictionary[Dialect, _Compiled] = \
            weakref.WeakKeyDictionary()

    def compiled_for(self, dialect: Dialect) -> _Compiled:
        """The statement compiled for ``dialect`` (once per dialect instance)."""
        found = self._compiled.get(dialect)
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=self.columns)
            processors = {}
            for name, bind in compiled.binds.items():
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if process is not None:
                    processors[name] = process
            positions = tuple(compiled.positiontup) if compiled.positional else None
            defaults = {k: v for k, v in compiled.params.items() if v is not None}
            raw_sql, raw_order = (_raw(compiled.string) if dialect.driver == "psycopg"
                                  and positions is None else (None, ()))
            found = _Compiled(compiled.string, positions, processors, defaults, raw_sql,
                              raw_order)
            self._compiled[dialect] = found
        return found

    def params_of(self, compiled: _Compiled, values: dict[str, Any]) -> Any:
        """The driver's parameters for ``values``: a dict for named paramstyles, a tuple
        in the statement's order for positional ones; each through its bind processor."""
        if compiled.defaults:
            values = {**compiled.defaults, **values}
        if compiled.positions is None:
            if compiled.processors:
                values = dict(values)
                for name, process in compiled.processors.items():
                    if name in values:
                        values[name] = process(values[name])
            return values
        # positional: one pass over the statement's binds (the hot path on SQLite)
        processors = compiled.processors
        get = values.get
        return tuple(get(name) if name not in processors or name not in values
                     else processors[name](values[name]) for name in compiled.positions)

    def execute(self, conn: Connection | Session, values: dict[str, Any] | None = None
                ) -> list[tuple[Any, ...]]:
        """Execute once; the rows it returns (SELECT, RETURNING) as plain tuples."""
        connection = connection_of(conn)
        compiled = self.compiled_for(connection.dialect)
        params = self.params_of(compiled, values or {})
        if compiled.raw_sql is not None:
            return run_on_cursor(connection, compiled.raw_sql,
                                 [params.get(name) for name in compiled.raw_order], raw=True)
        return run_on_cursor(connection, compiled.sql, params)

    def scalar(self, conn: Connection | Session, values: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        rows = self.execute(conn, values)
        return rows[0][0] if rows else None

    def executemany(self, conn: Connection | Session, rows: Iterable[dict[str, Any]]) -> None:
        """Execute for every row (no RETURNING)."""
        connection = connection_of(conn)
        compiled = self.compiled_for(connection.dialect)
        params: Sequence[Any] = [self.params_of(compiled, row) for row in rows]
        if not params:
            return
        if compiled.raw_sql is not None and len(params) <= FEW:
            for one in params:  # prepared, one round trip each: cheaper for a few
                run_on_cursor(connection, compiled.raw_sql,
                              [one.get(name) for name in compiled.raw_order], raw=True)
            return
        cursor = _cursor(connection, raw=False)
        try:
            if len(params) == 1:
                cursor.execute(compiled.sql, params[0])
            else:
                cursor.executemany(compiled.sql, params)
        except connection.dialect.loaded_dbapi.Error as exc:
            _forget_cursors(connection)
            raise _wrapped(connection, compiled.sql, params, exc, cursor) from exc


def _wrapped(connection: Connection, sql: str, params: Any, exc: Exception,
             cursor: Any) -> DBAPIError:
    """The driver's error as SQLAlchemy raises it (``IntegrityError`` for a unique
    violation, ...); a lost connection is invalidated with the rest of its pool."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if lost:  # this connection and every older one of the pool (store.resilience)
        from store.resilience import recycle_pool

        recycle_pool(connection, exc)
    # Parameters carry personal data: never in the error's text (it may be logged).
    return DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                               hide_parameters=True, connection_invalidated=lost,
                               dialect=dialect)


def run_on_cursor(connection: Connection, sql: str, params: Any, raw: bool = False
                  ) -> list[tuple[Any, ...]]:
    """``sql`` with ``params`` on the driver's cursor of ``connection``; the rows it
    returns as plain tuples. The driver's errors are raised as SQLAlchemy's. ``raw``:
    psycopg's ``RawCursor`` (``sql`` has PostgreSQL's ``$n`` placeholders, ``params``
    is their sequence: nothing for the driver to convert)."""
    cursor = _cursor(connection, raw)
    try:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []
    except connection.dialect.loaded_dbapi.Error as exc:
        _forget_cursors(connection)
        raise _wrapped(connection, sql, params, exc, cursor) from exc


_CURSORS = "cityhub_driver_cursors"


def _cursor(connection: Connection, raw: bool) -> Any:
    """The driver connection's own cursor for these statements (``raw``: psycopg's
    ``RawCursor``), made once per DBAPI connection and kept in its pool record: a new
    cursor per statement cost psycopg a fifth of the statement's client time."""
    fairy = connection.connection
    driver = fairy.driver_connection
    cached = fairy.info.get(_CURSORS)
    if cached is None or cached[0] is not driver:
        cached = fairy.info[_CURSORS] = (driver, {})
    cursors = cached[1]
    cursor = cursors.get(raw)
    if cursor is None:
        if raw:
            from psycopg import RawCursor

            cursor = RawCursor(driver)  # type: ignore[arg-type]
        else:
            cursor = driver.cursor()  # type: ignore[union-attr]
        cursors[raw] = cursor
    return cursor


def _forget_cursors(connection: Connection) -> None:
    """After a driver error: the next statement gets fresh cursors."""
    with contextlib.suppress(Exception):
        connection.connection.info.pop(_CURSORS, None)


def _raw(sql: str) -> tuple[str | None, tuple[str, ...]]:
    """``sql`` (pyformat: ``%(name)s``) with ``$n`` placeholders, one per distinct name,
    and the names in ``$n`` order; (None, ()) if it holds another ``%``."""
    order: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${order.setdefault(match.group(1), len(order) + 1)}"

    if "%" in _PYFORMAT.sub("", sql).replace("%%", ""):
        return None, ()
    return _PYFORMAT.sub(number, sql).replace("%%", "%"), tuple(order)


def connection_of(conn: Connection | Session) -> Connection:
    """The Core connection, in its transaction (a Session's, begun if not yet)."""
    return conn.connection() if isinstance(conn, Session) else conn
