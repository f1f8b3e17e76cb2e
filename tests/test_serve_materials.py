"""A material uploaded and fetched back through the servers production runs, each a real
process: `hub.py serve` (waitress) and gunicorn (`-w 2 --threads 4 'hub:create_app()'`).
The url in the answer (and the WSDL's service address) is built on public_url, never on
the request's Host header."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import urllib3
import yaml

from adapters.sim.province import ProvinceClient
from tests import hostile
from tests.hubserver import PROVINCE_SECRET
from tests.support import ROOT, start_hub_process, stop_process, wait_until

HOSTILE_HOST = "evil.example:666"
MATERIAL = hostile.png(48, 32, noise=True)


def _start(kind: str, config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    if kind == "serve":
        return start_hub_process(config, "serve", "--no-workers", "--no-scheduler", log=log)
    out = open(log, "ab")  # noqa: SIM115 - the process writes to it until stopped
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "--threads", "4",
         "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "hub:create_app()"],
        cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        env={**os.environ, "HUB_CONFIG": str(config), "HUB_LOG_LEVEL": "WARNING"})


def _healthy(url: str) -> bool:
    try:
        return urllib3.request("GET", f"{url}/healthz", timeout=2, retries=False).status == 200
    except urllib3.exceptions.HTTPError:
        return False


@pytest.mark.parametrize("kind", ["serve", "gunicorn"])
def test_signed_upload_and_get_through_the_real_server(kind, make_config, store_url,
                                                       tmp_path):
    config = make_config(store_url, inbound=["province", "bank_soap"])
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    # public_url names the hub otherwise than the address the client dials (a proxy's)
    public = f"http://localhost:{port}"
    data = yaml.safe_load(config.read_text())
    data["public_url"] = public
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    log = tmp_path / f"{kind}.log"
    proc = _start(kind, config, port, log)
    base = f"http://127.0.0.1:{port}"
    client = ProvinceClient(base, PROVINCE_SECRET)
    try:
        wait_until(lambda: proc.poll() is not None or _healthy(base), timeout=60,
                   what=f"{kind} to answer /healthz")
        assert proc.poll() is None, log.read_text()
        fields = {"apply_no": "510000-20261122-000001", "county_code": "511702",
                  "file": ("身份证明.png", MATERIAL, "image/png")}
        body, content_type = urllib3.encode_multipart_formdata(fields)
        ans = client.request("POST", "/api/province/v1/materials", body,
                             content_type=content_type,
                             headers={"Host": HOSTILE_HOST, "X-Forwarded-Host": HOSTILE_HOST})
        assert ans.status == 200 and ans.body["code"] == "0000", ans.body
        url = ans.body["data"]["url"]
        assert url == f"{public}/api/province/v1/materials/{ans.body['data']['file_id']}"
        assert "evil" not in url
        for _ in range(4):  # gunicorn: more than one worker may answer
            got = client.fetch(url)
            assert got.status == 200 and got.raw == MATERIAL
            headers = {k.lower(): v for k, v in got.headers.items()}
            assert headers["content-type"] == "image/png"
            assert headers["x-content-sha256"] == hashlib.sha256(MATERIAL).hexdigest()
        unsigned = client.fetch(url, sign=False)
        assert unsigned.status == 401 and unsigned.body["code"] == "1001"
        # the WSDL's service address too (spyne builds it once: a first hostile Host
        # would otherwise stay in it for every later caller)
        for _ in range(3):
            wsdl = client.request("GET", f"{base}/soap/fund?wsdl", sign=False,
                                  headers={"Host": HOSTILE_HOST})
            assert wsdl.status == 200
            assert re.findall(rb'location="([^"]+)"', wsdl.raw) == [
                f"{public}/soap/fund".encode()]
        truncated, truncated_type = urllib3.encode_multipart_formdata(
            {**fields, "file": ("x.png", MATERIAL[:200], "image/png")})
        refused = client.request("POST", "/api/province/v1/materials", truncated,
                                 content_type=truncated_type)
        assert refused.status == 400 and refused.body["code"] == "2002", refused.body
    finally:
        client.close()
        stop_process(proc)
    assert proc.returncode == 0, log.read_text()
