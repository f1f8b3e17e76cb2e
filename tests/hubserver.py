"""A hub's Flask app served by a real threaded WSGI server on 127.0.0.1, and a small
county peer that answers queries with data (the province tests' other side)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from adapters.sim.idp_server import stop_waitress
from adapters.sim.loopback import POLL, send_json
from adapters.web import make_app


class HubServer:
    """``make_app(hub)`` under the production server (waitress, as ``hub.py serve`` builds
    it: ``hub.make_http_server``), in a daemon thread."""

    def __init__(self, hub: Any) -> None:
        from hub import make_http_server

        self.hub = hub
        self.app = make_app(hub)
        try:  # on its configured port, so the URLs it hands out (public_url) reach it
            self.server = make_http_server(hub, self.app, "127.0.0.1", hub.config.port)
        except OSError:  # that port is taken (a second server for one hub): any port
            self.server = make_http_server(hub, self.app, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="hub-http")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.effective_port}"

    def start(self) -> HubServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        stop_waitress(self.server, self.thread)


@dataclass
class CountyState:
    #: The ``data`` answered per item (others get ``{}``).
    answers: dict[str, Any] = field(default_factory=dict)
    mode: str = "ok"  # ok | fail | slow
    delay: float = 0.0
    received: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _CountyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountyPeer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        state = self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if state.mode == "slow":
            time.sleep(state.delay)
        with state.lock:
            state.received.append((self.path, json.loads(raw or b"null"), dict(self.headers)))
        if state.mode == "fail":
            status, body = 503, {"code": "5000", "message": "down"}
        else:
            item = self.path.rstrip("/").rsplit("/", 1)[-1]
            status, body = 200, {"code": "0000", "message": "ok",
                                 "data": state.answers.get(item, {})}
        with contextlib.suppress(OSError):  # the hub gave up waiting
            send_json(self, status, body)


class CountyPeer(ThreadingHTTPServer):
    """A county smart platform that records deliveries and answers ``answers[item]``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountyHandler)
        self.state = CountyState()
        threading.Thread(target=self.serve_forever, kwargs=POLL, daemon=True,
                         name="county-peer").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def items(self) -> list[str]:
        with self.state.lock:
            return [p.rstrip("/").rsplit("/", 1)[-1] for p, _, _ in self.state.received]

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


# ---------------------------------------------------------------------- the province's view

PROVINCE_SECRET = b"secret-province-0123456789"  # tests.support.write_config's default
SMART_COUNTIES = ("511702", "511703", "511722", "511724", "511781")


@dataclass
class ProvinceEnv:
    """A hub served over HTTP, the simulated province, a county peer, a signing client."""

    hub: Any
    server: HubServer
    province: Any  # adapters.sim.province.ProvinceSim
    county: CountyPeer
    client: Any  # adapters.sim.province.ProvinceClient

    def drain(self, rounds: int = 50) -> int:
        """Deliver every due outbox message (a real dispatcher, real peers)."""
        from adapters.dispatch import Dispatcher

        d = Dispatcher(self.hub, "test-drain")
        total = 0
        for _ in range(rounds):
            n = d.run_once()
            total += n
            if not n:
                break
        return total

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.province.stop()
        self.county.stop()


def province_env(make_hub: Any, store_url: str, partners: dict[str, Any] | None = None,
                 **config: Any) -> ProvinceEnv:
    from adapters.sim.province import ProvinceClient, ProvinceSim

    province = ProvinceSim(PROVINCE_SECRET).start()
    county = CountyPeer()
    all_partners: dict[str, Any] = {"province": {"base_url": province.base_url, "timeout": 5}}
    for code in SMART_COUNTIES:
        all_partners[f"county_{code}"] = {"base_url": f"{county.url}/county/{code}",
                                          "division": code, "timeout": 5}
    all_partners.update(partners or {})
    config.setdefault("inbound", ["province"])
    hub = make_hub(store_url, partners=all_partners, **config)
    server = HubServer(hub).start()
    return ProvinceEnv(hub, server, province, county, ProvinceClient(server.url, PROVINCE_SECRET))


def application(item: str = "rental_filing", apply_no: str = "510000-20261122-000001",
                counties: tuple[str, ...] = ("511702",), **data: Any) -> dict[str, Any]:
    """A valid request body for ``item`` (override ``data`` fields by keyword)."""
    defaults: dict[str, dict[str, Any]] = {
        "rental_filing": {"lessee_name": "李四", "lessee_id_no": "11010519491231002X",
                          "lessor_name": "王五", "lessor_id_no": "110105198001011238",
                          "house_id": "H-0001", "address": "通川区朝阳路1号"},
        "property_info_query": {},
        "presale_contract_verify": {"contract_no": "YS-2026-0001", "buyer_name": "张三"},
        "filed_property_query": {"cert_no": "川(2026)达州市不动产权第0001号"},
        "maintenance_fund_community_query": {},
        "survey_review": {"enterprise_name": "达州测绘有限公司", "project_name": "滨江花园"},
    }
    body_data = {**defaults.get(item, {}), **data}
    return {
        "apply_no": apply_no, "city_code": "511700", "county_codes": list(counties),
        "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X",
                      "uscc": None, "phone": "13800138000"},
        "submitted_at": "2026-11-22T10:00:00+08:00", "data": body_data, "materials": [],
    }
