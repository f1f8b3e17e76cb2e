"""A simulated county smart platform (智慧平台) for tests, demos and ``make run``.

A real HTTP server serving every county under ``/county/<code>/<item>``. It checks the
hub's signature (app id ``cityhub_<city>``, the county's secret) and refuses a replayed
nonce; answers the sync queries from its own small data set; takes every other case
and later calls the hub back, signed as ``county_<code>``, with 受理, 审批 and 办结
(a filing number for filing items, a result for ``property_info_query``) after short
configurable delays.

    python -m adapters.sim.county --port 8092 --hub http://127.0.0.1:8080 \
        [--secrets var/secrets.json] [--delay 1.0]

Secrets come from ``HUB_SECRET_COUNTY_<code>`` or the hub's local secrets file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3

from adapters.signing import SignatureError, check_signature, signed_headers
from adapters.sim.loopback import POLL, send_json

CST = timezone(timedelta(hours=8))
EVENTS_PATH = "/api/county/v1/events"
FILING_ITEMS = frozenset({"rental_filing", "presale_contract_filing", "resale_contract_filing"})
SYNC_ITEMS = frozenset({"presale_contract_verify", "filed_property_query",
                        "maintenance_fund_community_query", "presale_scope_query"})
#: An 8x8 JPEG: the "scan" of a property certificate in a simulated result.
CERT_JPEG_B64 = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAEC"
    "AwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2Jy"
    "ggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWW"
    "l5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEA"
    "AwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMi"
    "MoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0"
    "dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn"
    "6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDHooorhPqD/9k="
)

#: The simulator's own small data set (the same in every county).
DATA: dict[str, Any] = {
    "filed_contracts": {"YS2026-0001": "李四", "YS2026-0002": "王五"},
    "properties": [
        {"house_id": "H-0001", "owner_name": "李四", "owner_id_no": "11010519491231002X",
         "cert_no": "川(2026)达州市不动产权第0000001号", "contract_no": "YS2026-0001",
         "address": "达州市通川区朝阳东路1号1单元101", "area": "89.50", "house_type": "住宅",
         "house_nature": "商品房"},
        {"house_id": "H-0002", "owner_name": "王五", "owner_id_no": "510722198001010016",
         "cert_no": "川(2026)达州市不动产权第0000002号", "contract_no": "YS2026-0002",
         "address": "达州市通川区朝阳东路1号1单元102", "area": "120.00", "house_type": "住宅",
         "house_nature": "商品房"},
    ],
    "communities": [
        {"community_id": "C001", "name": "朝阳小区", "address": "达州市通川区朝阳东路1号"},
        {"community_id": "C002", "name": "西外花园", "address": "达州市通川区西外大道8号"},
    ],
    "presale_houses": {
        "凤凰城一期": [
            {"house_id": "P-0101", "address": "凤凰城一期1栋101", "area": "95.20",
             "house_type": "住宅", "house_nature": "商品房"},
            {"house_id": "P-0102", "address": "凤凰城一期1栋102", "area": "110.00",
             "house_type": "住宅", "house_nature": "商品房"},
        ],
    },
}


def now_iso() -> str:
    return datetime.now(CST).isoformat(timespec="seconds")


def sync_answer(item: str, data: dict[str, Any]) -> dict[str, Any]:
    """The answer of a sync query from the simulator's data set."""
    if item == "presale_contract_verify":
        buyer = DATA["filed_contracts"].get(data.get("contract_no"))
        return {"filed": buyer is not None and buyer == data.get("buyer_name")}
    if item == "filed_property_query":
        for p in DATA["properties"]:
            if (data.get("cert_no") and p["cert_no"] == data["cert_no"]) or (
                    data.get("contract_no") and p["contract_no"] == data["contract_no"]):
                return {k: v for k, v in p.items() if k != "contract_no"}
        return {"found": False}
    if item == "maintenance_fund_community_query":
        return {"communities": DATA["communities"]}
    if item == "presale_scope_query":
        return {"houses": DATA["presale_houses"].get(data.get("project_name"), [])}
    raise KeyError(item)


def property_result(case: dict[str, Any]) -> dict[str, Any]:
    """An async result of 房产信息查询 for the applicant: summaries and images (base64)."""
    applicant = case.get("applicant") or {}
    owned = [p for p in DATA["properties"] if p["owner_id_no"] == applicant.get("id_no")]
    return {
        "summaries": [{k: p[k] for k in ("house_id", "cert_no", "address", "area")}
                      for p in owned],
        "images": [{"name": f"{p['house_id']}.jpg", "content_type": "image/jpeg",
                    "base64": CERT_JPEG_B64} for p in owned],
    }


@dataclass
class Received:
    county: str
    item: str
    app_id: str
    body: dict[str, Any]


@dataclass
class Callback:
    county: str
    path: str
    body: dict[str, Any]
    status: int | None = None
    answer: Any = None


@dataclass
class SimConfig:
    hub_url: str
    secrets: dict[str, bytes]  # county code → shared secret
    city: str = "511700"
    delays: tuple[float, float, float] = (0.2, 0.2, 0.2)  # → 受理, → 审批, → 办结
    retries: int = 20
    #: apply_no → "reject": the county refuses that case (不予受理) instead.
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def hub_app_id(self) -> str:
        return f"cityhub_{self.city}"


class CountySim:
    """The simulator: ``start()`` serves it on a port; ``received``/``callbacks`` record."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.received: list[Received] = []
        self.callbacks: list[Callback] = []
        self.lock = threading.Lock()
        self._nonces: dict[str, float] = {}
        self._stop = threading.Event()
        self._pool = urllib3.PoolManager(maxsize=8, retries=False)
        self.server = ThreadingHTTPServer((host, port), _handler(self))
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def county_url(self, code: str) -> str:
        return f"{self.url}/county/{code}"

    def start(self) -> CountySim:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, kwargs=POLL,
                                        name="county-sim")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        for t in self._workers:
            t.join(5)
        self._pool.clear()

    # -- inbound (hub → county)

    def authenticate(self, county: str, headers: Any, path: str, body: bytes) -> str:
        def secret_for(app_id: str) -> bytes | None:
            return self.config.secrets.get(county) if app_id == self.config.hub_app_id else None

        app_id, nonce = check_signature(headers, "POST", path, body, secret_for, time.time())
        with self.lock:
            cutoff = time.time() - 600
            self._nonces = {k: v for k, v in self._nonces.items() if v > cutoff}
            if f"{app_id}:{nonce}" in self._nonces:
                raise SignatureError("1003", "nonce already used")
            self._nonces[f"{app_id}:{nonce}"] = time.time()
        return app_id

    def take(self, county: str, item: str, app_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer one delivered case: a sync query's data, or a receipt (callbacks follow)."""
        with self.lock:
            self.received.append(Received(county, item, app_id, body))
        if item in SYNC_ITEMS:
            return sync_answer(item, body.get("data") or {})
        if item == "fund_supervision":  # a bank's event for the county's supervision desk
            return {"event": body.get("event")}
        worker = threading.Thread(target=self._work, args=(county, item, body), daemon=True)
        with self.lock:
            self._workers.append(worker)
        worker.start()
        return {}  # taken; the stages (and any result) follow by callback

    # -- outbound (county → hub)

    def _work(self, county: str, item: str, case: dict[str, Any]) -> None:
        accept_delay, approve_delay, complete_delay = self.config.delays
        base = {"case_no": case.get("case_no"), "item": item, "county_code": county}
        if self.config.outcomes.get(case.get("apply_no", "")) == "reject":
            steps: list[tuple[float, dict[str, Any]]] = [
                (accept_delay, {"stage": "rejected", "opinion": "材料不全"})]
        else:
            done: dict[str, Any] = {"stage": "completed", "opinion": "办结"}
            if item in FILING_ITEMS:
                done["filing_no"] = f"BA{county}{case.get('case_no', '')[-8:]}"
            if item == "property_info_query":
                done["result"] = property_result(case)
            steps = [(accept_delay, {"stage": "accepted", "opinion": "材料齐全，予以受理"}),
                     (approve_delay, {"stage": "approved", "opinion": "同意"}),
                     (complete_delay, done)]
        for delay, step in steps:
            if self._stop.wait(delay):
                return
            body = {**base, "at": now_iso(), "operator": f"窗口{county[-2:]}",
                    "opinion": None, "filing_no": None, "result": None, **step}
            self.call_hub(county, EVENTS_PATH, body)

    def call_hub(self, county: str, path: str, body: dict[str, Any],
                 app_id: str | None = None, retries: int | None = None) -> Callback:
        """POST a signed call to the hub as ``county_<county>``; retry while it fails."""
        app_id = app_id or f"county_{county}"
        secret = self.config.secrets[county]
        raw = json.dumps(body, ensure_ascii=False).encode()
        url = self.config.hub_url.rstrip("/") + path
        record = Callback(county, path, body)
        for attempt in range((self.config.retries if retries is None else retries) + 1):
            headers = {"Content-Type": "application/json",
                       **signed_headers(app_id, secret, "POST", urlsplit(url).path, raw)}
            try:
                resp = self._pool.request("POST", url, body=raw, headers=headers, timeout=10)
                record.status = resp.status
                record.answer = json.loads(resp.data or b"null")
                if resp.status < 500:
                    break
            except (urllib3.exceptions.HTTPError, ValueError) as exc:
                record.status, record.answer = None, f"{type(exc).__name__}: {exc}"
            if self._stop.wait(min(0.2 * 2 ** attempt, 5)):
                break
        with self.lock:
            self.callbacks.append(record)
        return record


def _handler(sim: CountySim) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, code: str, message: str, data: Any = None) -> None:
            send_json(self, status, {"code": code, "message": message, "data": data or {}})

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/_received":
                with sim.lock:
                    items = [r.__dict__ for r in sim.received]
                    calls = [c.__dict__ for c in sim.callbacks]
                self._answer(200, "0000", "ok", {"received": items, "callbacks": calls})
            else:
                self._answer(404, "4001", "not found")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 3 or parts[0] != "county":
                self._answer(404, "4001", "no such endpoint")
                return
            county, item = parts[1], parts[2]
            if county not in sim.config.secrets:
                self._answer(404, "4001", f"county {county} is not simulated")
                return
            try:
                app_id = sim.authenticate(county, self.headers, self.path, raw)
            except SignatureError as exc:
                self._answer(401, exc.code, exc.message)
                return
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError
            except ValueError:
                self._answer(400, "2001", "the body is not a JSON object")
                return
            if body.get("county_code") != county:
                self._answer(400, "2002", "county_code does not match the URL")
                return
            self._answer(200, "0000", "ok", sim.take(county, item, app_id, body))

    return Handler


# --------------------------------------------------------------------------- command line


def load_secrets(path: Path | None, counties: list[str],
                 getenv: Callable[[str], str | None] = os.environ.get) -> dict[str, bytes]:
    stored: dict[str, str] = {}
    if path is not None and path.exists():
        stored = (json.loads(path.read_text(encoding="utf-8")).get("partners") or {})
    out: dict[str, bytes] = {}
    for code in counties:
        text = getenv(f"HUB_SECRET_COUNTY_{code}") or stored.get(f"county_{code}")
        if text:
            out[code] = text.encode()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8092)
    p.add_argument("--hub", default="http://127.0.0.1:8080", help="the hub's base URL")
    p.add_argument("--city", default="511700")
    p.add_argument("--secrets", default="var/secrets.json", help="the hub's secrets file")
    p.add_argument("--counties", default="511702,511703,511722,511724,511781")
    p.add_argument("--delay", type=float, default=1.0, help="seconds between stages")
    args = p.parse_args(argv)
    counties = [c.strip() for c in args.counties.split(",") if c.strip()]
    secrets = load_secrets(Path(args.secrets), counties)
    missing = sorted(set(counties) - set(secrets))
    if missing:
        print(f"no secret for {', '.join(missing)}: set HUB_SECRET_COUNTY_<code> "
              f"or run `python hub.py init-secrets`")
        return 2
    sim = CountySim(SimConfig(hub_url=args.hub, secrets=secrets, city=args.city,
                              delays=(args.delay,) * 3), args.host, args.port).start()
    print(f"county simulator for {', '.join(counties)} on {sim.url}/county/<code>/<item>",
          flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
