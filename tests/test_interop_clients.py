"""Other SOAP stacks generate a client from the running hub's WSDL and call it: node-soap
(npm ``soap``) and PHP's ``SoapClient`` (php-soap), each Authenticate then DepositNotice
with the declared ``AuthToken`` header. A stack that is not installed is skipped with
the reason printed (``.ci/run`` installs both)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_bank_fixtures import ACC_SMART, BANK, HOUSE, PASSWORD

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
CLIENTS = Path(__file__).parent / "clients"
#: where ``npm install soap`` ran (its node_modules/soap)
NODE_SOAP_DIR = Path(os.environ.get("HUB_NODE_SOAP_DIR", "/tmp/nodesoap"))


def _skip(reason: str) -> None:
    print(f"SKIPPED: {reason}")
    pytest.skip(reason)


def _node() -> list[str]:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        _skip("node is not installed (apt-get install -y nodejs npm)")
    if not (NODE_SOAP_DIR / "node_modules" / "soap" / "package.json").exists():
        _skip(f"the npm package soap is not installed in {NODE_SOAP_DIR} "
              f"(cd {NODE_SOAP_DIR} && npm install soap), or set HUB_NODE_SOAP_DIR")
    return [node, str(CLIENTS / "fund_smoke.js")]


def _php() -> list[str]:
    php = shutil.which("php")
    if php is None:
        _skip("php is not installed (apt-get install -y php-cli php-soap)")
    modules = subprocess.run([php, "-m"], capture_output=True, text=True, timeout=30).stdout
    if "soap" not in modules.lower().split():
        _skip("PHP's soap extension is not installed (apt-get install -y php-soap)")
    return [php, str(CLIENTS / "fund_smoke.php")]


def _run(command: list[str], fund, serial: str) -> dict:
    env = {**os.environ, "NODE_PATH": str(NODE_SOAP_DIR / "node_modules")}
    proc = subprocess.run(
        [*command, fund.url + "?wsdl", BANK, "icbc-front", PASSWORD, ACC_SMART, HOUSE, serial],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stack", ["node-soap", "php-soapclient"])
def test_generated_client_authenticates_and_sends_a_deposit(fund, stack):
    command = _node() if stack == "node-soap" else _php()
    answer = _run(command, fund, f"{stack}-1")
    assert answer["authenticate"] == "0000" and answer["token"] is True, answer
    assert answer["deposit"] == "0000" and answer["message"] == "booked", answer
    assert answer["header_sent"] is True and answer["token_in_body"] is False, answer
    if stack == "node-soap":
        assert answer["endpoint"] == fund.hub.config.public_url + "/soap/fund"
    [row] = fund.ledger()
    assert (row.serial_no, row.amount_fen, row.house_code) == (f"{stack}-1", 12345, HOUSE)
