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

For PostgreSQL, where every statement is a round trip, ``buffered_writes`` collects the
INSERTs of a block (a commit group, store.group_commit) and ``insert_all`` writes them
as one statement: each INSERT over ``unnest`` of column arrays, chained as CTEs.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TypeDecorator


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: Bind names in order for positional paramstyles (qmark, format); None for named ones.
    positions: tuple[str, ...] | None
    processors: dict[str, Callable[[Any], Any]]
    #: Values the statement carries itself (literals compared in its WHERE clause).
    defaults: dict[str, Any]


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
        self._unnest_sql: weakref.WeakKeyDictionary[
            Dialect, dict[str, tuple[str, list[tuple[str, Callable[[Any], Any]]]]]] = \
            weakref.WeakKeyDictionary()

    def _for(self, dialect: Dialect) -> _Compiled:
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
            found = _Compiled(compiled.string, positions, processors, defaults)
            self._compiled[dialect] = found
        return found

    def _params(self, compiled: _Compiled, values: dict[str, Any]) -> Any:
        if compiled.defaults:
            values = {**compiled.defaults, **values}
        if compiled.processors:
            values = dict(values)
            for name, process in compiled.processors.items():
                if name in values:
                    values[name] = process(values[name])
        if compiled.positions is None:
            return values
        return tuple(values.get(name) for name in compiled.positions)

    def execute(self, conn: Connection | Session, values: dict[str, Any] | None = None
                ) -> list[tuple[Any, ...]]:
        """Execute once; the rows it returns (SELECT, RETURNING) as plain tuples."""
        connection = _connection(conn)
        compiled = self._for(connection.dialect)
        params = self._params(compiled, values or {})
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, params)
            return cursor.fetchall() if cursor.description is not None else []
        except connection.dialect.loaded_dbapi.Error as exc:
            raise _wrapped(connection, compiled.sql, params, exc, cursor) from exc
        finally:
            cursor.close()

    def scalar(self, conn: Connection | Session, values: dict[str, Any] | None = None) -> Any:
        """The first column of the first row, or None."""
        rows = self.execute(conn, values)
        return rows[0][0] if rows else None

    def executemany(self, conn: Connection | Session, rows: Iterable[dict[str, Any]]) -> None:
        """Execute for every row (no RETURNING). Inside ``buffered_writes`` the rows are
        only collected, and written when the block ends."""
        connection = _connection(conn)
        buffer = connection.info.get(BUFFER)
        if buffer is not None:
            buffer.setdefault(self, []).extend(rows)
            return
        compiled = self._for(connection.dialect)
        params: Sequence[Any] = [self._params(compiled, row) for row in rows]
        if params:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                if len(params) == 1:  # psycopg's executemany has a set-up cost of its own
                    cursor.execute(compiled.sql, params[0])
                else:
                    cursor.executemany(compiled.sql, params)
            except connection.dialect.loaded_dbapi.Error as exc:
                raise _wrapped(connection, compiled.sql, params, exc, cursor) from exc
            finally:
                cursor.close()


    def unnest_insert(self, dialect: Dialect, prefix: str, rows: list[dict[str, Any]]
                      ) -> tuple[str, dict[str, list[Any]]]:
        """PostgreSQL: this INSERT for all ``rows`` as ``INSERT ... SELECT * FROM
        unnest(column arrays)`` — its SQL and parameters (named ``{prefix}c0, c1 ...``).
        For INSERTs built with ``columns``."""
        cache = self._unnest_sql.setdefault(dialect, {})
        found = cache.get(prefix)
        if found is None:
            table = self.statement.table  # type: ignore[attr-defined]
            quote = dialect.identifier_preparer.quote
            names = self.columns or [c.key for c in table.columns]
            casts = [f"%({prefix}c{i})s::{table.c[name].type.compile(dialect=dialect)}[]"
                     for i, name in enumerate(names)]
            # keys name the columns in Python; the SQL needs their names (``error_enc``)
            cols = ", ".join(quote(table.c[n].name) for n in names)
            sql = (f"INSERT INTO {quote(table.name)} ({cols}) "
                   f"SELECT * FROM unnest({', '.join(casts)})")
            # One Python type per array: psycopg picks the array's type from its elements.
            coerce = [(name, _coercion(table.c[name].type, dialect)) for name in names]
            found = cache[prefix] = (sql, coerce)
        sql, coerce = found
        return sql, {f"{prefix}c{i}": [convert(row.get(name)) for row in rows]
                     for i, (name, convert) in enumerate(coerce)}


def insert_all(conn: Connection | Session,
               batches: list[tuple[DriverStatement, list[dict[str, Any]]]]) -> None:
    """Write each (INSERT, rows) pair, in order. On PostgreSQL, where every statement is a
    round trip, all of them go as ONE statement: each INSERT as ``INSERT ... SELECT FROM
    unnest(arrays)``, chained as data-modifying CTEs (foreign keys are checked at the
    end of the statement, so a row may refer to one inserted before it in the chain).
    Elsewhere: ``executemany`` per pair."""
    connection = _connection(conn)
    batches = [(statement, rows) for statement, rows in batches if rows]
    if connection.dialect.name != "postgresql":
        for statement, rows in batches:
            statement.executemany(connection, rows)
        return
    if not batches:
        return
    parts, params = [], {}
    for i, (statement, rows) in enumerate(batches):
        sql, values = statement.unnest_insert(connection.dialect, f"t{i}_", rows)
        parts.append(sql)
        params.update(values)
    *first, last = parts
    sql = ("WITH " + ", ".join(f"t{i} AS ({p})" for i, p in enumerate(first)) + " " + last
           if first else last)
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql, params)
    except connection.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(connection, sql, params, exc, cursor) from exc
    finally:
        cursor.close()


def _same(value: Any) -> Any:
    return value


def _coercion(column_type: Any, dialect: Dialect) -> Callable[[Any], Any]:
    """How a value goes into an unnest array: a decorated type's own conversion (e.g. a
    sealed column), else one Python type per array."""
    if isinstance(column_type, TypeDecorator):
        return lambda v: column_type.process_bind_param(v, dialect)
    return _COERCE.get(column_type.python_type, _same)


_COERCE: dict[type, Callable[[Any], Any]] = {
    float: lambda v: None if v is None else float(v),
    int: lambda v: None if v is None else int(v),
}

#: ``Connection.info`` key of the open ``buffered_writes`` block's rows.
BUFFER = "cityhub_write_buffer"


@contextmanager
def buffered_writes(conn: Connection | Session) -> Iterator[None]:
    """Inside the block, ``executemany`` only collects rows; when it ends, they are all
    written by ``insert_all`` — one statement on PostgreSQL, where every statement costs
    a round trip. For a group of small transactions committed as one
    (store.group_commit). Rows written this way are not visible to reads inside the
    block; a failing row (a unique violation) fails the whole block."""
    connection = _connection(conn)
    if BUFFER in connection.info:
        yield
        return
    buffer: dict[DriverStatement, list[dict[str, Any]]] = {}
    connection.info[BUFFER] = buffer
    try:
        yield
    finally:
        del connection.info[BUFFER]
    insert_all(connection, list(buffer.items()))  # in the order first used: parents first


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


def _connection(conn: Connection | Session) -> Connection:
    """The Core connection, in its transaction (a Session's, begun if not yet)."""
    return conn.connection() if isinstance(conn, Session) else conn
