"""CLI for the manual-Excel fallback (``hub.py export-manual`` / ``hub.py import-manual``)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import datetime
from pathlib import Path


def cmd_export_manual(args: argparse.Namespace) -> int:
    from adapters.manual_excel import export_workbook
    from hub import build_hub

    hub = build_hub(args.config)
    try:
        xlsx, archive = export_workbook(hub, county=args.county, item=args.item,
                                        show_personal_data=args.show_personal_data)
    except LookupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    finally:
        hub.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"manual-{args.county or 'all'}-{args.item or 'all'}-{datetime.now():%Y%m%d%H%M%S}"
    (out / f"{stem}.xlsx").write_bytes(xlsx)
    (out / f"{stem}-materials.zip").write_bytes(archive)
    print(f"wrote {out / (stem + '.xlsx')} and {out / (stem + '-materials.zip')}")
    return 0


def cmd_import_manual(args: argparse.Namespace) -> int:
    from adapters.manual_excel import import_workbook
    from hub import build_hub

    data = Path(args.file).read_bytes()
    hub = build_hub(args.config)
    try:
        report = import_workbook(hub, data, operator=args.operator)
    finally:
        hub.close()
    for sheet, row, reason in report.errors:
        print(f"error: sheet {sheet!r} row {row}: {reason}", file=sys.stderr)
    if report.errors:
        print(f"nothing applied: {len(report.errors)} bad row(s)", file=sys.stderr)
        return 1
    for sheet, row, reason in report.skipped:
        print(f"skipped: sheet {sheet!r} row {row}: {reason}")
    print(f"applied {report.applied} stage(s), skipped {len(report.skipped)}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    e = sub.add_parser("export-manual", help="export the manual work queue to Excel (+ JPG zip)")
    e.add_argument("--county", help="division code (default: every manual county)")
    e.add_argument("--item", help="item code (default: every item, one sheet each)")
    e.add_argument("--out", required=True, help="directory for the .xlsx and the .zip")
    e.add_argument("--show-personal-data", action="store_true",
                   help="ID numbers and phones in clear (only for roles allowed to see them)")
    e.set_defaults(func=cmd_export_manual)

    i = sub.add_parser("import-manual", help="apply the stages filled into an exported workbook")
    i.add_argument("file")
    i.add_argument("--operator", default=os.environ.get("HUB_ACTOR") or getpass.getuser())
    i.set_defaults(func=cmd_import_manual)
