"""The fixtures the suite's speed rests on do what the tests assume: a HubServer stops at
once (even with a keep-alive connection open) and frees its port; a PostgreSQL store is
handed out as the migrations left it, whatever the previous test wrote or changed."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.conftest import PG_URL, migrated_store
from tests.hubserver import HubServer


def test_hub_server_stops_at_once_with_a_keep_alive_connection_open(make_hub, sqlite_url,
                                                                    caplog):
    hub = make_hub(sqlite_url)
    server = HubServer(hub).start()
    port = server.server.effective_port
    with requests.Session() as http, caplog.at_level(logging.WARNING, logger="waitress"):
        assert http.get(server.url + "/healthz").status_code == 200  # the channel stays open
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2
        assert not server.thread.is_alive()
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), 1):
            pass
    assert not [r for r in caplog.records if "Bad file descriptor" in r.getMessage()]


@pytest.mark.skipif(not PG_URL, reason="HUB_TEST_DATABASE_URL is not set")
def test_postgres_store_comes_back_as_the_migrations_left_it(tmp_path):
    url = migrated_store("postgres", tmp_path)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            seeded = conn.execute(text("SELECT * FROM admin_functions ORDER BY 1")).all()
            assert seeded  # the migrations fill it
            conn.execute(text("DELETE FROM admin_functions"))
            conn.execute(text("INSERT INTO audit (at, actor_enc, action) "
                              "VALUES (now(), 'x', 'a'), (now(), 'x', 'b')"))
        engine.dispose()
        assert migrated_store("postgres", tmp_path) == url
        with engine.begin() as conn:
            assert conn.execute(text("SELECT * FROM admin_functions ORDER BY 1")).all() == seeded
            assert conn.execute(text("SELECT count(*) FROM audit")).scalar_one() == 0
            new_id = conn.execute(text("INSERT INTO audit (at, actor_enc, action) "
                                       "VALUES (now(), 'x', 'c') RETURNING id")).scalar_one()
            assert new_id == 1  # sequences start again
            conn.execute(text("CREATE TABLE stray (x int)"))  # a test that changed the schema
            conn.execute(text("ALTER TABLE audit DROP COLUMN action"))
        engine.dispose()
        migrated_store("postgres", tmp_path)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT to_regclass('public.stray')")).scalar() is None
            assert conn.execute(text("SELECT count(action) FROM audit")).scalar_one() == 0
    finally:
        engine.dispose()
