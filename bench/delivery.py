"""Outbox delivery throughput against a fast loopback peer, next to the same HTTP calls
made directly (same client, same number of threads) in the same run.

    python bench/delivery.py [--messages 3000] [--threads 4] [--postgres URL]

Prints messages/s for each store, the direct rate, and hub/direct. Target: >= 0.5.
Then the latency from commit to the peer's receipt at a steady rate (``--rate`` 50
messages/s, one commit each, ``--seconds`` 20): p50 and p99, target p99 < 100 ms.
PostgreSQL is measured when --postgres or HUB_TEST_DATABASE_URL is given.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
import urllib.request

from _common import reset_store, start_peer, temp_config
from sqlalchemy import func, select

from hub import Hub, load_config
from routes.policy import RetryPolicy
from store.models import OutboxMessage
from store.outbox import NewMessage

POLICY = RetryPolicy(max_attempts=5, min_backoff=1, max_backoff=5)


def payload(i: int) -> dict:
    return {"apply_no": f"510000-20261125-{i:06d}", "item": "rental_filing",
            "applicant": {"name": "张三", "id_no": "11010519491231002X"}, "data": {"n": i}}


def direct_rate(hub: Hub, n: int, threads: int) -> float:
    client = hub.calls.client("peer")  # the hub's one client for the partner
    partner = hub.partner("peer")
    counter = iter(range(n))
    lock = threading.Lock()
    failures = []

    def run() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            result = client.post(partner, "msg", payload(i), 5, message_id=i)
            if not result.ok:
                failures.append(result.error)

    started = time.perf_counter()
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    client.close()
    assert not failures, failures[:3]
    return n / elapsed


def hub_rate(hub: Hub, n: int, threads: int) -> float:
    with hub.transaction() as s:
        for i in range(n):
            hub.enqueue(s, NewMessage(interface="bench.post", adapter="http", partner="peer",
                                      operation="msg", payload=payload(i), policy=POLICY,
                                      timeout=5))
    started = time.perf_counter()
    hub.start_workers(threads)
    done_query = select(func.count()).select_from(OutboxMessage).where(
        OutboxMessage.status == "done")
    while True:
        with hub.db.engine.connect() as conn:
            done = conn.execute(done_query).scalar() or 0
        if done >= n:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    hub.workers.stop()
    hub.workers = None
    return n / elapsed


def latency(store: str, url: str | None, peer_url: str, rate: float, seconds: float,
            threads: int, batch: int) -> None:
    """Commit one message at a time at a steady ``rate``; the time from each commit to its
    arrival at the peer (the peer's clock: same host). The hub keeps the configured
    default poll interval (0.5 s), so only the wake-up on commit can make it short."""
    config, db_url = temp_config(url, partners={"peer": {"base_url": peer_url}}, inbound=[],
                                 delivery={"threads": threads, "batch": batch,
                                           # a batch of the slowest calls fits (hub.py)
                                           "lease_seconds": max(300, batch * 15),
                                           "poll_interval": 0.5})
    reset_store(db_url)
    hub = Hub(load_config(config))
    urllib.request.urlopen(urllib.request.Request(peer_url + "/_reset", data=b"{}"),
                           timeout=10).read()
    hub.start_workers(threads)
    committed: dict[str, float] = {}
    n = int(rate * seconds)
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        with hub.transaction() as s:
            mid = hub.enqueue(s, NewMessage(interface="bench.post", adapter="http",
                                            partner="peer", operation="msg", payload=payload(i),
                                            policy=POLICY, timeout=5))
        committed[str(mid)] = time.time()
    arrivals: dict[str, float] = {}
    deadline = time.time() + 30
    while time.time() < deadline:
        with urllib.request.urlopen(peer_url + "/_arrivals", timeout=10) as resp:
            arrivals = json.loads(resp.read())["arrivals"]
        if all(m in arrivals for m in committed):
            break
        time.sleep(0.2)
    hub.close()
    got = sorted((arrivals[m] - t) * 1000 for m, t in committed.items() if m in arrivals)
    if not got:
        print(f"{store:10s} latency: nothing arrived")
        return
    p50, p99 = got[len(got) // 2], got[min(len(got) - 1, int(len(got) * 0.99))]
    print(f"{store:10s} commit -> peer at {rate:.0f} msg/s for {seconds:.0f} s: "
          f"{len(got)}/{n} arrived, p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  max {got[-1]:6.1f} ms"
          f"   (target p99 < 100 ms)")


def measure(store: str, url: str | None, peer_url: str, n: int, threads: int, batch: int) -> None:
    config, db_url = temp_config(url, partners={"peer": {"base_url": peer_url}}, inbound=[],
                                 delivery={"threads": threads, "batch": batch,
                                           # a batch of the slowest calls fits (hub.py)
                                           "lease_seconds": max(300, batch * 15),
                                           "poll_interval": 0.05})
    reset_store(db_url)
    hub = Hub(load_config(config))
    direct_rate(hub, min(300, n), threads)  # warm-up: connections, caches
    direct = direct_rate(hub, n, threads)
    through_hub = hub_rate(hub, n, threads)
    hub.close()
    print(f"{store:10s} direct {direct:8.0f} msg/s   hub {through_hub:8.0f} msg/s   "
          f"ratio {through_hub / direct:5.2f}   (target >= 0.50)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=3000)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--batch", type=int, default=20, help="rows claimed per statement")
    p.add_argument("--postgres", default=os.environ.get("HUB_TEST_DATABASE_URL"))
    p.add_argument("--rate", type=float, default=50.0, help="messages/s of the latency run")
    p.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    p.add_argument("--no-throughput", action="store_true")
    args = p.parse_args()
    peer, peer_url = start_peer(clock=True)
    try:
        print(f"outbox delivery: {args.messages} messages, {args.threads} threads, "
              f"batch {args.batch}, "
              f"loopback peer {peer_url}")
        stores = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
        if not args.no_throughput:
            for store, url in stores:
                measure(store, url, peer_url, args.messages, args.threads, args.batch)
        for store, url in stores:
            latency(store, url, peer_url, args.rate, args.seconds, args.threads, args.batch)
        print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    finally:
        peer.terminate()


if __name__ == "__main__":
    main()
