"""A simulated peer (``hub.py demo``'s identity providers) stops without a traceback.

Its waitress loop used to be closed from another thread mid-``select``: the demo's
Ctrl-C printed "OSError: [Errno 9] Bad file descriptor" from the ``sim-peer`` thread.
"""

from __future__ import annotations

import http.client
import threading

from flask import Flask

from adapters.sim.idp_server import FlaskPeer


def test_a_peer_with_an_open_keep_alive_connection_stops_cleanly(monkeypatch):
    failures: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    app = Flask("peer")
    app.get("/")(lambda: "ok")
    for _ in range(5):
        peer = FlaskPeer(app).start()
        conn = http.client.HTTPConnection("127.0.0.1", peer.server.effective_port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().read() == b"ok"  # the connection stays open (keep-alive)
        peer.stop()
        assert peer._thread is not None and not peer._thread.is_alive()
        conn.close()
    assert [f.exc_value for f in failures] == []
