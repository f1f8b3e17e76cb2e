"""Accepted applications per second through the real WSGI server, against a baseline.

Starts gunicorn (2 gthread workers x 8 threads; BENCH_WORKER, BENCH_WORKERS and
BENCH_THREADS vary them, the same for both servers) twice per store: once on the hub
(``hub:create_app()``, a temporary config and store), once on a bare Flask endpoint
that only parses the same JSON. The same client (threads, keep-alive, requests signed
before the clock starts) sends each server the same number of distinct
``rental_filing`` applications, in ``--rounds`` alternating rounds (bare, hub, bare,
hub...) so a change in the machine's load hits both alike. Prints every round (with the
server's CPU time per request, from /proc), the median rates and their ratio (target
>= 0.40), for SQLite and, with ``--postgres URL`` (default: the environment's
HUB_TEST_DATABASE_URL), for PostgreSQL: a scratch database is created on that server
for the run and dropped after it.

    /tmp/v/bin/python bench/intake.py [--requests 2000] [--clients 16] [--rounds 5]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test | --postgres ""]
        [--synchronous NORMAL,FULL]   # SQLite's durability settings side by side
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import urllib3
import yaml
from flask import Flask, jsonify, request

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from adapters.signing import signed_headers  # noqa: E402
from store.crypto import new_master_key  # noqa: E402
from store.db import Database  # noqa: E402

SECRET = "bench-province-secret-0123456789"
THREADS = "8"
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


def write_config(directory: Path, url: str | None = None, synchronous: str | None = None
                 ) -> Path:
    url = url or f"sqlite:///{directory / 'hub.db'}"
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
    if synchronous:
        config["sqlite_synchronous"] = synchronous
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def start_gunicorn(app: str, port: int, env: dict[str, str], log: Any
                   ) -> subprocess.Popen[bytes]:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    proc = subprocess.Popen(
        [gunicorn, "-w", os.environ.get("BENCH_WORKERS", "2"),
         "-k", os.environ.get("BENCH_WORKER", "gthread"),
         "--threads", os.environ.get("BENCH_THREADS", THREADS), "-b", f"127.0.0.1:{port}",
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


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its children so far, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


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


@contextmanager
def scratch_postgres(url: str) -> Iterator[str]:
    """A fresh database on the server of ``url`` for this run, dropped afterwards."""
    server = make_url(url)
    name = f"cityhub_bench_intake_{secrets.token_hex(4)}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def in_place(url: str) -> Iterator[str]:
    """``url``'s own database, its schema dropped and created again (a scratch database
    the caller owns)."""
    from sqlalchemy import text as sql

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sql("DROP SCHEMA public CASCADE"))
        conn.execute(sql("CREATE SCHEMA public"))
    engine.dispose()
    yield url


class Server:
    """One gunicorn under test, kept running across the rounds."""

    def __init__(self, name: str, app: str, env: dict[str, str], clients: int) -> None:
        self.name, self.clients, self.rates = name, clients, []
        self.port = free_port()
        self.log = open(Path(env["HUB_CONFIG"]).parent / f"{name.replace(' ', '_')}.log", "ab")  # noqa: SIM115
        self.proc = start_gunicorn(app, self.port, env, self.log)
        self.run = f"{name.replace(' ', '_')}-{secrets.token_hex(3)}"
        self.round = 0
        drive(self.port, prepared(f"{self.run}-warm", 50), clients)

    def measure(self, count: int) -> float:
        self.round += 1
        requests = prepared(f"{self.run}-{self.round}", count)
        cpu_before = tree_cpu_seconds(self.proc.pid)
        seconds, ok, codes = drive(self.port, requests, self.clients)
        cpu_ms = (tree_cpu_seconds(self.proc.pid) - cpu_before) / count * 1000
        if ok != count:
            raise SystemExit(f"{self.name}: only {ok} of {count} accepted: {codes}")
        rate = count / seconds
        self.rates.append(rate)
        print(f"{self.name:>10}: {count} requests in {seconds:6.2f} s = {rate:8.1f} accepted/s; "
              f"server CPU {cpu_ms:.2f} ms a request", flush=True)
        return rate

    def close(self) -> None:
        stop(self.proc)
        self.log.close()


def bench_store(label: str, directory: Path, url: str | None, args: argparse.Namespace
                ) -> float:
    config = write_config(directory, url)
    env = {"HUB_CONFIG": str(config), "HUB_LOG_LEVEL": "WARNING"}
    print(f"-- {label}: gunicorn, {os.environ.get('BENCH_WORKERS', '2')} "
          f"{os.environ.get('BENCH_WORKER', 'gthread')} workers x "
          f"{os.environ.get('BENCH_THREADS', THREADS)} threads; {args.clients} keep-alive "
          f"client threads; {args.rounds} round(s); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    servers: list[Server] = []
    try:
        servers.append(Server("bare flask", "bench.intake:bare_app", env, args.clients))
        servers.append(Server("hub intake", "hub:create_app()", env, args.clients))
        for _ in range(args.rounds):
            for server in servers:
                server.measure(args.requests)
    finally:
        for server in servers:
            server.close()
    bare, hub = (statistics.median(s.rates) for s in servers)
    ratio = hub / bare
    print(f"{label:>10}: median bare {bare:.1f}/s, hub {hub:.1f}/s; ratio {ratio:.2f} of the "
          f"bare endpoint (target >= 0.40); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return ratio


def bench_synchronous(directory: Path, args: argparse.Namespace) -> None:
    """SQLite with each ``PRAGMA synchronous`` of ``--synchronous``, side by side: one
    store and one hub server per setting, measured in alternating rounds with the bare
    endpoint (bare, hub NORMAL, hub FULL, bare, hub FULL, hub NORMAL, ...)."""
    modes = [m.strip().upper() for m in args.synchronous.split(",") if m.strip()]
    print(f"-- SQLite synchronous {' vs '.join(modes)}; {args.clients} client threads; "
          f"{args.rounds} round(s); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    servers: list[Server] = []
    try:
        for mode in modes:
            sub = directory / mode.lower()
            sub.mkdir()
            env = {"HUB_CONFIG": str(write_config(sub, synchronous=mode)),
                   "HUB_LOG_LEVEL": "WARNING"}
            if not servers:
                servers.append(Server("bare flask", "bench.intake:bare_app", env, args.clients))
            servers.append(Server(f"hub {mode}", "hub:create_app()", env, args.clients))
        for n in range(args.rounds):
            hubs = servers[1:] if n % 2 == 0 else servers[:0:-1]  # each goes first in turn
            for server in (servers[0], *hubs):
                server.measure(args.requests)
    finally:
        for server in servers:
            server.close()
    bare = statistics.median(servers[0].rates)
    first = statistics.median(servers[1].rates)
    for server in servers[1:]:
        rate = statistics.median(server.rates)
        print(f"{server.name:>10}: median {rate:.1f}/s = {rate / bare:.2f} of the bare endpoint "
              f"({bare:.1f}/s), {rate / first - 1:+.1%} against {servers[1].name}", flush=True)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--postgres", default=os.environ.get("HUB_TEST_DATABASE_URL", ""),
                   help="a PostgreSQL URL (its server gets a scratch database); '' for none")
    p.add_argument("--synchronous", default="",
                   help="e.g. NORMAL,FULL: compare SQLite's synchronous settings side by side "
                        "(SQLite only)")
    p.add_argument("--in-place", action="store_true",
                   help="use the --postgres database itself (its schema reset) instead of a "
                        "scratch database beside it")
    p.add_argument("--no-sqlite", action="store_true")
    args = p.parse_args()
    if args.synchronous:
        with tempfile.TemporaryDirectory(prefix="cityhub-bench-") as tmp:
            bench_synchronous(Path(tmp), args)
        return
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="cityhub-bench-") as tmp:
        sqlite_dir = Path(tmp) / "sqlite"
        sqlite_dir.mkdir()
        if not args.no_sqlite:
            results["SQLite"] = bench_store("SQLite", sqlite_dir, None, args)
        if args.postgres:
            pg_dir = Path(tmp) / "postgres"
            pg_dir.mkdir()
            with (in_place(args.postgres) if args.in_place
                  else scratch_postgres(args.postgres)) as url:
                results["PostgreSQL"] = bench_store("PostgreSQL", pg_dir, url, args)
    print("     ratio: " + ", ".join(f"{k} {v:.2f}" for k, v in results.items())
          + " of the bare endpoint (target >= 0.40)")
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
