"""Benchmark: export and import of the manual work queue (10,000 open cases by default).

Prints the time and peak traced memory (tracemalloc) of each, and the process's peak RSS
(resource.getrusage). Target: each under 10 s and 300 MB.

    python bench/excel.py [--cases 10000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openpyxl  # noqa: E402
import yaml  # noqa: E402

from adapters.case_plan import open_case  # noqa: E402
from adapters.manual_excel import export_workbook, import_workbook  # noqa: E402
from hub import Hub, load_config  # noqa: E402
from mapping.canonical import Applicant, CanonicalCase  # noqa: E402
from store.crypto import new_master_key  # noqa: E402
from store.db import Database  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COUNTY = "511725"  # 渠县: manual


def make_hub(directory: Path) -> Hub:
    url = f"sqlite:///{directory / 'bench.db'}"
    db = Database(url)
    db.migrate()
    db.dispose()
    secrets = directory / "secrets.json"
    secrets.write_text(json.dumps({"data_key": new_master_key(), "partners": {}}))
    config = {"city": "511700", "database_url": url, "secrets_file": str(secrets),
              "routing_table": str(ROOT / "routes/tables/dazhou.yaml"),
              "partners": {f"county_{c}": {"base_url": "http://127.0.0.1:9", "division": c}
                           for c in ("511702", "511703", "511722", "511724", "511781")}
              | {"province": {"base_url": "http://127.0.0.1:9"}},
              "retry_policies": {"query": {"max_attempts": 3}, "province": {"max_attempts": 3}},
              "inbound": []}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return Hub(load_config(path))


def seed(hub: Hub, n: int) -> None:
    with hub.transaction() as s:
        for i in range(n):
            open_case(s, hub, CanonicalCase(
                item="rental_filing", apply_no=f"BENCH-{i:06d}", city_code="511700",
                county_codes=[COUNTY],
                applicant=Applicant("张三", "1", "11010519491231002X", phone="13800138000"),
                submitted_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
                data={"lessee_name": "张三", "lessee_id_no": "11010519491231002X",
                      "lessor_name": "李四", "lessor_id_no": "510722198001010016",
                      "house_id": f"H-{i:06d}", "address": f"渠县渠江镇文化路{i}号"}))


def fill_in(xlsx: bytes) -> bytes:
    """An operator marks every case 受理 (done with openpyxl's fast modes)."""
    src = openpyxl.load_workbook(io.BytesIO(xlsx), read_only=True)
    out = openpyxl.Workbook(write_only=True)
    for ws in src.worksheets:
        dst = out.create_sheet(ws.title)
        rows = ws.iter_rows(values_only=True)
        header = list(next(rows))
        stage_col, op_col = header.index("新环节"), header.index("经办人")
        dst.append(header)
        for row in rows:
            row = list(row) + [None] * (len(header) - len(row))
            row[stage_col], row[op_col] = "受理", "bench"
            dst.append(row)
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def traced_peak(fn) -> int:  # type: ignore[no-untyped-def]
    """Peak Python memory of a second run (tracemalloc slows the run, so it is not timed)."""
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=10_000)
    p.add_argument("--keep", help="write the workbook here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = make_hub(Path(tmp))
        t0 = time.perf_counter()
        seed(hub, args.cases)
        print(f"seeded {args.cases} open manual cases in {time.perf_counter() - t0:.1f} s")
        (xlsx, _zip), t_exp = timed(lambda: export_workbook(hub, COUNTY, "rental_filing"))
        m_exp = traced_peak(lambda: export_workbook(hub, COUNTY, "rental_filing"))
        print(f"export   {t_exp:7.2f} s   peak traced {m_exp / 2**20:7.1f} MB   "
              f"workbook {len(xlsx) / 2**20:.1f} MB", flush=True)
        if args.keep:
            Path(args.keep).write_bytes(xlsx)
        filled = fill_in(xlsx)
        report, t_imp = timed(lambda: import_workbook(hub, filled, "bench"))
        assert report.ok and report.applied == args.cases, report.errors[:5]
        # the traced second import reads and checks every row again (each is then a repeat)
        m_imp = traced_peak(lambda: import_workbook(hub, filled, "bench"))
        print(f"import   {t_imp:7.2f} s   peak traced {m_imp / 2**20:7.1f} MB   "
              f"({report.applied} stages recorded and queued)", flush=True)
        hub.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS {rss:.0f} MB   (load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs)")
    ok = max(t_exp, t_imp) < 10 and max(m_exp, m_imp) < 300 * 2**20 and rss < 300
    print(f"target (each < 10 s and < 300 MB): {'met' if ok else 'NOT met'}")
    print(f"per case: export {t_exp / args.cases * 1e3:.2f} ms, "
          f"import {t_imp / args.cases * 1e3:.2f} ms")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
