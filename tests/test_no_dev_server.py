"""The suite exercises the servers production runs: no test serves the hub with werkzeug's
development server or calls the app in-process (tests/hubserver.HubServer is waitress)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DEV_SERVER = re.compile(r"\bmake_server\b|\.test_client\(|\brun_simple\b|werkzeug\.serving"
                        r"|\.test_request_context\(")


def test_no_test_runs_on_the_development_server():
    found = [f"{path.name}:{n}: {line.strip()}"
             for path in sorted(TESTS.rglob("*.py")) if path.name != Path(__file__).name
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if DEV_SERVER.search(line)]
    assert found == []
