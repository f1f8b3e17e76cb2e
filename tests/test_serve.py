"""`hub.py serve` as an operator starts it: health, delivery and the scheduler lease."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import urllib.request

import yaml

from hub import Hub, load_config
from store.crypto import new_master_key
from store.outbox import NewMessage
from tests.support import (
    ROOT,
    hub_command,
    start_hub_process,
    stop_process,
    wait_until,
)
from tests.test_delivery_processes import PATIENT


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())
    except OSError:
        return 0, {}


def test_serve_reports_health_and_delivers(make_config, store_url, peer, tmp_path):
    config = make_config(store_url, partners={"peer0": {"base_url": peer.url}}, inbound=[])
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    hub = Hub(load_config(config))
    proc = start_hub_process(config, "serve", log=tmp_path / "serve.log")
    try:
        status, body = wait_until(
            lambda: (r := get_json(f"http://127.0.0.1:{port}/healthz"))[0] and r,
            timeout=30, what="the hub to answer /healthz")
        assert status == 200
        assert body["status"] == "ok" and body["city"] == "511700"
        assert body["store"]["ok"] is True and body["store"]["dialect"] in ("sqlite", "postgresql")
        assert body["scheduler"]["running"] is True and body["scheduler"]["leader"] is True
        assert {j["id"] for j in body["scheduler"]["jobs"]} >= {"lease", "recover-leases",
                                                                 "housekeeping"}
        assert body["delivery_threads"] == 4
        with hub.transaction() as s:
            mid = hub.enqueue(s, NewMessage(interface="loopback.post", adapter="http",
                                            partner="peer0", operation="msg", payload={"a": 1},
                                            policy=PATIENT, timeout=5))
        wait_until(lambda: str(mid) in peer.state.ids(), what="delivery by the served hub")
        wait_until(lambda: get_json(f"http://127.0.0.1:{port}/healthz")[1]["store"]["outbox"]
                   .get("done") == 1, what="/healthz to count the delivered message")
        # a second process does not take the scheduler while the first holds the lease
        other = Hub(load_config(config))
        other.start_scheduler()
        try:
            assert other.scheduler.state()["leader"] is False
        finally:
            other.close()
    finally:
        stop_process(proc)
        hub.close()
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()


def test_unknown_path_answers_the_contract_envelope(make_config, store_url, tmp_path):
    config = make_config(store_url, inbound=[])
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    proc = start_hub_process(config, "serve", "--no-workers", "--no-scheduler")
    try:
        wait_until(lambda: get_json(f"http://127.0.0.1:{port}/healthz")[0], timeout=30,
                   what="the hub")
        status, body = get_json(f"http://127.0.0.1:{port}/no/such/thing")
        assert status == 404 and body["code"] == "4001"
        # a browser opening the hub's address is sent to the operators' page
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 302 and resp.getheader("Location", "").endswith("/admin/")
        conn.close()
    finally:
        stop_process(proc)


def test_secrets_come_from_the_environment_before_the_file(make_config, sqlite_url):
    config = make_config(sqlite_url, partners={"peer0": {"base_url": "http://x"}})
    env = {"HUB_SECRET_PEER0": "from-the-environment", "HUB_PARTNER_PEER0_URL": "http://y:1",
           "HUB_DATA_KEY": new_master_key()}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        hub = Hub(load_config(config))
        assert hub.partner("peer0").secret == b"from-the-environment"
        assert hub.partner("peer0").base_url == "http://y:1"
        assert hub.partner("province").secret == b"secret-province-0123456789"  # from the file
        hub.close()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_init_secrets_creates_a_private_file_once(make_config, sqlite_url, tmp_path):
    config = make_config(sqlite_url)
    data = yaml.safe_load(config.read_text())
    data["secrets_file"] = str(tmp_path / "new" / "secrets.json")
    config.write_text(yaml.safe_dump(data))
    run = lambda: subprocess.run(hub_command(config, "init-secrets"), cwd=ROOT,  # noqa: E731
                                 capture_output=True, text=True, timeout=60)
    assert run().returncode == 0
    path = tmp_path / "new" / "secrets.json"
    first = json.loads(path.read_text())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert set(first["partners"]) >= {"province", "county_511702"}
    assert run().returncode == 0
    assert json.loads(path.read_text()) == first  # never regenerated over existing secrets


def test_serve_on_a_taken_port_says_so_in_one_line(make_config, store_url):
    """Another program holds the configured port: ``hub.py serve`` answers one Chinese
    line naming the address and what to do, exit 2, no traceback, nothing started."""
    import socket

    config = make_config(store_url, inbound=[])
    Hub(load_config(config)).close()  # the store is ready: only the port is wrong
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run(hub_command(config, "serve"), cwd=ROOT, capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "HUB_LOG_LEVEL": "WARNING"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"错误：无法监听 http://127.0.0.1:{port}：端口已被占用；请在配置的 listen（或 "
        "--host/--port）换一个地址或端口，或先停止占用它的程序")
    assert "已启动" not in done.stdout
