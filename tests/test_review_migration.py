"""Migration 0015_review on stores with data: two operators mapped to one province user
stop the upgrade with a Chinese message naming them (nothing changed), and once resolved
it goes on; numbers that closed cases are bound to the case of their first 办结 (a later
case with the same number stays unbound); the new unique keys then hold."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, create_engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from store.db import alembic_config
from tests.conftest import STORES, store_at_revision

NOW = datetime(2026, 11, 23, 1, 0)
NUMBER = "430223202406200101-Y01-B0001"


def _user(id_: int, username: str, sub: str | None) -> dict:
    return {"id": id_, "username": username, "display_name_enc": b"x", "password_hash": "x",
            "province_user_id": sub, "active": True, "all_divisions": False,
            "failed_logins": 0, "session_epoch": 0, "created_at": NOW}


def _case(id_: int, case_no: str) -> dict:
    return {"id": id_, "case_no": case_no, "parent_id": None, "item": "presale_contract_filing",
            "apply_no": f"A-{id_}", "city_code": "430200", "county_code": "430223",
            "namespace": "", "source": "province", "stage": "completed", "payload_enc": b"x",
            "created_at": NOW, "updated_at": NOW}


def _event(id_: int, case_id: int) -> dict:
    return {"id": id_, "case_id": case_id, "stage": "completed", "at": NOW,
            "filing_no": NUMBER, "source": "county", "recorded_at": NOW}


@pytest.mark.parametrize("kind", STORES)
def test_upgrade_refuses_shared_province_users_and_binds_first_closings(kind, tmp_path):
    url = store_at_revision(kind, tmp_path, "0012_engine")
    engine = create_engine(url)
    with engine.begin() as conn:
        t = {n: Table(n, MetaData(), autoload_with=conn)
             for n in ("admin_users", "cases", "stage_events", "numbering_numbers")}
        conn.execute(insert(t["admin_users"]), [_user(1, "zhang", "p.zhang"),
                                                _user(2, "wang", "p.zhang"),
                                                _user(3, "li", None), _user(4, "zhao", None)])
        conn.execute(insert(t["cases"]), [_case(10, "C10"), _case(11, "C11")])
        conn.execute(insert(t["stage_events"]), [_event(21, 11), _event(20, 10)])
        conn.execute(insert(t["numbering_numbers"]), [{
            "number": NUMBER, "kind": "contract_filing", "county_code": "430223",
            "project_code": "2406-430223-70-01-000001", "parent_number": None,
            "chain_code": "c", "request_enc": b"x", "issued_at": NOW}])
    engine.dispose()
    with pytest.raises(RuntimeError, match="升级停止") as stopped:
        command.upgrade(alembic_config(url), "head")
    assert "p.zhang：wang、zhang" in str(stopped.value)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            users = Table("admin_users", MetaData(), autoload_with=conn)
            conn.execute(update(users).where(users.c.id == 2).values(province_user_id=None))
        engine.dispose()
        command.upgrade(alembic_config(url), "head")
        with engine.begin() as conn:
            numbers = Table("numbering_numbers", MetaData(), autoload_with=conn)
            assert conn.execute(select(numbers.c.case_id)).scalar_one() == 10  # first 办结
        with pytest.raises(IntegrityError), engine.begin() as conn:
            users = Table("admin_users", MetaData(), autoload_with=conn)
            conn.execute(update(users).where(users.c.id == 2).values(
                province_user_id="p.zhang"))
    finally:
        engine.dispose()
