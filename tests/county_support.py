"""Helpers for the county tests: serve a hub for real, open cases, sign calls, read the outbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import select

from adapters.case_plan import open_case
from adapters.signing import signed_headers
from hub import Hub
from mapping.canonical import Applicant, CanonicalCase, Material
from store.models import Case, OutboxMessage, StageEvent

ID_NO = "11010519491231002X"
OWNER_ID_NO = "11010519491231002X"  # owns H-0001 in the simulator's data set

DATA: dict[str, dict[str, Any]] = {
    "rental_filing": {"lessee_name": "张三", "lessee_id_no": ID_NO, "lessor_name": "李四",
                      "lessor_id_no": "510722198001010016", "house_id": "H-0001",
                      "address": "达州市通川区朝阳东路1号1单元101"},
    "presale_contract_filing": {"buyer_name": "张三", "buyer_id_no": ID_NO, "seller_name": "某公司",
                                "seller_id_no": "510722198001010016", "house_id": "H-0001",
                                "address": "凤凰城一期1栋101"},
    "property_info_query": {},
    "presale_contract_verify": {"contract_no": "YS2026-0001", "buyer_name": "李四"},
    "maintenance_fund_deposit": {},
    "maintenance_fund_community_query": {},
}


def secret(app_id: str) -> bytes:
    """The secret ``tests.support.write_config`` gives every partner."""
    return f"secret-{app_id}-0123456789".encode()


@contextmanager
def served(hub: Hub) -> Iterator[str]:
    """The hub's web app on the production server (waitress) on loopback; yields its URL."""
    from tests.hubserver import HubServer

    server = HubServer(hub).start()
    try:
        yield server.url
    finally:
        server.stop()


def new_case(hub: Hub, item: str, county: str, apply_no: str = "A-0001",
             materials: list[Material] | None = None, data: dict[str, Any] | None = None) -> str:
    """Open a case the way the province intake does; returns the county's sub-case number."""
    canonical = CanonicalCase(
        item=item, apply_no=apply_no, city_code="511700", county_codes=[county],
        applicant=Applicant("张三", "1", ID_NO, phone="13800138000"),
        submitted_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        data=dict(DATA.get(item, {}) if data is None else data), materials=materials or [],
    )
    with hub.transaction() as s:
        opened = open_case(s, hub, canonical)
        return opened.subs[0][0].case_no


def post_signed(base_url: str, path: str, body: Any, app_id: str,
                key: bytes | None = None) -> requests.Response:
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json",
               **signed_headers(app_id, key or secret(app_id), "POST", path, raw)}
    return requests.post(base_url + path, data=raw, headers=headers, timeout=15)


def event(case_no: str, item: str, county: str, stage: str, **extra: Any) -> dict[str, Any]:
    return {"case_no": case_no, "item": item, "county_code": county, "stage": stage,
            "at": extra.pop("at", "2026-11-23T09:00:00+08:00"), "operator": "王窗口",
            "opinion": None, "filing_no": None, "result": None, **extra}


def case_of(hub: Hub, case_no: str) -> Case:
    with hub.transaction() as s:
        return s.scalars(select(Case).where(Case.case_no == case_no)).one()


def stages_of(hub: Hub, case_no: str) -> list[str]:
    with hub.transaction() as s:
        case = s.scalars(select(Case).where(Case.case_no == case_no)).one()
        return list(s.scalars(select(StageEvent.stage).where(StageEvent.case_id == case.id)
                              .order_by(StageEvent.id)))


def province_messages(hub: Hub, operation: str = "status",
                      case_no: str | None = None) -> list[dict[str, Any]]:
    """Payloads of the messages queued for the province, in order."""
    with hub.transaction() as s:
        stmt = select(OutboxMessage).where(OutboxMessage.interface == f"province.{operation}")
        if case_no is not None:
            case = s.scalars(select(Case).where(Case.case_no == case_no)).one()
            stmt = stmt.where(OutboxMessage.case_id == case.id)
        rows = s.scalars(stmt.order_by(OutboxMessage.id)).all()
        return [hub.cipher.open_json(r.payload_enc) for r in rows]


def outbox_count(hub: Hub) -> int:
    with hub.transaction() as s:
        return len(s.scalars(select(OutboxMessage.id)).all())
