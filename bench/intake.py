"""Accepted applications per second through the real WSGI server, against a baseline.

Starts gunicorn (2 gthread workers; BENCH_WORKER=sync, BENCH_THREADS=N to vary) twice
in the same run: once on the hub
(``hub:create_app()``, a temporary config and SQLite store), once on a bare Flask
endpoint that only parses the same JSON. The same client (threads, keep-alive, requests
signed before the clock starts) sends each server the same number of distinct
``rental_filing`` applications. Prints both rates and their ratio (target >= 0.40).

    /tmp/v/bin/python bench/intake.py [--requests 2000] [--clients 16]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import urllib3
import yaml
from flask import Flask, jsonify, request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.signing import signed_headers  # noqa: E402
from store.crypto import new_master_key  # noqa: E402
from store.db import Database  # noqa: E402

SECRET = "bench-province-secret-0123456789"
PATH = "/api/province/v1/rental_filing"

# ---------------------------------------------------------------------- the baseline app

bare_app = Flask("bare")


@bare_app.post(PATH)
def bare_endpoint():  # type: ignore[no-untyped-def]
    doc = json.loads(request.get_data())
    return jsonify({"code": "0000", "message": "ok", "data": {"apply_no": doc.get("apply_no")}})


# ---------------------------------------------------------------------- set-up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(directory: Path) -> Path:
    url = f"sqlite:///{directory / 'hub.db'}"
    db = Database(url)
    db.migrate()
    db.dispose()
    (directory / "secrets.json").write_text(json.dumps(
        {"data_key": new_master_key(), "partners": {"province": SECRET}}))
    dead = "http://127.0.0.1:9"
    partners = {"province": {"base_url": f"{dead}/province"}}
    for code in ("511702", "511703", "511722", "511724", "511781"):
        partners[f"county_{code}"] = {"base_url": f"{dead}/county/{code}", "division": code}
    config = {
        "city": "511700", "database_url": url, "secrets_file": str(directory / "secrets.json"),
        "routing_table": str(ROOT / "routes/tables/dazhou.yaml"),
        "files_dir": str(directory / "files"), "partners": partners, "inbound": ["province"],
        "scheduler": {"enabled": False},
        "retry_policies": {"query": {"max_attempts": 5, "min_backoff": 2, "max_backoff": 60},
                           "province": {"max_attempts": 20}},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def start_gunicorn(app: str, port: int, env: dict[str, str], log: Any
                   ) -> subprocess.Popen[bytes]:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    proc = subprocess.Popen(
        [gunicorn, "-w", "2", "-k", os.environ.get("BENCH_WORKER", "gthread"),
         "--threads", os.environ.get("BENCH_THREADS", "4"), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", app],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn {app} exited; see {log.name}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gunicorn {app} did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------- the client


def body(run: str, n: int) -> bytes:
    return json.dumps({
        "apply_no": f"bench-{run}-{n:07d}", "city_code": "511700",
        "county_codes": ["511702"],
        "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X",
                      "uscc": None, "phone": "13800138000"},
        "submitted_at": "2026-11-22T10:00:00+08:00",
        "data": {"lessee_name": "李四", "lessee_id_no": "11010519491231002X",
                 "lessor_name": "王五", "lessor_id_no": "110105198001011238",
                 "house_id": f"H-{n}", "address": "通川区朝阳路1号"},
        "materials": [],
    }, ensure_ascii=False).encode()


def prepared(run: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for n in range(count):
        raw = body(run, n)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        headers.update(signed_headers("province", SECRET.encode(), "POST", PATH, raw))
        out.append((raw, headers))
    return out


def drive(port: int, requests: list[tuple[bytes, dict[str, str]]], clients: int
          ) -> tuple[float, int, dict[str, int]]:
    """Send all requests with ``clients`` keep-alive threads; (seconds, ok, codes)."""
    work: queue.SimpleQueue[tuple[bytes, dict[str, str]] | None] = queue.SimpleQueue()
    for r in requests:
        work.put(r)
    for _ in range(clients):
        work.put(None)
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def client() -> None:
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)
        local: dict[str, int] = {}
        while (item := work.get()) is not None:
            raw, headers = item
            resp = pool.urlopen("POST", PATH, body=raw, headers=headers, timeout=60)
            code = json.loads(resp.data).get("code", str(resp.status))
            local[code] = local.get(code, 0) + 1
        with lock:
            for k, v in local.items():
                codes[k] = codes.get(k, 0) + v

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, codes.get("0000", 0), codes


def measure(name: str, app: str, env: dict[str, str], count: int, clients: int) -> float:
    port = free_port()
    log = open(Path(env["HUB_CONFIG"]).parent / f"{name.replace(' ', '_')}.log", "ab")  # noqa: SIM115
    proc = start_gunicorn(app, port, env, log)
    try:
        run = name.replace(" ", "_")
        drive(port, prepared(f"{run}-warm", 50), clients)
        seconds, ok, codes = drive(port, prepared(run, count), clients)
    finally:
        stop(proc)
        log.close()
    if ok != count:
        raise SystemExit(f"{name}: only {ok} of {count} accepted: {codes}")
    rate = count / seconds
    print(f"{name:>10}: {count} requests in {seconds:6.2f} s = {rate:8.1f} accepted/s")
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="cityhub-bench-") as tmp:
        config = write_config(Path(tmp))
        env = {"HUB_CONFIG": str(config), "HUB_LOG_LEVEL": "WARNING"}
        print(f"gunicorn, 2 gthread workers; {args.clients} keep-alive client threads; "
              f"SQLite store in {tmp}")
        bare = measure("bare flask", "bench.intake:bare_app", env, args.requests, args.clients)
        hub = measure("hub intake", "hub:create_app()", env, args.requests, args.clients)
    print(f"     ratio: {hub / bare:.2f} of the bare endpoint (target >= 0.40)")


if __name__ == "__main__":
    main()
