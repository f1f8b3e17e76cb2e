"""`make run` starts one simulated server per kind of peer on the ports config.yaml names:
two kinds of peer on one port would stop the demo with "Address already in use" (the
departments' receivers and the simulated identity provider once shared 8094)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from tests.support import free_port, start_hub_process, stop_process, wait_until

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


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def test_demo_on_another_port_hands_out_that_port(make_config, sqlite_url, tmp_path):
    """``make run PORT=x``: the config says 8080-style port A, the demo listens on B; the
    hub's own URLs (the bank WSDL's service address the simulated bank posts to) say B."""
    config = make_config(sqlite_url)
    raw = yaml.safe_load(config.read_text())
    configured = raw["listen"]["port"]
    raw["public_url"] = f"http://127.0.0.1:{configured}"
    for partner in raw["partners"].values():  # no simulated peer on the tests' dead port
        partner["base_url"] = partner["base_url"].replace("127.0.0.1", "192.0.2.1")
    config.write_text(yaml.safe_dump(raw, allow_unicode=True))
    port = free_port()
    log = tmp_path / "demo.log"
    proc = start_hub_process(config, "demo", "--port", str(port), "--every", "0", log=log)
    try:
        status, wsdl = wait_until(lambda: (r := _get(f"http://127.0.0.1:{port}/soap/fund?wsdl"))[0]
                                  and r, timeout=30, what="the demo hub")
        assert status == 200, wsdl
        assert f'location="http://127.0.0.1:{port}/soap/fund"' in wsdl
        assert f":{configured}" not in wsdl
        assert _get(f"http://127.0.0.1:{configured}/healthz")[0] == 0  # nothing on the old one
    finally:
        stop_process(proc)
    text = log.read_text()
    assert f"http://127.0.0.1:{port}/admin/" in text, text
    assert f":{configured}" not in text, text
