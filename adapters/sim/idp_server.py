"""A Flask app of a simulated peer on loopback under waitress (the simulated identity
providers use it; tests and ``hub.py demo`` start them)."""

from __future__ import annotations

import threading
from typing import Any

from waitress import wasyncore
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
        stop_waitress(self.server, self._thread)


def stop_waitress(server: Any, thread: threading.Thread | None) -> None:
    """Stop a waitress ``server`` whose loop runs in ``thread``: every socket is closed in
    the loop's own thread (closing them from here, mid-``select``, made the loop die with
    "Bad file descriptor" and kept it alive on open keep-alive channels until the join
    timed out), then the loop ends on its empty map and the task threads finish."""
    if thread is None or not thread.is_alive():
        server.close()
        return
    closed = threading.Event()

    def close_all() -> None:
        wasyncore.close_all(server._map, ignore_all=True)
        closed.set()

    try:
        server.trigger.pull_trigger(close_all)
        closed.wait(5)
    except OSError:  # the trigger's pipe is already gone: close from here after all
        wasyncore.close_all(server._map, ignore_all=True)
    thread.join(timeout=5)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
