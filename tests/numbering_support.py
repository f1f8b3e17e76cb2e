"""Helpers for the numbering tests: a 株洲市 hub (Hunan profile) whose province is the
simulated numbering service, signed county calls (JSON, GET, multipart)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from adapters.signing import signed_headers
from adapters.sim.numbering import NumberingSim
from hub import Hub, load_config
from mapping.certificate_qr import find_font
from tests.county_support import secret
from tests.hubserver import HubServer
from tests.support import DEAD_URL, ROOT, write_config

ZHUZHOU = ("430202", "430203", "430204", "430211", "430212", "430223", "430224", "430225",
           "430281")
YOUXIAN, CHALING = "430223", "430224"
PERMIT = "430223202406200101"  # the seed's example construction permit (攸县)


def _png() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (40, 30), (200, 200, 200)).save(out, format="PNG")
    return out.getvalue()


PNG_SCAN = _png()  # the contract's "scan"


def zhuzhou_config(directory: Path, database_url: str, province_url: str,
                   profile: str | None = "hunan") -> Path:
    """A config of 株洲市 (every county a smart platform) with the numbering profile."""
    partners = {f"county_{c}": {"base_url": f"{DEAD_URL}/county/{c}", "division": c}
                for c in ZHUZHOU}
    path = write_config(directory, database_url,
                        secrets={a: secret(a).decode() for a in partners})
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config.update(city="430200", hub_app_id="cityhub_430200",
                  routing_table=str(ROOT / "routes" / "tables" / "zhuzhou.yaml"),
                  inbound=["county_smart"], numbering={"profile": profile or "none"},
                  partners={"province": {"base_url": province_url, "timeout": 2}, **partners})
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


@dataclass
class Env:
    hub: Hub
    url: str
    province: NumberingSim

    def post(self, path: str, body: Any, county: str = YOUXIAN) -> requests.Response:
        app_id = f"county_{county}"
        raw = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json",
                   **signed_headers(app_id, secret(app_id), "POST", path, raw)}
        return requests.post(self.url + path, data=raw, headers=headers, timeout=15)

    def get(self, path: str, county: str = YOUXIAN) -> requests.Response:
        app_id = f"county_{county}"
        headers = signed_headers(app_id, secret(app_id), "GET", path, b"")
        return requests.get(self.url + path, headers=headers, timeout=15)

    def upload(self, data: bytes = PNG_SCAN, county: str = YOUXIAN) -> requests.Response:
        app_id = f"county_{county}"
        path = "/api/county/v1/numbers/materials"
        prepared = requests.Request("POST", self.url + path,
                                    files={"file": ("contract.png", data, "image/png")}).prepare()
        body = prepared.body if isinstance(prepared.body, bytes) else b""
        prepared.headers.update(signed_headers(app_id, secret(app_id), "POST", path, body))
        with requests.Session() as s:
            return s.send(prepared, timeout=15)


@pytest.fixture
def numbering_env(tmp_path: Path, store_url: str) -> Iterator[Env]:
    if find_font() is None:
        pytest.skip("no CJK font for the QR caption (tests/provision.sh installs one)")
    sim = NumberingSim(secret("province"), "cityhub_430200").start()
    hub = Hub(load_config(zhuzhou_config(tmp_path / "hub", store_url, sim.base_url)))
    server = HubServer(hub).start()
    try:
        yield Env(hub, server.url, sim)
    finally:
        server.stop()
        hub.close()
        sim.stop()


def presale_body(permit: str = PERMIT, backfill: bool = False,
                 project: str = "2406-430223-70-01-000001", planned: str = "2026-06-30",
                 **extra: Any) -> dict[str, Any]:
    return {"project_code": project,
            "construction_permits": [{"no": permit, "planned_completion": planned}],
            "building_nos": ["22#"], "developer_name": "株洲锦绣置业有限公司",
            "developer_uscc": "91430223MA4L00000Y", "project_name": "锦绣星城三期（22#栋）",
            "presale_area": "12000.50", "backfill": backfill, **extra}


def contract_body(permit_no: str, file_id: str, **extra: Any) -> dict[str, Any]:
    return {"presale_permit_no": permit_no, "building_no": "22#", "room_nos": ["1-101"],
            "address": "攸县锦绣星城三期22栋一单元101号",
            "buyers": [{"name": "张三", "id_type": "1", "id_no": "11010519491231002X"}],
            "price": "680000.00", "payment": "commercial_loan", "loan_amount": "400000.00",
            "file_id": file_id, **extra}
