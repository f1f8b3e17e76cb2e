"""The outage-related settings: SQLite's durability (``sqlite_synchronous``) and the
drain time on SIGTERM (``delivery.drain_seconds``)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub import ConfigError, Hub, load_config

#: The default: FULL (README, "SQLite durability": it cost under 10% in bench/intake.py)
DEFAULT = "FULL"


def _synchronous(hub: Hub) -> int:
    with hub.db.engine.connect() as conn:
        return int(conn.execute(text("PRAGMA synchronous")).scalar_one())


def test_sqlite_synchronous_is_a_setting_applied_to_every_connection(make_config, sqlite_url):
    default = Hub(load_config(make_config(sqlite_url)))
    normal = Hub(load_config(make_config(sqlite_url, sqlite_synchronous="normal")))
    full = Hub(load_config(make_config(sqlite_url, sqlite_synchronous="FULL")))
    try:
        assert default.config.sqlite_synchronous == DEFAULT
        assert _synchronous(default) == {"NORMAL": 1, "FULL": 2}[DEFAULT]
        assert _synchronous(normal) == 1 and _synchronous(full) == 2
    finally:
        for hub in (default, normal, full):
            hub.close()


def test_a_wrong_sqlite_synchronous_names_the_file_and_the_key(make_config, sqlite_url):
    path = make_config(sqlite_url, sqlite_synchronous="OFF")
    with pytest.raises(ConfigError, match=r"config\.yaml: sqlite_synchronous: one of"):
        load_config(path)


def test_drain_seconds_is_a_delivery_setting(make_config, sqlite_url):
    config = load_config(make_config(sqlite_url, delivery={"drain_seconds": 7}))
    assert config.delivery.drain_seconds == 7
    with pytest.raises(ConfigError, match="delivery"):
        load_config(make_config(sqlite_url, delivery={"drain_second": 7}))
