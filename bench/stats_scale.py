"""The dashboard's scale, measured in alternation on two stores already filled by
``bench/stats.py`` (e.g. one with a million call-log rows, one with ten million): each
round times the dashboard on one store, then on the other, so both sizes see the same
load of a shared machine (``bench/stats.py --rows 1000000,10000000`` measures the two
sizes minutes apart). Prints the median and fastest of each and their ratio (target
<= 1.5), and the calls part (``calls_ms``) alone.

    python bench/stats_scale.py postgresql+psycopg://.../bench_1m postgresql+psycopg://.../bench_10m
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from admin import stats  # noqa: E402
from admin.perms import FUNCTIONS, Principal  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import utcnow  # noqa: E402


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("small", help="store URL of the smaller store (the baseline)")
    p.add_argument("large", help="store URL of the larger store")
    p.add_argument("--rounds", type=int, default=11)
    args = p.parse_args()

    stores = {"small": Database(args.small), "large": Database(args.large)}
    now = utcnow()
    tomorrow = stats.day_start(stats.local_day(now, stats.DEFAULT_TZ) + timedelta(days=1),
                               stats.DEFAULT_TZ)
    year = (tomorrow - timedelta(days=365), tomorrow)  # the dashboard page's year
    city = Principal(0, "bench", "bench", frozenset(FUNCTIONS), None)
    county = Principal(0, "bench", "bench", frozenset(FUNCTIONS), frozenset({"511702"}))
    cases: list[tuple[str, Principal, tuple[datetime, datetime]]] = [
        ("city-wide", city, year), ("one county", county, year),
        ("city-wide, 365 days back from now", city,
         (now - timedelta(days=365), now + timedelta(seconds=1)))]
    total: dict[tuple[str, str], list[float]] = {}
    calls: dict[tuple[str, str], list[float]] = {}
    rows: dict[str, int] = {}
    print("uptime before:", uptime(), flush=True)
    for _ in range(args.rounds):
        for label, who, (a, b) in cases:
            for key, db in stores.items():
                with db.session() as s:
                    t = time.perf_counter()
                    dash = stats.dashboard(s, who, a, b)
                    total.setdefault((label, key), []).append((time.perf_counter() - t) * 1000)
                calls.setdefault((label, key), []).append(dash.timings["calls_ms"])
                if label == "city-wide":
                    rows[key] = sum(st.calls for st in dash.interfaces)
    print(f"calls counted in the dashboard's year: {rows['small']} and {rows['large']}; "
          f"{args.rounds} rounds")
    for label, _, _ in cases:
        small, large = total[(label, "small")], total[(label, "large")]
        print(f"dashboard {label}: median {statistics.median(large):.0f} / "
              f"{statistics.median(small):.0f} ms = "
              f"{statistics.median(large) / statistics.median(small):.2f}, fastest "
              f"{min(large):.0f} / {min(small):.0f} ms = {min(large) / min(small):.2f} "
              f"(target <= 1.5); calls part median {statistics.median(calls[(label, 'large')]):.0f}"
              f" / {statistics.median(calls[(label, 'small')]):.0f} ms")
    for db in stores.values():
        db.dispose()
    print("uptime after:", uptime())
    return 0


if __name__ == "__main__":
    sys.exit(main())
