"""A Flask app of a simulated peer on loopback under waitress (the simulated identity
providers use it; tests and ``hub.py demo`` start them)."""

from __future__ import annotations

import threading
from typing import Any

from waitress.server import create_server


class FlaskPeer:
    """``app`` served on 127.0.0.1 (``port`` 0: any free port) in a daemon thread."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.server = create_server(app, host=host, port=port, threads=4,
                                    ident="sim", clear_untrusted_proxy_headers=True)
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.effective_port}"

    def start(self) -> FlaskPeer:
        self._thread = threading.Thread(target=self.server.run, daemon=True, name="sim-peer")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
