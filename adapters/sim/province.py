"""A simulated provincial platform (省厅平台): a real HTTP server and a signing client.

The server receives the hub's pushes — ``POST {base}/status``, ``/results`` and
``/review-link`` (answered with a url) — checks each signature (the hub signs under
``cityhub_<city>`` with the province's secret), refuses replayed nonces, and records
what it got. Its behaviour can be switched while it runs: ``ok``, ``fail`` (HTTP 503),
``reject`` (code 2002: the hub must still retry), ``slow`` (wait ``delay`` s first).

The client signs its calls to the hub as the province does (app id ``province``).

    python -m adapters.sim.province --port 8091 --hub-app-id cityhub_511700
    (the secret comes from HUB_SECRET_PROVINCE or --secret)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import urllib3

from adapters.signing import SignatureError, check_signature, signed_headers
from adapters.sim.loopback import POLL, send_json

OPERATIONS = ("status", "results", "review-link")


@dataclass
class Push:
    operation: str
    app_id: str | None
    message_id: str | None
    body: Any


@dataclass
class ProvinceState:
    mode: str = "ok"
    delay: float = 0.0
    received: list[Push] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    nonces: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pushes(self, operation: str | None = None) -> list[Push]:
        with self.lock:
            return [p for p in self.received if operation in (None, p.operation)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProvinceSim

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        send_json(self, status, body)

    def do_GET(self) -> None:  # noqa: N802
        sim = self.server
        if urlsplit(self.path).path == "/portal" and sim.portal_hub_url:
            from adapters.sim.portal import portal_page

            body = portal_page(sim.secret, sim.portal_hub_url, sim.hub_app_id,
                               sim.portal_county).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/_received":
            pushes = [p.__dict__ for p in self.server.state.pushes()]
            self._answer(200, {"received": pushes})
        else:
            self._answer(404, {"code": "4001", "message": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        sim, state = self.server, self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        operation = path.rstrip("/").rsplit("/", 1)[-1]
        if not path.startswith(sim.prefix + "/") or operation not in OPERATIONS:
            self._answer(404, {"code": "4001", "message": "no such endpoint"})
            return
        try:
            app_id, nonce = check_signature(
                self.headers, "POST", path, raw,
                lambda a: sim.secret if a == sim.hub_app_id else None, now=time.time())
        except SignatureError as exc:
            with state.lock:
                state.refused.append({"path": path, "code": exc.code, "reason": exc.message})
            self._answer(401, {"code": exc.code, "message": exc.message})
            return
        with state.lock:
            replay = (app_id, nonce) in state.nonces
            state.nonces.add((app_id, nonce))
        if replay:
            self._answer(401, {"code": "1003", "message": "nonce replayed"})
            return
        mode = state.mode
        if mode == "slow":
            time.sleep(state.delay)
        if mode == "fail":
            self._answer(503, {"code": "5000", "message": "province unavailable"})
            return
        if mode == "reject":
            self._answer(400, {"code": "2002", "message": "refused by the province"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._answer(400, {"code": "2001", "message": "not JSON"})
            return
        with state.lock:
            state.received.append(Push(operation, app_id, self.headers.get("X-Message-Id"), body))
        data: dict[str, Any] = {}
        if operation == "review-link":
            apply_no = body.get("apply_no") if isinstance(body, dict) else None
            data = {"url": f"https://review.example.gov.cn/r/{apply_no}/{uuid.uuid4().hex[:8]}"}
        self._answer(200, {"code": "0000", "message": "ok", "data": data})


class ProvinceSim(ThreadingHTTPServer):
    """The provincial platform's receiving side; ``url`` + ``/province`` is its base URL."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, secret: bytes, hub_app_id: str = "cityhub_511700",
                 host: str = "127.0.0.1", port: int = 0, prefix: str = "/province") -> None:
        super().__init__((host, port), _Handler)
        self.secret = secret
        self.hub_app_id = hub_app_id
        self.prefix = prefix
        self.state = ProvinceState()
        #: The hub the portal page (``GET /portal``) hands applicants over to; None: no portal.
        self.portal_hub_url: str | None = None
        self.portal_county = "511702"
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.url + self.prefix

    def start(self) -> ProvinceSim:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, kwargs=POLL,
                                        name="province-sim")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    raw: bytes


class ProvinceClient:
    """Calls the hub as the province does: every request signed (app id ``province``)."""

    def __init__(self, hub_url: str, secret: bytes, app_id: str = "province",
                 timeout: float = 30.0) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.secret = secret
        self.app_id = app_id
        self.timeout = timeout
        self.pool = urllib3.PoolManager(maxsize=64, block=False, retries=False)

    def request(self, method: str, path: str, body: bytes = b"", *,
                content_type: str = "application/json; charset=utf-8",
                headers: dict[str, str] | None = None, sign: bool = True,
                secret: bytes | None = None, app_id: str | None = None,
                now: float | None = None, nonce: str | None = None) -> Answer:
        """One request; ``headers`` override the signed ones (to test refusals)."""
        url = path if path.startswith("http") else self.hub_url + path
        all_headers = {"Content-Type": content_type} if body or method != "GET" else {}
        if sign:
            all_headers.update(signed_headers(app_id or self.app_id, secret or self.secret,
                                              method, urlsplit(url).path, body, now=now,
                                              nonce=nonce))
        all_headers.update(headers or {})
        resp = self.pool.request(method, url, body=body or None, headers=all_headers,
                                 timeout=self.timeout)
        raw = resp.data
        try:
            parsed: Any = json.loads(raw) if "json" in (resp.headers.get("Content-Type") or "") \
                else None
        except ValueError:
            parsed = None
        return Answer(resp.status, parsed, dict(resp.headers), raw)

    def submit(self, item: str, body: dict[str, Any] | bytes, **kw: Any) -> Answer:
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        return self.request("POST", f"/api/province/v1/{item}", raw, **kw)

    def upload(self, apply_no: str | None, county_code: str | None, filename: str,
               data: bytes | None, **kw: Any) -> Answer:
        fields: dict[str, Any] = {}
        if apply_no is not None:
            fields["apply_no"] = apply_no
        if county_code is not None:
            fields["county_code"] = county_code
        if data is not None:
            fields["file"] = (filename, data, "application/octet-stream")
        body, content_type = urllib3.encode_multipart_formdata(fields)
        return self.request("POST", "/api/province/v1/materials", body,
                            content_type=content_type, **kw)

    def fetch(self, url: str, **kw: Any) -> Answer:
        return self.request("GET", url, b"", **kw)

    def close(self) -> None:
        self.pool.clear()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8091)
    p.add_argument("--hub-app-id", default="cityhub_511700")
    p.add_argument("--secret", default=os.environ.get("HUB_SECRET_PROVINCE"))
    args = p.parse_args()
    if not args.secret:
        p.error("give --secret or set HUB_SECRET_PROVINCE (the province's shared secret)")
    server = ProvinceSim(args.secret.encode(), args.hub_app_id, args.host, args.port)
    print(f"simulated province on {server.base_url} (expects {args.hub_app_id})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
