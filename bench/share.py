"""Data-sharing queries by ID number over a large shared record (contracts/departments.md).

Loads ``--rows`` shared filings (default 1,000,000; a buyer and a seller each, names and
ID numbers sealed, ID numbers blind-indexed as the hub writes them) into a fresh store
by COPY, then times the gateway's own ``housing_count`` and ``contracts`` (store.share,
in a session, with their answers opened) for random ID numbers, next to a bare indexed
lookup of the same hashes on the driver's cursor, in the same run.

    HUB_BENCH_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test_x \
        python bench/share.py [--rows 1000000] [--samples 2000]

Target: p99 under 20 ms on PostgreSQL for both queries.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._common import reset_store  # noqa: E402
from mapping.departments import DEFAULT_SCOPES, Scope  # noqa: E402
from store import share  # noqa: E402
from store.crypto import DataCipher  # noqa: E402
from store.db import Database  # noqa: E402
from store.sealed import bind_cipher  # noqa: E402

BENCH_KEY = b"cityhub-bench-share-fixed-key-00"


def loaded(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM shared_filings")).scalar() or 0)
    except Exception:
        return 0
    finally:
        engine.dispose()


def ids(n: int) -> list[str]:
    return [f"5117{i:014d}" for i in range(n)]


def load(db: Database, cipher: DataCipher, rows: int, people: list[str]) -> None:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        sealed_name = cipher.seal("张三".encode()).hex()  # one sealed blob per column kind
        addr = cipher.seal("达州市通川区朝阳路1号".encode()).hex()
        step = 100_000
        started = time.perf_counter()
        for base in range(0, rows, step):
            filings, parties = io.StringIO(), io.StringIO()
            for i in range(base, min(rows, base + step)):
                kind = "presale" if i % 2 else "resale"
                filings.write(f"{i + 1}\tBA511702{i:010d}\t{kind}\t{kind}_contract_filing\t"
                              f"\\N\t511702\tH-{i:08d}\t\\\\x{addr}\t880000.00\t"
                              f"2026-01-01 00:00:00\tfiled\t\\N\n")
                for j, role in ((0, "buyer"), (1, "seller")):
                    who = people[(i * 7 + j * 3) % len(people)]
                    parties.write(f"{2 * i + j + 1}\t{i + 1}\t{role}\t\\\\x{sealed_name}\t"
                                  f"\\\\x{cipher.seal(who.encode()).hex()}\t"
                                  f"{cipher.blind_index(who)}\n")
            with cur.copy("COPY shared_filings (id, filing_no, kind, item, case_id, "
                          "county_code, house_id, address_enc, price, filed_at, status, "
                          "cancelled_at) FROM STDIN") as copy:
                copy.write(filings.getvalue())
            with cur.copy("COPY shared_parties (id, filing_id, role, name_enc, id_no_enc, "
                          "id_hash) FROM STDIN") as copy:
                copy.write(parties.getvalue())
            raw.commit()
            print(f"  loaded {min(rows, base + step):,} filings "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        cur.execute("ANALYZE shared_filings")
        cur.execute("ANALYZE shared_parties")
        raw.commit()
    finally:
        raw.close()


def timed(fn, samples: list[str]) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for s in samples:
        t = time.perf_counter()
        fn(s)
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, ms: list[float]) -> float:
    ms = sorted(ms)
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"{name:<24} p50 {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms   "
          f"max {ms[-1]:6.2f} ms")
    return p99


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--reuse", action="store_true",
                   help="keep the rows a previous run loaded (same count) instead of reloading")
    args = p.parse_args()
    url = os.environ.get("HUB_BENCH_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        sys.exit("set HUB_BENCH_DATABASE_URL to a PostgreSQL database the bench may reset")
    cipher = DataCipher(BENCH_KEY)  # a fixed key: --reuse finds the same blind indexes
    people = ids(max(10, int(args.rows * 0.8)))
    if not (args.reuse and loaded(url) == args.rows):
        reset_store(url)
        db = Database(url)
        bind_cipher(db.engine, cipher)
        print(f"loading {args.rows:,} shared filings ({len(people):,} people) at "
              f"{datetime.now():%H:%M:%S}", flush=True)
        load(db, cipher, args.rows, people)
    else:
        db = Database(url)
        bind_cipher(db.engine, cipher)
        print(f"reusing {args.rows:,} shared filings", flush=True)
    rng = random.Random(7)
    sample = [rng.choice(people) for _ in range(args.samples)]
    scope = Scope(frozenset(DEFAULT_SCOPES["bank"]["kinds"]), True, True, True)

    with db.session() as s:
        def count(id_no: str) -> None:
            share.housing_count(s, id_no)

        def contracts(id_no: str) -> None:
            share.contracts(s, scope, {"id_no": id_no})

        raw = s.connection().connection.driver_connection
        cur = raw.cursor()

        def bare(id_no: str) -> None:
            cur.execute("SELECT filing_id FROM shared_parties WHERE id_hash = %s",
                        (cipher.blind_index(id_no),))
            cur.fetchall()

        timed(bare, sample[:200])  # warm the caches and the statement paths
        timed(count, sample[:200])
        timed(contracts, sample[:200])
        base = report("bare indexed lookup", timed(bare, sample))
        c99 = report("housing_count", timed(count, sample))
        k99 = report("contracts (opened)", timed(contracts, sample))
    print(f"ratio to the bare lookup (p99): housing_count {c99 / base:.1f}x, "
          f"contracts {k99 / base:.1f}x")
    print(f"target p99 < 20 ms: {'met' if max(c99, k99) < 20 else 'NOT met'}")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    db.dispose()


if __name__ == "__main__":
    main()
