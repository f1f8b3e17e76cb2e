"""A fresh hub keeps its files to its own user: ``var/`` and the files directory 0700,
the secrets file and the SQLite store (with its -wal, -shm and writer lock) 0600 — set at
creation, not left to the umask."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from sqlalchemy import select

from hub import Hub, init_secrets, load_config
from store.db import Database
from store.models import AuditEntry
from tests.support import ROOT, hub_command, write_config


def fresh_site(directory: Path) -> Path:
    """A test config with the defaults: store, secrets and files under ``var/`` beside it."""
    config = write_config(directory, "sqlite:///unused.db", inbound=[],
                          scheduler={"enabled": False})
    (directory / "secrets.json").unlink()
    data = yaml.safe_load(config.read_text())
    for key in ("database_url", "secrets_file", "files_dir"):
        del data[key]
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    return config


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def assert_private(var: Path, config: Path) -> None:
    hub = Hub(load_config(config))
    try:
        with hub.transaction() as s:  # a write: SQLite opens its -wal and -shm
            hub.audit(s, "tester", "probe", "x")
        with hub.transaction() as s:
            assert s.scalars(select(AuditEntry.action)).all() == ["probe"]
        # while the store is open, so the WAL and shared-memory files exist
        files = {p.name: mode(p) for p in var.iterdir()}
        assert files == {"secrets.json": "0o600", "cityhub.db": "0o600",
                         "cityhub.db-wal": "0o600", "cityhub.db-shm": "0o600",
                         "cityhub.db.writer-lock": "0o600", "files": "0o700"}, files
        assert mode(var) == "0o700"
    finally:
        hub.close()


def test_hub_commands_create_a_private_var(tmp_path):
    config = fresh_site(tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if k not in ("HUB_DATABASE_URL", "HUB_DATA_KEY")}
    for command in ("init-secrets", "migrate"):
        done = subprocess.run(hub_command(config, command), cwd=ROOT, capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
    var = tmp_path / "site" / "var"
    assert mode(var) == "0o700" and mode(var / "secrets.json") == "0o600"
    assert mode(var / "cityhub.db") == "0o600"
    with umask(0o022):
        assert_private(var, config)


def test_modes_are_set_at_creation_whatever_the_umask(tmp_path, monkeypatch):
    """In a process with a permissive umask (no ``hub.py main``): still private."""
    monkeypatch.delenv("HUB_DATABASE_URL", raising=False)
    monkeypatch.delenv("HUB_DATA_KEY", raising=False)
    config = fresh_site(tmp_path / "site")
    with umask(0):
        loaded = load_config(config)
        init_secrets(loaded)
        db = Database(loaded.database_url)
        db.migrate()
        db.dispose()
        assert_private(tmp_path / "site" / "var", config)
