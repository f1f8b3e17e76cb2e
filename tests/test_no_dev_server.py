"""The suite exercises the servers production runs: no test serves the hub with werkzeug's
development server (werkzeug's make_server, also behind adapters.sim.bank.ServerThread) or
calls the app in-process: the hub's app is built only by tests/hubserver.HubServer
(waitress, as `hub.py serve`); simulated peers may run on anything."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DEV_SERVER = re.compile(r"\bmake_server\b|\.test_client\(|\brun_simple\b|werkzeug\.serving"
                        r"|\.test_request_context\(|\bServerThread\(")
#: The hub's app is built for a test only in hubserver.py (HubServer, under waitress).
APP_BUILT = re.compile(r"\bmake_app\(")


def test_no_test_runs_on_the_development_server():
    found = [f"{path.name}:{n}: {line.strip()}"
             for path in sorted(TESTS.rglob("*.py")) if path.name != Path(__file__).name
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if DEV_SERVER.search(line)
             or (APP_BUILT.search(line) and path.name != "hubserver.py")]
    assert found == []
