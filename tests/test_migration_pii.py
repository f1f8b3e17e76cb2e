"""Revision 0008_pii seals the personal data a store already holds: nothing is lost,
nothing stays in plaintext, and a store with such rows is not migrated without the key."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from hub import Hub, data_cipher, load_config
from store.admin_models import AdminUser
from store.db import Database, alembic_config
from store.models import AuditEntry, StageEvent, StoredFile
from tests.conftest import PG_URL, STORES, reset_postgres
from tests.test_pii_at_rest import scan_tables

NAME, OPINION, FILE = "旧数据隐私姓名", "旧数据隐私意见", "旧数据隐私材料.pdf"
NOW = datetime(2026, 11, 30, 8, 0)


@pytest.fixture(params=STORES)
def old_store(request, tmp_path) -> str:
    """A store at revision 0004 holding personal data in the columns of that schema."""
    if request.param == "postgres":
        reset_postgres(PG_URL)
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(alembic_config(url), "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO cases (case_no, item, apply_no, city_code, county_code, source, stage,"
            " payload_enc, created_at, updated_at) VALUES ('C1', 'rental_filing', 'A1',"
            " '511700', '511702', 'province', 'accepted', :p, :t, :t)"), {"p": b"x", "t": NOW})
        conn.execute(text(
            "INSERT INTO stage_events (case_id, stage, at, operator, opinion, source, recorded_at)"
            " SELECT id, 'accepted', :t, :n, :o, 'county', :t FROM cases"),
            {"t": NOW, "n": NAME, "o": OPINION})
        conn.execute(text(
            "INSERT INTO files (file_id, sha256, content_type, size, name, data_enc, created_at)"
            " VALUES ('f1', 'h', 'application/pdf', 1, :n, :d, :t)"),
            {"n": FILE, "d": b"x", "t": NOW})
        conn.execute(text("INSERT INTO audit (at, actor, action, target, detail) VALUES"
                          " (:t, 'op1', 'mark_stage', 'C1', :d)"), {"t": NOW, "d": OPINION})
        conn.execute(text(
            "INSERT INTO admin_users (username, display_name, password_hash, active,"
            " all_divisions, failed_logins, session_epoch, created_at) VALUES"
            " ('op1', :n, 'x', true, true, 0, 0, :t)"), {"n": NAME, "t": NOW})
    engine.dispose()
    return url


def test_existing_rows_are_sealed_and_read_back(old_store, make_config):
    config = load_config(make_config(old_store))
    with pytest.raises(RuntimeError, match="data key"):
        Database(old_store).migrate()  # no key: refused, nothing half-done is committed
    Database(old_store).migrate(cipher=data_cipher(config))
    assert scan_tables(old_store, {"name": NAME, "opinion": OPINION, "file": FILE}) == []
    hub = Hub(config)
    try:
        with hub.transaction() as s:
            ev = s.scalars(select(StageEvent)).one()
            assert (ev.operator, ev.opinion) == (NAME, OPINION)
            assert s.scalars(select(StoredFile.name)).one() == FILE
            audit = s.scalars(select(AuditEntry).where(AuditEntry.actor_hash == "op1")).one()
            assert (audit.actor, audit.target, audit.detail) == ("op1", "C1", OPINION)
            assert s.scalars(select(AuditEntry).where(AuditEntry.target_hash == "C1")).one()
            assert s.scalars(select(AdminUser.display_name)).one() == NAME
    finally:
        hub.close()
