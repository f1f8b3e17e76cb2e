"""Migration 0007_county on a store with cases: a county's own cases (申请并受理) move into
that county's namespace, the province's stay in "", and the new unique key holds."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from store.db import alembic_config
from tests.conftest import STORES, store_at_revision

NOW = datetime(2026, 11, 23, 1, 0)


def row(id_: int, case_no: str, county: str, source: str, parent: int | None = None,
        apply_no: str = "N-1") -> dict:
    return {"id": id_, "case_no": case_no, "parent_id": parent, "item": "rental_filing",
            "apply_no": apply_no, "city_code": "511700", "county_code": county,
            "source": source, "stage": "received", "payload_enc": b"x",
            "created_at": NOW, "updated_at": NOW}


@pytest.mark.parametrize("kind", STORES)
def test_upgrade_moves_county_cases_into_their_namespace(kind, tmp_path):
    url = store_at_revision(kind, tmp_path, "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        cases = Table("cases", MetaData(), autoload_with=conn)
        conn.execute(insert(cases), [
            row(1, "P1", "", "province", apply_no="P-1"),
            row(2, "P2", "511702", "province", 1, apply_no="P-1"),
            row(3, "C1", "", "county", apply_no="N-1"),
            row(4, "C2", "511722", "county", 3, apply_no="N-1"),
        ])
    engine.dispose()
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            cases = Table("cases", MetaData(), autoload_with=conn)
            found = dict(conn.execute(select(cases.c.case_no, cases.c.namespace)).all())
            assert found == {"P1": "", "P2": "", "C1": "511722", "C2": "511722"}
            # the province may now use the county's number: another key
            conn.execute(insert(cases), [row(5, "P3", "", "province", apply_no="N-1"),
                                         row(6, "P4", "511722", "province", 5, apply_no="N-1")])
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(cases), [{**row(7, "C3", "", "county"), "namespace": "511722"}])
    finally:
        engine.dispose()
