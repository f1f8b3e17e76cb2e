"""Fixtures: a migrated store per test (SQLite always; PostgreSQL when
HUB_TEST_DATABASE_URL is set), a config on disk, an in-process hub, loopback peers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from adapters.sim.loopback import LoopbackServer
from hub import Hub, load_config
from store.db import Database
from tests.support import write_config

# tmp_path on tmpfs when the machine has one: every test's SQLite store syncs at each
# commit (sqlite_synchronous FULL, the hub's default), a disk flush each on a real disk.
# PYTEST_DEBUG_TEMPROOT (pytest's own variable) set by hand wins.
if "PYTEST_DEBUG_TEMPROOT" not in os.environ and os.access("/dev/shm", os.W_OK | os.X_OK):
    os.environ["PYTEST_DEBUG_TEMPROOT"] = "/dev/shm"

#: The PostgreSQL store the ``[postgres]`` parametrisations use. Under pytest-xdist each
#: worker (gw0, gw1, ...) has a database of its own beside the configured one
#: (``<name>_gw0``, ...), created on first use.
PG_BASE_URL = os.environ.get("HUB_TEST_DATABASE_URL")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _worker_url(url: str, worker: str | None) -> str:
    if not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(
        hide_password=False)


PG_URL = _worker_url(PG_BASE_URL, WORKER) if PG_BASE_URL else None
STORES = ["sqlite", "postgres"] if PG_URL else ["sqlite"]
_CREATED: set[str] = set()


def _ensure_database(url: str) -> None:
    """Create ``url``'s database (a worker's own) unless it exists; once per session."""
    if url in _CREATED or url == PG_BASE_URL:
        return
    assert PG_BASE_URL
    name = make_url(url).database
    engine = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                            {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    _CREATED.add(url)


def reset_postgres(url: str) -> None:
    """An empty ``public`` schema (the tests that migrate by hand start here)."""
    _ensure_database(url)
    _PG_IMAGE.pop(url, None)  # what the session migrated there is gone
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def store_at_revision(kind: str, tmp_path: Path, revision: str) -> str:
    """The url of an empty store of ``kind`` ("sqlite" or "postgres") migrated up to
    ``revision``: a migration test fills it with old rows, then upgrades."""
    from alembic import command

    from store.db import alembic_config

    if kind == "postgres":
        assert PG_URL
        reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), revision)
    return url


# ------------------------------------------------------------- PostgreSQL: migrate once

#: What identifies the migrated schema: every relation (by oid, so one dropped and made
#: again counts as changed), column, constraint, and the Alembic revision.
_PG_SCHEMA_PRINT = text("""
SELECT md5(coalesce(string_agg(x, ';' ORDER BY x), '')) FROM (
  SELECT format('%s:%s:%s:%s:%s:%s', c.oid, c.relname, c.relkind, a.attname,
                format_type(a.atttypid, a.atttypmod), a.attnotnull) AS x
    FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
   WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT conname || ':' || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'rev:' || version_num FROM alembic_version
) s""")
_PG_SEQUENCES = text("SELECT sequencename, last_value FROM pg_sequences "
                     "WHERE schemaname = 'public'")


@dataclass
class _PgImage:
    """A PostgreSQL store as the session migrated it: its schema's print, the rows the
    migrations wrote (COPY text per table) and its sequences."""

    schema_print: str
    tables: list[str]
    rows: dict[str, bytes]
    sequences: dict[str, int | None]


_PG_IMAGE: dict[str, _PgImage] = {}


def _pg_take_image(url: str) -> _PgImage:
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        schema_print = conn.execute(_PG_SCHEMA_PRINT.text).fetchone()[0]
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version' ORDER BY tablename")]
        rows: dict[str, bytes] = {}
        for table in tables:
            with conn.cursor().copy(f'COPY "{table}" TO STDOUT') as copy:
                data = b"".join(bytes(block) for block in copy)
            if data:
                rows[table] = data
        sequences = dict(conn.execute(_PG_SEQUENCES.text).fetchall())
    return _PgImage(schema_print, tables, rows, sequences)


def _pg_restore(url: str, image: _PgImage) -> bool:
    """Empty every table and put the migrations' rows back, when the schema is still the
    one migrated this session (False otherwise: the caller migrates afresh)."""
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        # a connection a finished test left in a transaction would block the DELETEs
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname ="
                     " current_database() AND pid <> pg_backend_pid()"
                     " AND state LIKE 'idle in transaction%'")
        try:
            if conn.execute(_PG_SCHEMA_PRINT.text).fetchone()[0] != image.schema_print:
                return False
        except psycopg.Error:  # no alembic_version: not a migrated store any more
            return False
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")  # no FK order
            for table in image.tables:
                conn.execute(f'DELETE FROM "{table}"')
            for table, data in image.rows.items():
                with conn.cursor().copy(f'COPY "{table}" FROM STDIN') as copy:
                    copy.write(data)
            for name, value in conn.execute(_PG_SEQUENCES.text).fetchall():
                was = image.sequences.get(name)
                if value != was:
                    if was is None:
                        conn.execute(f'ALTER SEQUENCE "{name}" RESTART')
                    else:
                        conn.execute("SELECT setval(%s, %s)", (f'"{name}"', was))
    return True


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq one (psycopg.connect)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _migrated_postgres(url: str) -> str:
    """``url`` migrated to head: migrated once per session, then emptied back to what the
    migrations left (seconds per test saved over dropping the schema and migrating)."""
    image = _PG_IMAGE.get(url)
    if image is not None and _pg_restore(url, image):
        return url
    reset_postgres(url)
    db = Database(url)
    db.migrate()
    db.dispose()
    _PG_IMAGE[url] = _pg_take_image(url)
    return url


# ------------------------------------------------------------------ SQLite: copy an image

_SQLITE_TEMPLATE: dict[str, bytes] = {}


def _migrated_sqlite_image() -> bytes:
    """The bytes of a freshly migrated SQLite store, migrated once per test session."""
    if "image" not in _SQLITE_TEMPLATE:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "template.db"
            db = Database(f"sqlite:///{path}")
            db.migrate()
            db.dispose()
            _SQLITE_TEMPLATE["image"] = path.read_bytes()
    return _SQLITE_TEMPLATE["image"]


def migrated_store(kind: str, tmp_path: Path) -> str:
    """A store migrated to head, as the migrations left it: PostgreSQL migrated once per
    session and emptied back to that between tests, SQLite a copy of one store migrated
    once per session (same schema and seed rows)."""
    if kind == "postgres":
        assert PG_URL
        return _migrated_postgres(PG_URL)
    path = tmp_path / "hub.db"
    path.write_bytes(_migrated_sqlite_image())
    path.chmod(0o600)
    return f"sqlite:///{path}"


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated store, once per store kind."""
    return migrated_store(request.param, tmp_path)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return migrated_store("sqlite", tmp_path)


@pytest.fixture
def postgres_url(tmp_path: Path) -> str:
    if not PG_URL:
        pytest.skip("HUB_TEST_DATABASE_URL is not set (PostgreSQL tests run in .ci/run)")
    return migrated_store("postgres", tmp_path)


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    """``make_config(store_url, partners={...}, **overrides)`` writes a config file."""
    counter = iter(range(1000))

    def make(database_url: str, **kwargs: Any) -> Path:
        return write_config(tmp_path / f"hub{next(counter)}", database_url, **kwargs)

    return make


@pytest.fixture
def make_hub(make_config: Callable[..., Path]) -> Iterator[Callable[..., Hub]]:
    """``make_hub(store_url, **config)`` builds an in-process hub (closed after the test)."""
    hubs: list[Hub] = []

    def make(database_url: str, **kwargs: Any) -> Hub:
        hub = Hub(load_config(make_config(database_url, **kwargs)))
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        hub.close()


@pytest.fixture
def peer() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_peer() -> Iterator[Callable[[], LoopbackServer]]:
    servers: list[LoopbackServer] = []

    def make() -> LoopbackServer:
        server = LoopbackServer().start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
