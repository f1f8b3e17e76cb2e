"""The loopback peer, noting when each message arrives (``time.time()`` by its
``X-Message-Id``): ``GET /_arrivals``. Run as its own process by ``bench/delivery.py``."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from adapters.sim import loopback  # noqa: E402

ARRIVALS: dict[str, float] = {}
LOCK = threading.Lock()


class ClockHandler(loopback._Handler):
    def do_POST(self) -> None:  # noqa: N802
        at = time.time()
        if self.path == "/_reset":
            with LOCK:
                ARRIVALS.clear()
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._answer(200, {"code": "0000", "message": "ok"})
            return
        mid = self.headers.get("X-Message-Id")
        if mid:
            with LOCK:
                ARRIVALS.setdefault(mid, at)
        super().do_POST()

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/_arrivals":
            with LOCK:
                body = dict(ARRIVALS)
            self._answer(200, {"arrivals": body})
        else:
            super().do_GET()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    server = loopback.LoopbackServer("127.0.0.1", args.port)
    server.RequestHandlerClass = ClockHandler
    server.serve_forever()


if __name__ == "__main__":
    main()
