"""Simulated departments of the data-sharing gateway (contracts/departments.md), for the
tests, the benchmark and ``make run``: real servers and signing clients.

``DepartmentSim`` is the receiving side of the tax bureau and the housing-fund centre:
``POST {base}/{app_id}/contracts``, each push's signature checked (the hub signs under
``cityhub_<city>`` with that department's secret), replays refused, pushes recorded.
``DepartmentClient`` calls the hub as a department does — a bank's credit system asking
for a buyer's contracts and housing count, the police, the court pushing its list of
失信被执行人 and its seizures — every call signed under the department's own app id,
with ``X-Operator-Id`` and a percent-encoded ``X-Purpose``.

    python -m adapters.sim.departments --port 8095 --secrets var/secrets.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3

from adapters.signing import SignatureError, check_signature, signed_headers
from adapters.sim.loopback import send_json

RECEIVERS = ("tax", "fund")


@dataclass
class Received:
    app_id: str  # the department that received it (tax, fund)
    signer: str | None
    message_id: str | None
    body: Any


@dataclass
class DepartmentState:
    mode: str = "ok"  # ok | fail
    received: list[Received] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    nonces: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, app_id: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.app_id == app_id]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DepartmentSim

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        sim, state = self.server, self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in sim.secrets or parts[1] != "contracts":
            send_json(self, 404, {"code": "4001", "message": "no such endpoint"})
            return
        app_id = parts[0]
        try:
            signer, nonce = check_signature(
                self.headers, "POST", path, raw,
                lambda a: sim.secrets[app_id] if a == sim.hub_app_id else None, now=time.time())
        except SignatureError as exc:
            with state.lock:
                state.refused.append({"path": path, "code": exc.code})
            send_json(self, 401, {"code": exc.code, "message": exc.message})
            return
        with state.lock:
            replay = (signer, nonce) in state.nonces
            state.nonces.add((signer, nonce))
        if replay:
            send_json(self, 401, {"code": "1003", "message": "nonce replayed"})
            return
        if state.mode == "fail":
            send_json(self, 503, {"code": "5000", "message": "department unavailable"})
            return
        with state.lock:
            state.received.append(Received(app_id, signer, self.headers.get("X-Message-Id"),
                                           json.loads(raw or b"null")))
        send_json(self, 200, {"code": "0000", "message": "ok", "data": {}})


class DepartmentSim(ThreadingHTTPServer):
    """The tax bureau's and the fund centre's receivers; ``base(app_id)`` is each one's
    base URL for the hub's config (``HUB_PARTNER_TAX_URL``)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, secrets: dict[str, bytes], hub_app_id: str = "cityhub_511700",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.secrets = secrets
        self.hub_app_id = hub_app_id
        self.state = DepartmentState()

    def base(self, app_id: str) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/{app_id}"

    def start(self) -> DepartmentSim:
        threading.Thread(target=self.serve_forever, daemon=True, name="departments-sim").start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class Answer:
    status: int
    body: Any


class DepartmentClient:
    """A department calling the hub (a bank's credit system, the police, the court)."""

    def __init__(self, hub_url: str, app_id: str, secret: bytes, timeout: float = 15) -> None:
        self.hub_url, self.app_id, self.secret = hub_url.rstrip("/"), app_id, secret
        self.timeout = timeout
        self.pool = urllib3.PoolManager(maxsize=16, block=False, retries=False)

    def call(self, name: str, body: Any, *, operator: str | None = "op-001",
             purpose: str | None = "个人住房贷款审批",
             headers: dict[str, str] | None = None) -> Answer:
        path = f"/api/share/v1/{name}"
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        all_headers = {"Content-Type": "application/json; charset=utf-8",
                       **signed_headers(self.app_id, self.secret, "POST", path, raw)}
        if operator is not None:
            all_headers["X-Operator-Id"] = operator
        if purpose is not None:
            all_headers["X-Purpose"] = quote(purpose, safe="")
        all_headers.update(headers or {})
        resp = self.pool.request("POST", self.hub_url + path, body=raw, headers=all_headers,
                                 timeout=self.timeout)
        try:
            parsed = json.loads(resp.data)
        except ValueError:
            parsed = None
        return Answer(resp.status, parsed)

    # what each simulated department does
    def contracts(self, id_no: str, **kw: Any) -> Answer:
        return self.call("contracts", {"id_no": id_no}, **kw)

    def housing_count(self, id_no: str, **kw: Any) -> Answer:
        return self.call("housing_count", {"id_no": id_no}, **kw)

    def list_defaulter(self, id_no: str, name: str, case_no: str, court: str,
                       removed_at: str | None = None) -> Answer:
        return self.call("defaulters", {"entries": [{
            "id_no": id_no, "name": name, "case_no": case_no, "court": court,
            "listed_at": "2026-11-01", "removed_at": removed_at}]})

    def seize(self, seizure_no: str, house_id: str, court: str, document_no: str,
              released_at: str | None = None) -> Answer:
        return self.call("seizures", {"seizure_no": seizure_no, "house_id": house_id,
                                      "court": court, "document_no": document_no,
                                      "from": "2026-11-01", "to": None,
                                      "released_at": released_at})

    def close(self) -> None:
        self.pool.clear()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8095)
    p.add_argument("--hub-app-id", default="cityhub_511700")
    p.add_argument("--secrets", default="var/secrets.json",
                   help="the hub's local secrets file (HUB_SECRET_TAX / _FUND win)")
    args = p.parse_args()
    stored: dict[str, str] = {}
    if Path(args.secrets).exists():
        stored = json.loads(Path(args.secrets).read_text(encoding="utf-8")).get("partners", {})
    secrets = {a: (os.environ.get(f"HUB_SECRET_{a.upper()}") or stored.get(a) or "").encode()
               for a in RECEIVERS}
    secrets = {a: s for a, s in secrets.items() if s}
    server = DepartmentSim(secrets, args.hub_app_id, args.host, args.port)
    print(f"simulated departments {', '.join(secrets)} on {server.base('')}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
