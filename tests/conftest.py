"""Fixtures: a migrated store per test (SQLite always; PostgreSQL when
HUB_TEST_DATABASE_URL is set), a config on disk, an in-process hub, loopback peers."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from adapters.sim.loopback import LoopbackServer
from hub import Hub, load_config
from store.db import Database
from tests.support import write_config

PG_URL = os.environ.get("HUB_TEST_DATABASE_URL")
STORES = ["sqlite", "postgres"] if PG_URL else ["sqlite"]


def reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


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
    """A store migrated to head: PostgreSQL migrated afresh (schema dropped first), SQLite
    a copy of one store migrated once per session (same schema and seed rows)."""
    if kind == "postgres":
        assert PG_URL
        reset_postgres(PG_URL)
        db = Database(PG_URL)
        db.migrate()
        db.dispose()
        return PG_URL
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
