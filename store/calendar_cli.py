"""``hub.py due --from DATE --days N``: the due date on the store's working-day calendar,
so an operator can check a deadline by hand (the first working day after DATE is day 1)."""

from __future__ import annotations

import argparse
from datetime import date

from sqlalchemy.exc import OperationalError, ProgrammingError

from mapping.workdays import MAX_COUNT, CalendarMissing

WEEKDAYS = "一二三四五六日"


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"不是有效日期（应为 YYYY-MM-DD）: {text!r}") from None


def _count(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"工作日数应为 0 到 {MAX_COUNT} 的整数: {text!r}")
    return int(text)


def cmd_due(args: argparse.Namespace) -> int:
    from hub import load_config, print_error
    from store.calendar import load, seed_from_package
    from store.db import Database

    db = Database(load_config(args.config).database_url)
    try:
        seed_from_package(db)
        with db.session() as s:
            calendar = load(s)
        due = calendar.add(args.start, args.days)
    except CalendarMissing as exc:
        print_error(str(exc))
        return 2
    except (OperationalError, ProgrammingError):
        print_error("数据库未初始化（请先运行 hub.py migrate）")
        return 2
    finally:
        db.dispose()
    print(f"{due.isoformat()} 星期{WEEKDAYS[due.weekday()]}"
          f"（{args.start.isoformat()} 之后第 {args.days} 个工作日）")
    return 0


def add_commands(subparsers) -> None:  # type: ignore[no-untyped-def]
    p = subparsers.add_parser("due", help="到期日：某日之后第 N 个工作日（含调休）",
                              description="按工作日历计算到期日：起始日之后的第一个工作日为第 1 天")
    p.add_argument("--from", dest="start", type=_day, required=True, help="起始日期 YYYY-MM-DD")
    p.add_argument("--days", type=_count, required=True, help=f"工作日数（0 到 {MAX_COUNT}）")
    p.set_defaults(func=cmd_due)
