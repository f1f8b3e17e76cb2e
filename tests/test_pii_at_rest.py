"""Personal data at rest: known markers written through every inbound path of a real
``hub.py serve`` (province application and material, county callbacks, apply-and-accept,
bank SOAP notices, POS, an operator marking a stage, a failed sign-in) are found in
plaintext nowhere — not in the SQLite file, its -wal and -shm, the files directory, the
hub's log output, Python logging, nor (both stores) in any text or bytea column."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
import yaml
import zeep
from sqlalchemy import String, Text, create_engine, inspect, select, text
from sqlalchemy.types import LargeBinary, _Binary

from adapters.fund.auth import add_login
from adapters.sim.province import ProvinceClient, ProvinceSim
from hub import Hub, load_config
from logsafe import SafeFormatter
from store.fund_models import FundHouse, SupervisedAccount
from store.models import AuditEntry, Case, OutboxMessage, StageEvent, StoredFile
from tests import hostile
from tests.county_support import post_signed
from tests.hubserver import PROVINCE_SECRET, SMART_COUNTIES, CountyPeer, application
from tests.support import start_hub_process, stop_process, wait_until
from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

TZ = ZoneInfo("Asia/Shanghai")
BANK, ACCOUNT, HOUSE, PASSWORD = "ICBC", "6217000000000001", "511702-001-0101", "bank-pass-7x"
PNG = hostile.png(32, 24, noise=True)  # a real file: uploads are decoded


def id_number(body17: str) -> str:
    """A mainland ID number with its check digit (GB 11643)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(body17, weights, strict=True))
    return body17 + "10X98765432"[total % 11]


#: One marker per kind of personal data; none of them may be found in plaintext.
MARKERS: dict[str, str] = {
    "id_no": id_number("51170219770707313"),
    "phone": "13977553311",
    "name": "司马隐私",
    "file_name": "隐私材料QX7.png",
    "opinion": "审核意见隐私ZR4",
    "operator": "窗口员皇甫密",
    "bank_account": "6222027788990011",
    "buyer": "欧阳买方",
}
#: The test's own clients' loggers (they log what the test sends, markers included).
CLIENT_LOGGERS = ("zeep", "urllib3", "requests")
#: The user name of a failed sign-in (the login-failure table is another branch's change).
LOGIN_MARKER = "失败登录隐私用户"


def encodings(marker: str) -> list[bytes]:
    """The ways a marker can sit in a file: UTF-8, GBK, and JSON's \\u escapes."""
    return sorted({marker.encode("utf-8"), marker.encode("gbk"),
                   json.dumps(marker)[1:-1].encode()})


def found_in(blob: bytes, markers: dict[str, str]) -> list[str]:
    return [name for name, m in markers.items() if any(f in blob for f in encodings(m))]


def scan_tables(url: str, markers: dict[str, str]) -> list[str]:
    """``table.column: marker`` for every text or binary column holding a marker."""
    engine = create_engine(url)
    hits: list[str] = []
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            for table in insp.get_table_names():
                for col in insp.get_columns(table):
                    if not isinstance(col["type"], String | Text | LargeBinary | _Binary):
                        continue
                    q = text(f'SELECT "{col["name"]}" FROM "{table}" '
                             f'WHERE "{col["name"]}" IS NOT NULL')
                    for (value,) in conn.execute(q):
                        blob = bytes(value) if not isinstance(value, str) else value.encode()
                        hits += [f"{table}.{col['name']}: {n}" for n in found_in(blob, markers)]
    finally:
        engine.dispose()
    return sorted(set(hits))


class Traffic:
    """Drives every inbound path of one served hub with the markers."""

    def __init__(self, hub: Hub, url: str, province: ProvinceSim) -> None:
        self.hub, self.url, self.province = hub, url, province
        self.client = ProvinceClient(url, PROVINCE_SECRET)

    def province_application(self) -> dict[str, str]:
        up = self.client.upload("510000-20261202-000777", "511702", MARKERS["file_name"], PNG)
        assert up.status == 200 and up.body["code"] == "0000", up.body
        body = application(apply_no="510000-20261202-000777", counties=("511702", "511725"),
                           lessee_name=MARKERS["name"], lessee_id_no=MARKERS["id_no"])
        body["applicant"].update(name=MARKERS["name"], id_no=MARKERS["id_no"],
                                 phone=MARKERS["phone"])
        body["materials"] = [{"file_id": up.body["data"]["file_id"],
                              "name": MARKERS["file_name"]}]
        bad = {**body, "data": {**body["data"], "house_id": None}, "apply_no": "bad-0777"}
        refused = self.client.submit("rental_filing", bad)  # refused: its call is logged too
        assert refused.body["code"] != "0000", refused.body
        ans = self.client.submit("rental_filing", body)
        assert ans.status == 200 and ans.body["code"] == "0000", ans.body
        with self.hub.transaction() as s:
            subs = s.scalars(select(Case).where(Case.apply_no == body["apply_no"],
                                                Case.parent_id.is_not(None))).all()
            return {c.county_code: c.case_no for c in subs}

    def county_callbacks(self, case_no: str) -> None:
        for stage, extra in (("accepted", {}), ("approved", {"opinion": MARKERS["opinion"]})):
            ev = {"case_no": case_no, "item": "rental_filing", "county_code": "511702",
                  "stage": stage, "at": "2026-12-02T09:00:00+08:00",
                  "operator": MARKERS["operator"], "opinion": None, "filing_no": None,
                  "result": None, **extra}
            r = post_signed(self.url, "/api/county/v1/events", ev, "county_511702")
            assert r.status_code == 200 and r.json()["code"] == "0000", r.text

    def apply_and_accept(self) -> None:
        body = {"item": "maintenance_fund_deposit", "county_code": "511722",
                "county_case_no": "WX-511722-0777",
                "applicant": {"name": MARKERS["name"], "id_type": "1", "id_no": MARKERS["id_no"],
                              "phone": MARKERS["phone"]},
                "data": {"amount": "3200.00"}, "at": "2026-12-02T09:00:00+08:00",
                "operator": MARKERS["operator"]}
        r = post_signed(self.url, "/api/county/v1/apply-and-accept", body, "county_511722")
        assert r.status_code == 200 and r.json()["code"] == "0000", r.text

    def bank_and_pos(self) -> None:
        svc = zeep.Client(self.url + "/soap/fund?wsdl").service
        when = datetime(2026, 12, 2, 10, 30, tzinfo=TZ)
        tok = svc.Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD).token
        dep = svc.DepositNotice(
            token=tok, serial_no="PII-D1", account_no=ACCOUNT, amount=Decimal("100.00"),
            occurred_at=when, payer_name=MARKERS["name"], payer_account=MARKERS["bank_account"],
            pay_method="01", house_code=HOUSE, buyer_name=MARKERS["buyer"], remark=None)
        assert dep.result_code == "0000", dep
        held = svc.DepositNotice(  # unknown account: held for an operator, with an alert
            token=tok, serial_no="PII-D2", account_no="6217999999999999",
            amount=Decimal("1.00"), occurred_at=when, payer_name=MARKERS["name"],
            payer_account=MARKERS["bank_account"], pay_method="01", house_code=HOUSE,
            buyer_name=MARKERS["buyer"], remark=MARKERS["opinion"])
        assert held.result_code != "0000"
        pos = svc.Authenticate(bank_code=BANK, username="pos-1", password=PASSWORD).token
        ok = svc.PosPaymentVerify(token=pos, terminal_id="POS-001", house_code=HOUSE,
                                  buyer_name=MARKERS["buyer"], amount=Decimal("5000.00"))
        assert ok.result_code == "0000", ok
        paid = svc.PosPayment(token=pos, serial_no="PII-P1", terminal_id="POS-001",
                              house_code=HOUSE, buyer_name=MARKERS["buyer"],
                              amount=Decimal("5000.00"), card_no_masked="622202******0011",
                              occurred_at=when)
        assert paid.result_code == "0000", paid

    def admin(self, manual_case_no: str) -> None:
        stranger = Client(self.url)
        stranger.get("/admin/login")
        failed = stranger.post("/admin/login", {"username": LOGIN_MARKER, "password": "x"})
        assert failed.status_code in (200, 401, 403)
        op = Client(self.url)
        assert op.login("op-pii").status_code == 200
        r = op.post("/admin/manual/mark", {"case_no": manual_case_no, "stage": "accepted",
                                           "opinion": MARKERS["opinion"]})
        assert r.status_code == 200
        # the pages that show them still work: decrypted on read (masked unless revealed)
        page = op.get(f"/admin/cases/{manual_case_no}")
        assert page.status_code == 200 and MARKERS["opinion"] not in page.text
        shown = op.post(f"/admin/cases/{manual_case_no}/reveal")
        assert shown.status_code == 200 and MARKERS["opinion"] in shown.text
        audit = op.get("/admin/audit", params={"actor": "op-pii"})
        assert audit.status_code == 200 and manual_case_no in audit.text


def seed(hub: Hub) -> None:
    with hub.transaction() as s:
        add_login(s, BANK, "icbc-front", PASSWORD)
        add_login(s, BANK, "pos-1", PASSWORD, kind="pos")
        s.add(SupervisedAccount(account_no=ACCOUNT, bank_code=BANK, division="511702",
                                developer_name="达州某房地产开发有限公司", project_name="滨河花园"))
        s.flush()
        s.add(FundHouse(house_code=HOUSE, account_no=ACCOUNT))
    add_operator(hub, "op-pii", ALL_FUNCTIONS)


def test_markers_from_every_inbound_path_are_nowhere_in_plaintext(
        make_config, store_url, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    province, county = ProvinceSim(PROVINCE_SECRET).start(), CountyPeer()
    partners: dict[str, Any] = {"province": {"base_url": province.base_url, "timeout": 5},
                                "bank_icbc_dazhou": {"base_url": "http://127.0.0.1:9",
                                                     "bank_code": BANK, "timeout": 2}}
    for code in SMART_COUNTIES:
        partners[f"county_{code}"] = {"base_url": f"{county.url}/county/{code}",
                                      "division": code, "timeout": 5}
    config = make_config(store_url, partners=partners, scheduler={"enabled": False})
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    url = f"http://127.0.0.1:{port}"
    hub = Hub(load_config(config))
    seed(hub)
    log_path = tmp_path / "serve.log"
    proc = start_hub_process(config, "serve", "--no-scheduler", log=log_path,
                             env={"HUB_LOG_LEVEL": "DEBUG"})
    try:
        wait_until(lambda: _up(url), timeout=60, what="hub.py serve to answer")
        traffic = Traffic(hub, url, province)
        subs = traffic.province_application()
        traffic.county_callbacks(subs["511702"])
        traffic.apply_and_accept()
        traffic.bank_and_pos()
        traffic.admin(subs["511725"])
        # delivered by the served hub's workers: to the county and the province
        wait_until(lambda: county.items(), timeout=30, what="delivery to the county")
        wait_until(lambda: _delivered(hub, "province.status"), timeout=30,
                   what="delivery to the province")
        with hub.transaction() as s:  # every path wrote: the scan below is not vacuous
            assert s.scalar(select(StoredFile.name)) == MARKERS["file_name"]
            opinions = set(s.scalars(select(StageEvent.opinion)))
            assert MARKERS["opinion"] in opinions
            assert MARKERS["operator"] in set(s.scalars(select(StageEvent.operator)))
            assert s.scalars(select(AuditEntry).where(AuditEntry.actor_hash == "op-pii")).all()
        in_files = _scan_files(store_url, load_config(config).files_dir)
        in_tables = scan_tables(store_url, {**MARKERS, "login": LOGIN_MARKER})
    finally:
        stop_process(proc)
        hub.close()
        province.stop()
        county.stop()
    served_log = log_path.read_bytes()
    assert served_log, "the served hub wrote no log output at all"
    assert found_in(served_log, {**MARKERS, "login": LOGIN_MARKER}) == [], served_log[-4000:]
    python_log = "\n".join(_formatted(r) for r in caplog.records
                           if not r.name.startswith(CLIENT_LOGGERS)).encode()
    assert found_in(python_log, {**MARKERS, "login": LOGIN_MARKER}) == []
    assert in_files == []
    assert in_tables == []  # the failed sign-in's user name too (a keyed hash is stored)


def _delivered(hub: Hub, interface: str) -> bool:
    with hub.transaction() as s:
        return bool(s.scalars(select(OutboxMessage.id).where(
            OutboxMessage.interface == interface, OutboxMessage.status == "done")).first())


def _up(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _formatted(record: logging.LogRecord) -> str:
    """A record as the served hub writes it (its formatter: logsafe.SafeFormatter)."""
    return SafeFormatter("%(levelname)s %(name)s: %(message)s").format(record)


def _scan_files(store_url: str, files_dir: Path) -> list[str]:
    """Markers in the SQLite file and its -wal / -shm (while the hub runs) and the files
    directory; PostgreSQL's are scanned by SQL (``scan_tables``)."""
    paths: list[Path] = [p for p in Path(files_dir).rglob("*") if p.is_file()]
    if store_url.startswith("sqlite:///"):
        db = Path(store_url[len("sqlite:///"):])
        paths += [Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm")]
        assert Path(f"{db}-wal").exists(), "the scan must see the WAL of the running hub"
    hits = []
    for p in paths:
        if p.exists():
            hits += [f"{p.name}: {n}" for n in
                     found_in(p.read_bytes(), {**MARKERS, "login": LOGIN_MARKER})]
    return hits
