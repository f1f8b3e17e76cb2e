"""Migration 0013_rollup_outcomes on a store with a rolled-up past: the rows of one day,
interface and division (one per outcome) become one row with its calls counted by
outcome, the sums and the histogram kept, the maximum the largest."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from alembic import command
from sqlalchemy import MetaData, Table, create_engine, insert, select

from store.db import alembic_config
from tests.conftest import STORES, store_at_revision

DAY = date(2026, 11, 20)


def old_row(interface: str, division: str | None, outcome: str, calls: int, total: float,
            mx: float, bucket: int) -> dict:
    hist = {f"h{i}": (calls if i == bucket else 0) for i in range(12)}
    return {"day": DAY, "interface": interface, "division": division, "outcome": outcome,
            "calls": calls, "total_ms": total, "max_ms": mx, **hist}


@pytest.mark.parametrize("kind", STORES)
def test_upgrade_merges_the_outcome_rows(kind, tmp_path):
    url = store_at_revision(kind, tmp_path, "0012_engine")
    engine = create_engine(url)
    with engine.begin() as conn:
        daily = Table("admin_call_daily", MetaData(), autoload_with=conn)
        conn.execute(insert(daily), [
            old_row("county.rental_filing", "511702", "ok", 10, 500.0, 90.0, 3),
            old_row("county.rental_filing", "511702", "error", 2, 3000.0, 2500.0, 8),
            old_row("county.rental_filing", "511702", "rejected", 1, 40.0, 40.0, 2),
            old_row("county.rental_filing", None, "ok", 4, 80.0, 30.0, 2),
            old_row("province.status", "511703", "error", 3, 30.0, 12.0, 1),
        ])
        done = Table("admin_call_daily_done", MetaData(), autoload_with=conn)
        conn.execute(insert(done), [{"day": DAY, "rows": 5,
                                     "refreshed_at": datetime(2026, 11, 21)}])
    engine.dispose()
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            daily = Table("admin_call_daily", MetaData(), autoload_with=conn)
            assert "outcome" not in daily.c
            got = {(r.interface, r.division): (r.day, r.calls, r.ok, r.error, r.rejected,
                                               r.total_ms, r.max_ms,
                                               [getattr(r, f"h{i}") for i in range(12)])
                   for r in conn.execute(select(daily))}
            assert conn.scalar(select(daily.c.id).order_by(daily.c.id).limit(1)) > 5
        assert got == {
            ("county.rental_filing", "511702"): (
                DAY, 13, 10, 2, 1, 3540.0, 2500.0, [0, 0, 1, 10, 0, 0, 0, 0, 2, 0, 0, 0]),
            ("county.rental_filing", None): (
                DAY, 4, 4, 0, 0, 80.0, 30.0, [0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            ("province.status", "511703"): (
                DAY, 3, 0, 3, 0, 30.0, 12.0, [0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        }
        command.downgrade(alembic_config(url), "0012_engine")  # emptied, rebuilt by the job
        with engine.begin() as conn:
            daily = Table("admin_call_daily", MetaData(), autoload_with=conn)
            assert "outcome" in daily.c and "ok" not in daily.c
            assert conn.scalar(select(daily.c.id)) is None
    finally:
        engine.dispose()
