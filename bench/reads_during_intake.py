"""Reads never stall the intake: province intake latency while clerks export 10,000
cases and read the dashboard, against the same intake on an idle hub (issue 12).

The hub runs as in production (``hub.py serve``: waitress, its background job runner;
delivery workers and the scheduler off so that only reads and the intake compete). Its
store holds ``--cases`` open cases (default 10,000) in the manual queue of 渠县 (511725),
written through the intake's own write path (``adapters.case_plan.open_case``). A client
sends signed ``rental_filing`` applications at a steady ``--rate`` (default 20/s) for
``--seconds`` and notes each answer's latency; in alternating rounds (idle, busy, idle,
busy ...) a signed-in administrator, in the busy rounds, runs the manual queue's export
of all 10,000 cases (the background job, downloaded as its .zip) again and again and
fetches the dashboard (``/admin/``) between them. Prints every round (on SQLite with the
most WAL pages that waited for a checkpoint), the p50/p99 of idle and busy, and their ratio
(target: busy within 2x of idle), for SQLite and, with
``--postgres URL`` (default HUB_TEST_DATABASE_URL), PostgreSQL in a scratch database.

    .venv/bin/python bench/reads_during_intake.py [--cases 10000] [--rate 20] [--seconds 20]
        [--rounds 2] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test | --postgres ""]
        [--fsync-delay-ms 5]

``--fsync-delay-ms N`` runs the SQLite hub as on a slower disk: every fsync and
fdatasync of its process returns N ms late (``bench/slow_fsync.c``, built with the
machine's C compiler and loaded with LD_PRELOAD; Linux). A SATA SSD's cache flush takes
a few ms, a spinning disk's about 10; this machine's disk syncs in about 0.3 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import requests
import urllib3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from adapters.case_plan import open_case  # noqa: E402
from bench.intake import PATH, free_port, prepared, scratch_postgres, stop, write_config  # noqa: E402
from hub import Hub, load_config  # noqa: E402
from mapping.canonical import Applicant, CanonicalCase  # noqa: E402

MANUAL_COUNTY = "511725"  # 渠县: manual in the routing table
PASSWORD = "Bench-Reads-2026!"


def seed(config: Path, cases: int) -> None:
    """``cases`` open cases in 渠县's manual queue, through the intake's write path."""
    hub = Hub(load_config(config))
    try:
        for start in range(0, cases, 1000):
            with hub.transaction() as s:
                for i in range(start, min(cases, start + 1000)):
                    open_case(s, hub, CanonicalCase(
                        item="rental_filing", apply_no=f"READS-{i:06d}", city_code="511700",
                        county_codes=[MANUAL_COUNTY],
                        applicant=Applicant("张三", "1", "11010519491231002X", phone="13800138000"),
                        submitted_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
                        data={"lessee_name": "张三", "lessee_id_no": "11010519491231002X",
                              "lessor_name": "李四", "lessor_id_no": "510722198001010016",
                              "house_id": f"H-{i:06d}", "address": f"渠县渠江镇文化路{i}号"}))
    finally:
        hub.close()


def slow_fsync(folder: Path, delay_ms: int) -> dict[str, str]:
    """The environment that makes a process's fsync/fdatasync ``delay_ms`` slower (the
    shim built into ``folder``); {} for no delay."""
    if delay_ms <= 0:
        return {}
    shim = folder / "slow_fsync.so"
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-o", str(shim),
                    str(ROOT / "bench/slow_fsync.c"), "-ldl"], check=True)
    return {"LD_PRELOAD": str(shim), "SLOW_FSYNC_MS": str(delay_ms)}


@contextlib.contextmanager
def served(config: Path, port: int, extra_env: dict[str, str] | None = None
           ) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "HUB_CONFIG": str(config), "HUB_ADMIN_PASSWORD": PASSWORD}
    py = sys.executable
    subprocess.run([py, "hub.py", "create-admin", "--username", "bench"], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    log = open(config.parent / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([py, "hub.py", "serve", "--port", str(port), "--no-workers",
                             "--no-scheduler"], cwd=ROOT, env={**env, **(extra_env or {})},
                            stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"hub.py serve exited; see {log.name}")
            time.sleep(0.2)
        yield proc
    finally:
        stop(proc)
        log.close()


class Clerk:
    """A signed-in administrator exporting the whole manual queue and reading the
    dashboard, in a loop, until told to stop."""

    def __init__(self, base: str) -> None:
        self.base, self.http, self.token = base, requests.Session(), ""
        self.exports: list[float] = []
        self.dashboards: list[float] = []
        self.zip_bytes = 0
        page = self._get("/admin/login")
        assert page.ok, page.status_code
        signed = self._post("/admin/login", {"username": "bench", "password": PASSWORD})
        assert signed.ok and "/admin/login" not in signed.url, signed.url

    def _remember(self, resp: requests.Response) -> requests.Response:
        found = re.search(r'name="csrf_token" value="([^"]+)"', resp.text)
        if found:
            self.token = found.group(1)
        return resp

    def _get(self, path: str) -> requests.Response:
        return self._remember(self.http.get(self.base + path, timeout=300))

    def _post(self, path: str, form: dict[str, str]) -> requests.Response:
        return self._remember(self.http.post(self.base + path, timeout=300,
                                             data={"csrf_token": self.token, **form}))

    def export_all(self) -> None:
        started = time.perf_counter()
        self._get("/admin/manual")
        asked = self._post("/admin/manual/export", {"county": MANUAL_COUNTY,
                                                     "item": "rental_filing"})
        job_id = int(re.search(r"[?&]job=(\d+)", asked.url).group(1))  # type: ignore[union-attr]
        while True:
            job = self.http.get(f"{self.base}/admin/manual/jobs/{job_id}", timeout=60).json()
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert job["state"] == "done", job
        download = self.http.get(self.base + job["download"], timeout=300)
        assert download.ok, download.status_code
        self.zip_bytes = len(download.content)
        self.exports.append(time.perf_counter() - started)

    def dashboard(self) -> None:
        started = time.perf_counter()
        page = self._get("/admin/")
        assert page.ok, page.status_code
        self.dashboards.append(time.perf_counter() - started)

    def loop(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            self.export_all()
            self.dashboard()


def intake(port: int, run: str, rate: float, seconds: float) -> list[float]:
    """Latencies of applications sent at a steady ``rate`` (each on its own schedule, so a
    slow answer delays no other; signed before the clock starts)."""
    count = int(rate * seconds)
    work = prepared(run, count)
    latencies: list[float] = [0.0] * count
    codes: list[str] = [""] * count
    senders = 8
    start = time.perf_counter() + 0.2

    def sender(k: int) -> None:
        pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)
        for n in range(k, count, senders):
            due = start + n / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            raw, headers = work[n]
            sent = time.perf_counter()
            resp = pool.urlopen("POST", PATH, body=raw, headers=headers, timeout=120)
            latencies[n] = time.perf_counter() - sent
            codes[n] = json.loads(resp.data).get("code", str(resp.status))

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    refused = [c for c in codes if c != "0000"]
    assert not refused, f"{len(refused)} applications not accepted: {sorted(set(refused))}"
    return latencies


class WalWatch:
    """The most WAL frames waiting to be copied back into SQLite's database file, sampled
    every 50 ms from the WAL index (``hub.db-shm``: mxFrame at byte 16, nBackfill at
    byte 96). A read snapshot held for long pins the frames written after it: they pile
    up, and whichever commit checkpoints them next copies them all at once."""

    def __init__(self, shm: Path) -> None:
        self.shm, self.most, self._stop = shm, 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(OSError, struct.error), open(self.shm, "rb") as f:
                head = f.read(100)
                (max_frame,), (backfilled,) = (struct.unpack_from("=I", head, 16),
                                               struct.unpack_from("=I", head, 96))
                self.most = max(self.most, max_frame - backfilled)

    def __enter__(self) -> WalWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_store(label: str, url: str | None, args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cityhub-bench-reads-"))
    config = write_config(folder, url)
    started = time.perf_counter()
    seed(config, args.cases)
    delay = args.fsync_delay_ms if url is None else 0
    disk = f"; every fsync {delay} ms slower" if delay else ""
    print(f"-- {label}: {args.cases} cases in 渠县's manual queue "
          f"(written in {time.perf_counter() - started:.0f} s); intake {args.rate:g}/s for "
          f"{args.seconds:g} s a round{disk}; load {os.getloadavg()[0]:.1f}", flush=True)
    port = free_port()
    idle: list[float] = []
    busy: list[float] = []
    with served(config, port, slow_fsync(folder, delay)):
        base = f"http://127.0.0.1:{port}"
        clerk = Clerk(base)
        clerk.export_all()  # warm: the first export, and its figures
        print(f"   one export of {args.cases} cases alone: {clerk.exports[-1]:.1f} s, "
              f"zip {clerk.zip_bytes / 1e6:.1f} MB", flush=True)
        for r in range(args.rounds):
            for phase in ("idle", "busy"):
                stopping = threading.Event()
                reader = threading.Thread(target=clerk.loop, args=(stopping,))
                exports_before = len(clerk.exports)
                if phase == "busy":
                    reader.start()
                    time.sleep(1.0)  # the first export under way
                with WalWatch(folder / "hub.db-shm") as wal:
                    got = intake(port, f"{label}{r}{phase}", args.rate, args.seconds)
                stopping.set()
                if phase == "busy":
                    reader.join()
                (idle if phase == "idle" else busy).extend(got)
                extra = (f", exports run {len(clerk.exports) - exports_before}"
                         if phase == "busy" else "")
                if url is None:
                    extra += f", up to {wal.most} WAL pages not checkpointed"
                print(f"   round {r + 1} {phase}: p50 {p(got, .5) * 1000:.0f} ms, "
                      f"p99 {p(got, .99) * 1000:.0f} ms, max {max(got) * 1000:.0f} ms{extra}; "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    p50 = p(busy, .5) / p(idle, .5)
    p99 = p(busy, .99) / p(idle, .99)
    print(f"   export during the busy rounds: median {statistics.median(clerk.exports):.1f} s; "
          f"dashboard median {statistics.median(clerk.dashboards) * 1000:.0f} ms")
    print(f"   {label}: intake p50 idle {p(idle, .5) * 1000:.0f} ms / busy "
          f"{p(busy, .5) * 1000:.0f} ms = {p50:.2f}x; p99 idle {p(idle, .99) * 1000:.0f} ms / "
          f"busy {p(busy, .99) * 1000:.0f} ms = {p99:.2f}x (target <= 2)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--postgres", default=os.environ.get("HUB_TEST_DATABASE_URL", ""))
    ap.add_argument("--fsync-delay-ms", type=int, default=0,
                    help="SQLite only: the hub's fsyncs this much slower (a slower disk)")
    args = ap.parse_args()
    bench_store("SQLite", None, args)
    if args.postgres:
        with scratch_postgres(args.postgres) as url:
            bench_store("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
