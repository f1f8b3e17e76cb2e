"""Benchmark the admin dashboard on a year of data.

Fills the store with call-log rows (default one million) spread over the past year,
plus sub-cases and outbox messages, rolls the call log up by day (as the nightly job
does), and prints how long the dashboard's queries take for the dashboard page's year
(365 Beijing days ending with today) — city-wide and for one county — and city-wide for
the 365 days back from this instant (a partial first day read from raw rows). Target:
under 300 ms on PostgreSQL for a million calls, under 2 s on SQLite. Then the
办件时限 queries on the sub-cases (default 100,000): the overdue list with its counts,
and a year of on-time rates; target under 300 ms on PostgreSQL.

The call-log rows are generated inside the database (``--fill sql``: PostgreSQL
``generate_series``, SQLite a recursive CTE; ``--fill python`` builds them here) with
the call log's indexes dropped meanwhile and built again after. ``--rows`` with several
sizes is the scale run: the dashboard is timed at each size (the store topped up and
rolled up again in between) and its time at each size is printed against the first
(target: ten million within 1.5 times one million), the median and the fastest run (on a
shared machine the fastest is the least disturbed).

    python bench/stats.py sqlite:////tmp/bench.db
    python bench/stats.py postgresql+psycopg://user:pw@host/db --rows 1000000,10000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text  # noqa: E402

from admin import stats  # noqa: E402
from admin.deadlines import due_counts, due_rows, on_time_rates  # noqa: E402
from admin.perms import FUNCTIONS, Principal  # noqa: E402
from store.db import Database  # noqa: E402
from store.models import CallLogEntry, Case, OutboxMessage, StageEvent, utcnow  # noqa: E402

COUNTIES = ["511702", "511703", "511722", "511723", "511724", "511725", "511781"]
ITEMS = ["property_info_query", "survey_review", "presale_contract_verify",
         "presale_contract_cancel", "filed_property_query", "rental_filing",
         "presale_contract_filing", "resale_contract_filing", "presale_scope_query",
         "presale_permit_application"]
STAGES = ["received", "accepted", "approved", "completed", "rejected"]
BATCH = 20000


def fill_calls(db: Database, n: int, now: datetime, rng: random.Random) -> None:
    interfaces = _interfaces()
    rows = []
    for i in range(n):
        iface = rng.choice(interfaces)
        rows.append({
            "ref_id": f"bench{i:012d}", "interface": iface,
            "direction": "in" if ".in." in iface else "out", "party": "bench",
            "division": rng.choice(COUNTIES), "item": rng.choice(ITEMS),
            "case_id": None, "message_id": None,
            "started_at": now - timedelta(seconds=rng.randrange(0, 365 * 86400)),
            "duration_ms": rng.lognormvariate(4.5, 1.0),
            "outcome": rng.choices(["ok", "error", "rejected"], [90, 7, 3])[0],
            "code": None, "error": None, "request_enc": None, "response_enc": None,
        })
        if len(rows) == BATCH:
            _flush(db, CallLogEntry, rows)
    _flush(db, CallLogEntry, rows)


def fill_calls_sql(db: Database, start: int, n: int, now: datetime) -> None:
    """``n`` call-log rows generated inside the database (PostgreSQL ``generate_series``,
    SQLite a recursive CTE), in chunks of a million: same shape as ``fill_calls`` (23
    interfaces, 7 counties, log-normal durations, 90/7/3 % ok/error/rejected over a
    year), for the sizes where building rows in Python would take most of an hour."""
    interfaces = _interfaces()
    pg = db.engine.dialect.name == "postgresql"

    def pick(values: list[str], u: str) -> str:
        # a CASE on a uniform [0,1) value: portable (no arrays on SQLite)
        whens = " ".join(f"WHEN {u} < {(i + 1) / len(values)!r} THEN '{v}'"
                         for i, v in enumerate(values[:-1]))
        return f"CASE {whens} ELSE '{values[-1]}' END"

    uni = "random()" if pg else "((random() & 9007199254740991) / 9007199254740992.0)"
    # in time order, as a call log is appended: row g at (last - g) / n of the year back
    # (random times would scatter each day over the table, which no real log does)
    age = "((CAST(:last AS float) - g) / :n)"
    at = (f"CAST(:now AS timestamp) - {age} * interval '365 days'" if pg else
          f"strftime('%Y-%m-%d %H:%M:%S', :now, '-' || CAST({age} * 31536000 AS INTEGER) "
          "|| ' seconds') || '.000000'")
    ref = "'bench' || lpad(g::text, 12, '0')" if pg else "'bench' || printf('%012d', g)"
    us = ", ".join(f"{uni} AS u{k}" for k in range(7))
    # the uniform values are drawn once per row: a PostgreSQL subquery with volatile
    # columns is not flattened; on SQLite the recursive CTE's columns are its rows
    if pg:
        source = f"(SELECT g, {us} FROM generate_series(:a, :b) AS g) r"
        prefix = ""
    else:
        cols = ", ".join(f"u{k}" for k in range(7))
        draws = ", ".join(uni for _ in range(7))
        prefix = (f"WITH RECURSIVE r(g, {cols}) AS (SELECT :a, {draws} UNION ALL "
                  f"SELECT g + 1, {draws} FROM r WHERE g < :b) ")
        source = "r"
    stmt = text(
        "INSERT INTO call_log (ref_id, interface, direction, party, division, item, "
        "started_at, duration_ms, outcome) " + prefix + f"""
        SELECT {ref}, iface, CASE WHEN iface LIKE '%.in.%' THEN 'in' ELSE 'out' END, 'bench',
               {pick(COUNTIES, 'u1')}, {pick(ITEMS, 'u2')}, {at},
               exp(4.5 + sqrt(-2 * ln(1 - u4)) * cos(2 * pi() * u5)),
               CASE WHEN u6 < 0.9 THEN 'ok' WHEN u6 < 0.97 THEN 'error' ELSE 'rejected' END
        FROM (SELECT r.*, {pick(interfaces, 'u0')} AS iface FROM {source}) s""")
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    done = 0
    while done < n:
        size = min(1_000_000, n - done)
        with db.engine.begin() as conn:
            conn.execute(stmt, {"a": start + done, "b": start + done + size - 1, "now": stamp,
                                "last": start + n, "n": n})
        done += size
        print(f"  generated {done}/{n} call-log rows in the database", flush=True)


def _interfaces() -> list[str]:
    return [f"county.{i}" for i in ITEMS] + [f"province.{op}" for op in (
        "status", "results", "review-link")] + [f"province.in.{i}" for i in ITEMS]


def fill_cases(db: Database, n: int, now: datetime, rng: random.Random) -> None:
    with db.session() as s:
        start = (s.scalar(select(func.max(Case.id))) or 0) + 1
    cases, messages, events = [], [], []
    for i in range(start, start + n):
        at = now - timedelta(seconds=rng.randrange(0, 365 * 86400))
        county = rng.choice(COUNTIES)
        stage = rng.choice(STAGES)
        days = rng.choice([3, 5, 10, 20])
        due = at + timedelta(days=days * 7 / 5)  # about the working days' span
        # sub-cases of one parent (the first row), each with its due time (办件时限)
        cases.append({"id": i, "case_no": f"B{i:012d}", "parent_id": None if i == start else start,
                      "item": rng.choice(ITEMS), "apply_no": f"bench-{i}",
                      "city_code": "511700", "county_code": county, "source": "province",
                      "stage": stage, "route_adapter": "county_smart",
                      "route_mode": "auto", "applicant_id_hash": None, "payload_enc": b"x",
                      "answer_enc": None, "created_at": at, "updated_at": at,
                      "promised_days": days, "due_at": due})
        if stage == "completed":
            done = at + timedelta(days=rng.uniform(0.5, days * 1.6))
            events.append({"case_id": i, "stage": "completed", "at": done, "operator": None,
                           "opinion": None, "filing_no": None, "source": "county",
                           "result_enc": None, "on_time": done <= due})
        messages.append({"interface": "county.rental_filing", "adapter": "county_smart",
                         "partner": f"county_{county}", "operation": "rental_filing",
                         "division": county, "item": "rental_filing", "case_id": i,
                         "payload_enc": b"x",
                         "status": rng.choices(["done", "dead", "pending"], [95, 3, 2])[0],
                         "attempts": 1, "max_attempts": 5, "min_backoff": 1.0,
                         "max_backoff": 10.0, "timeout": 5.0, "next_attempt_at": at,
                         "created_at": at, "resubmit_count": 0})
        if len(cases) == BATCH:
            _flush(db, Case, cases)
            _flush(db, OutboxMessage, messages)
            _flush(db, StageEvent, events)
    _flush(db, Case, cases)
    _flush(db, OutboxMessage, messages)
    _flush(db, StageEvent, events)


def _flush(db: Database, model, rows: list[dict]) -> None:  # type: ignore[no-untyped-def]
    if rows:
        with db.session() as s:
            s.execute(insert(model), rows)
        rows.clear()


def timed(fn, runs: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    ms, _, result = timed_min(fn, runs)
    return ms, result


def timed_min(fn, runs: int) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Median and fastest of ``runs`` (ms), and the last result: on a shared machine the
    fastest is the least disturbed by the other processes."""
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), min(times), result


def _sizes(text_: str) -> list[int]:
    sizes = [int(x.replace("_", "")) for x in text_.split(",") if x.strip()]
    if not sizes or sizes != sorted(sizes) or sizes[0] < 1:
        raise argparse.ArgumentTypeError("increasing row counts, e.g. 1000000,10000000")
    return sizes


def top_up_calls(db: Database, target: int, now: datetime, rng: random.Random,
                 how: str) -> float:
    """Bring the call log to ``target`` rows; seconds taken. Indexes are dropped while a
    large batch is generated and built again after (faster than row by row)."""
    with db.session() as s:
        have = int(s.scalar(select(func.count()).select_from(CallLogEntry)) or 0)
    if have >= target:
        return 0.0
    t = time.perf_counter()
    if how == "python":
        fill_calls(db, target - have, now, rng)
        return time.perf_counter() - t
    indexes = [i for i in CallLogEntry.__table__.indexes if not i.unique]
    with db.engine.begin() as conn:
        for index in indexes:
            index.drop(conn)
    fill_calls_sql(db, have + 1, target - have, now)
    with db.engine.begin() as conn:
        for index in indexes:
            index.create(conn)
    return time.perf_counter() - t


def rebuild_rollup(db: Database, today) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Roll every past day up again (the nightly job, after a bulk fill); days, seconds."""
    from store.admin_models import CallDailyDone

    t = time.perf_counter()
    with db.session() as s:
        s.execute(CallDailyDone.__table__.delete())
        days = stats.refresh_pending(s, today=today)
    return len(days), time.perf_counter() - t


def analyze(db: Database) -> None:
    # Planner statistics, as autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) keep
    # them on a store in use: a store just bulk-filled has none.
    with db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", help="store URL (SQLAlchemy), e.g. sqlite:////tmp/bench.db")
    p.add_argument("--rows", type=_sizes, default=[1_000_000],
                   help="call-log rows; several (1000000,10000000) for a scale run: the "
                        "dashboard is measured at each size, the store topped up in between")
    p.add_argument("--fill", choices=("sql", "python"), default="sql",
                   help="generate call-log rows inside the database (default) or in Python")
    p.add_argument("--cases", type=int, default=100_000, help="sub-cases (one message each)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--no-fill", action="store_true", help="reuse what is in the store")
    p.add_argument("--no-rollup", action="store_true",
                   help="with --no-fill: keep the rollup as it is (already rebuilt)")
    args = p.parse_args()

    db = Database(args.url)
    db.migrate()
    now = utcnow()
    rng = random.Random(2026)
    if not args.no_fill:
        t = time.perf_counter()
        fill_cases(db, args.cases, now, rng)
        print(f"filled {args.cases} cases in {time.perf_counter() - t:.1f} s", flush=True)
    city = Principal(0, "bench", "bench", frozenset(FUNCTIONS), None)
    county = Principal(0, "bench", "bench", frozenset(FUNCTIONS), frozenset({"511702"}))
    since, until = now - timedelta(days=365), now + timedelta(seconds=1)
    # the dashboard page's year (admin.web.time_range): 365 local days ending with today,
    # from a Beijing midnight; the rolling year from now also reads a partial first day raw
    tomorrow = stats.day_start(stats.local_day(now, stats.DEFAULT_TZ) + timedelta(days=1),
                               stats.DEFAULT_TZ)
    year = (tomorrow - timedelta(days=365), tomorrow)
    runs = [("city-wide", city, year), ("one county", county, year),
            ("city-wide, 365 days back from now", city, (since, until))]
    figures: list[tuple[int, dict[str, tuple[float, float]]]] = []
    for size in args.rows:
        if not args.no_fill:
            took = top_up_calls(db, size, now, rng, args.fill)
            print(f"call log filled to {size} rows ({args.fill}) in {took:.1f} s", flush=True)
            analyze(db)
        if not args.no_rollup:
            # the nightly job's "today" is the operators' day (Beijing), not the UTC date:
            # from 16:00 UTC on, the UTC date would leave yesterday (Beijing) to raw rows
            n_days, took = rebuild_rollup(db, stats.local_day(now, stats.DEFAULT_TZ))
            print(f"rollup refresh (nightly job): {n_days} day(s) in {took:.1f} s", flush=True)
            analyze(db)
        with db.session() as s:
            total = s.scalar(select(func.count()).select_from(CallLogEntry))
        print(f"store: {db.engine.dialect.name}, {total} call-log rows; the dashboard's year "
              f"{year[0]:%Y-%m-%d %H:%M} to {year[1]:%Y-%m-%d %H:%M} UTC (median and fastest "
              f"of {args.runs} runs)")
        at_size: dict[str, tuple[float, float]] = {}
        for label, who, (a, b) in runs:
            def run(who: Principal = who, a: datetime = a, b: datetime = b):  # type: ignore[no-untyped-def]
                with db.session() as s:
                    return stats.dashboard(s, who, a, b)
            ms, fastest, dash = timed_min(run, args.runs)
            calls = sum(st.calls for st in dash.interfaces)  # type: ignore[attr-defined]
            parts = ", ".join(f"{k} {v:.0f} ms" for k, v in dash.timings.items())  # type: ignore[attr-defined]
            print(f"dashboard, one year, {label}: {ms:.0f} ms, fastest {fastest:.0f} ms "
                  f"({parts}); {calls} calls counted", flush=True)
            at_size[label] = (ms, fastest)
        figures.append((total or 0, at_size))
    if len(figures) > 1:
        base_rows, base = figures[0]
        for rows, got in figures[1:]:
            for label, (ms, fastest) in got.items():
                print(f"scale: dashboard {label} on {rows} rows / on {base_rows} rows: median "
                      f"{ms:.0f} / {base[label][0]:.0f} ms = {ms / base[label][0]:.2f}, fastest "
                      f"{fastest:.0f} / {base[label][1]:.0f} ms = {fastest / base[label][1]:.2f} "
                      f"(target <= 1.5)")
    # 办件时限: the overdue/due-soon list and counts, and a year of on-time rates
    soon = now + timedelta(days=3)
    tz = ZoneInfo("Asia/Shanghai")
    for label, who in (("city-wide", city), ("one county", county)):
        def overdue(who: Principal = who):  # type: ignore[no-untyped-def]
            with db.session() as s:
                return due_rows(s, who, now, soon), due_counts(s, who, now, soon)
        ms, (rows, counts) = timed(overdue, args.runs)  # type: ignore[misc]
        n_over = sum(o for o, _ in counts.values())
        print(f"overdue list, {label}: {ms:.0f} ms ({len(rows)} rows listed, {n_over} overdue "
              f"in {len(counts)} county×item groups)")

        def rates(who: Principal = who):  # type: ignore[no-untyped-def]
            with db.session() as s:
                return on_time_rates(s, who, since, until, tz)
        ms, out = timed(rates, args.runs)
        print(f"on-time rates, one year, {label}: {ms:.0f} ms ({len(out)} county×item×month "
              f"rows)")
    db.dispose()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
