"""`make run` starts one simulated server per kind of peer on the ports config.yaml names:
two kinds of peer on one port would stop the demo with "Address already in use" (the
departments' receivers and the simulated identity provider once shared 8094)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


def _kind(app_id: str, partner: dict) -> str:
    """Which simulated server answers a partner in the demo (adapters/sim/demo.py)."""
    if app_id.startswith("county_"):
        return "county"  # one CountySim serves every county
    if partner.get("department") in ("tax", "fund"):
        return "departments"  # one DepartmentSim receives for both
    return app_id


def test_each_simulated_server_of_the_demo_has_its_own_port():
    raw = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    kinds_by_port: dict[int, set[str]] = {}
    for app_id, partner in (raw.get("partners") or {}).items():
        url = (partner or {}).get("base_url")
        if url and urlsplit(url).hostname == "127.0.0.1":
            kinds_by_port.setdefault(urlsplit(url).port, set()).add(_kind(app_id, partner))
    issuer = ((raw.get("identity") or {}).get("oidc") or {}).get("issuer")
    if issuer:
        kinds_by_port.setdefault(urlsplit(issuer).port, set()).add("identity provider")
    kinds_by_port.setdefault(int(raw.get("listen", {}).get("port", 8080)), set()).add("hub")
    assert len(kinds_by_port) > 3, kinds_by_port  # the test reads the demo's peers
    shared = {port: kinds for port, kinds in kinds_by_port.items() if len(kinds) > 1}
    assert shared == {}
