"""A loopback peer that records what it receives and answers as the contracts do.

A real HTTP/1.1 server (keep-alive, one thread per connection). Its behaviour can be
switched while it runs, to simulate an outage: ``ok`` answers ``0000``, ``fail``
answers HTTP 503, ``reject`` answers a permanent ``2002``, ``slow`` waits ``delay``
seconds first. Messages are recorded with the hub's ``X-Message-Id`` so a test can see
both loss and duplicates.

    python -m adapters.sim.loopback --port 9000
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: shutdown() waits for serve_forever's next poll (0.5 s by default): a short one makes
#: stop() prompt (the simulators and the tests stop peers often).
POLL: dict[str, Any] = {"poll_interval": 0.05}


@dataclass
class Received:
    path: str
    message_id: str | None
    app_id: str | None
    body: Any


@dataclass
class PeerState:
    mode: str = "ok"
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> Counter[str]:
        with self.lock:
            return Counter(r.message_id for r in self.received if r.message_id)


def send_json(handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
    """Answer a simulated peer's request with ``body`` as UTF-8 JSON (one write)."""
    raw = json.dumps(body, ensure_ascii=False).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json; charset=utf-8")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One buffered write per answer, no Nagle: otherwise keep-alive calls stall on
    # delayed ACKs (~40 ms each) and the peer, not the hub, is what gets measured.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: LoopbackServer

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        send_json(self, status, body)

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state
        if self.path == "/_received":
            with state.lock:
                items = [r.__dict__ for r in state.received]
            self._answer(200, {"received": items})
        else:
            self._answer(404, {"code": "4001", "message": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path == "/_mode":
            cfg = json.loads(raw or b"{}")
            state.mode, state.delay = cfg.get("mode", "ok"), float(cfg.get("delay", 0))
            self._answer(200, {"code": "0000", "message": "ok"})
            return
        mode = state.mode
        if mode == "slow":
            time.sleep(state.delay)
        if mode == "fail":
            self._answer(503, {"code": "5000", "message": "peer unavailable"})
            return
        if mode == "reject":
            self._answer(400, {"code": "2002", "message": "rejected by peer"})
            return
        if mode == "odd":  # a peer's own idea of a code, and a long story
            self._answer(200, {"code": "5" * 17, "message": "busy " * 80_000})
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with state.lock:
            state.received.append(Received(self.path, self.headers.get("X-Message-Id"),
                                            self.headers.get("X-App-Id"), body))
        self._answer(200, {"code": "0000", "message": "ok", "data": {}})


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.state = PeerState()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, kwargs=POLL,
                                        name="loopback-peer")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    args = p.parse_args()
    server = LoopbackServer(args.host, args.port)
    print(f"loopback peer on {server.url}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
