"""The sharing audit page and its export read a bounded time range (at most 366 days:
an unbounded one scans the 5-year audit at once), refused with a Chinese message and
nothing exported; the export, written row by row (openpyxl write-only), holds every row
of the range as text cells."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from store.models import AuditEntry
from store.share_models import ShareAccess
from tests.county_support import served
from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

TOO_LONG = "查询的时间范围最长 366 天"


@pytest.fixture
def auditor(make_hub, store_url):
    hub = make_hub(store_url, inbound=["departments"],
                   partners={"court": {"department": "court"}})
    with hub.transaction() as s:
        s.add_all(ShareAccess(at=datetime(2025, 6, 1, 4, 0, i % 60), app_id="court",
                              department="court", direction="in", action="push.seizures",
                              code="0000", asked="=1+1" if i == 0 else f"house_id=H-{i}",
                              count=1, returned=f"CF-{i}") for i in range(1200))
    add_operator(hub, "auditor", ALL_FUNCTIONS)
    with served(hub) as url:
        client = Client(url)
        assert client.login("auditor").status_code == 200
        yield hub, client


def _exports(hub) -> int:
    with hub.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "export_share_audit"))


@pytest.mark.parametrize("path", ["/admin/share", "/admin/share.xlsx"])
def test_a_range_over_366_days_is_refused(auditor, path):
    hub, client = auditor
    for since, until in (("2020-01-01", "2026-11-30"), ("2025-01-01", "2026-01-02")):
        resp = client.get(path, params={"since": since, "until": until})
        assert resp.status_code == 400 and TOO_LONG in resp.text
        assert resp.headers["Content-Type"].startswith("text/html")
    assert _exports(hub) == 0
    ok = client.get(path, params={"since": "2025-01-01", "until": "2026-01-01"})  # 366 days
    assert ok.status_code == 200


def test_the_export_streams_every_row_as_text(auditor):
    hub, client = auditor
    resp = client.get("/admin/share.xlsx", params={"since": "2025-01-01",
                                                    "until": "2025-12-31"})
    assert resp.status_code == 200
    ws = load_workbook(io.BytesIO(resp.content))["共享访问审计"]
    rows = list(ws.iter_rows(min_row=2))
    assert len(rows) == 1200
    formula = next(c for r in rows for c in r if c.value == "=1+1")
    assert formula.data_type == "s" and formula.quotePrefix
    assert _exports(hub) == 1
