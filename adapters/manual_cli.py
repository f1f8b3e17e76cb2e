"""CLI for the manual-Excel fallback (``hub.py export-manual`` / ``hub.py import-manual``)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from mapping.items import ITEMS


def _fail(message: str) -> int:
    from hub import print_error

    print_error(message)
    return 2


def cmd_export_manual(args: argparse.Namespace) -> int:
    from adapters.manual_excel import export_names, export_workbook, manual_counties
    from hub import CliError, build_hub, check_county, check_item
    from mapping.excel import LOCAL_TZ

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return _fail(f"--out {args.out[:200]!r} 是一个文件，不是目录：请给出导出用的目录")
    hub = build_hub(args.config)
    try:
        check_county(hub, args.county)
        check_item(args.item)
        if args.item is not None and args.item not in ITEMS:
            raise CliError(f"事项 {args.item[:40]!r} 不在人工办理的事项中，"
                           "请换一个事项或不填 --item")
        if args.county is not None and args.county not in manual_counties(hub):
            raise CliError(f"{hub.city.counties[args.county]}（{args.county}）不是人工办理的"
                           "区县（路由表和区划设置都不是人工）：没有可导出的人工办理清单，"
                           "请换一个人工办理的区县")
        xlsx, archive = export_workbook(hub, county=args.county, item=args.item,
                                        show_personal_data=args.show_personal_data)
        stem, _ = export_names(hub, args.county, args.item,
                               datetime.now(UTC).astimezone(LOCAL_TZ).date())
    except CliError as exc:
        return _fail(str(exc))
    finally:
        hub.close()
    stem += datetime.now(UTC).astimezone(LOCAL_TZ).strftime("-%H%M%S")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.xlsx").write_bytes(xlsx)
        (out / f"{stem}-materials.zip").write_bytes(archive)
    except OSError as exc:
        return _fail(f"不能写入 {args.out[:200]!r}: {exc.strerror}（请检查目录权限和磁盘空间）")
    print(f"已导出人工办理清单：{out / (stem + '.xlsx')}（工作簿），"
          f"{out / (stem + '-materials.zip')}（材料）")
    return 0


_EXPORTED = "（请选择 hub.py export-manual 导出的工作簿）"


def _workbook_bytes(path: str) -> bytes:
    """The file's bytes if it is there and looks like an .xlsx (a zip package)."""
    from hub import CliError

    file = Path(path)
    if not file.is_file():
        raise CliError(f"文件不存在: {path[:200]!r}（请核对文件路径）")
    if file.suffix.lower() != ".xlsx":
        raise CliError(f"不是 Excel 工作簿（.xlsx）: {path[:200]!r}{_EXPORTED}")
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise CliError(f"不能读取 {path[:200]!r}: {exc.strerror}（请检查文件权限）") from None
    if not data.startswith(b"PK\x03\x04"):
        raise CliError(f"不是 Excel 工作簿（.xlsx）: {path[:200]!r}{_EXPORTED}")
    return data


def cmd_import_manual(args: argparse.Namespace) -> int:
    from adapters.manual_excel import import_workbook
    from hub import CliError, build_hub

    try:
        data = _workbook_bytes(args.file)
    except CliError as exc:
        return _fail(str(exc))
    hub = build_hub(args.config)
    try:
        report = import_workbook(hub, data, operator=args.operator)
    finally:
        hub.close()
    for sheet, row, reason in report.errors:  # sheetless: the file as a whole is refused
        where = f"工作表 {sheet!r} 第 {row} 行：" if sheet else f"{args.file[:200]}："
        print(f"错误：{where}{reason}", file=sys.stderr)
    if any(sheet for sheet, _, _ in report.errors):
        print(f"未导入任何行：{len(report.errors)} 行有错误，请改正这些行后重新导入",
              file=sys.stderr)
    if report.errors:
        return 1
    if report.skipped:
        print("工作表\t行\t说明")
        for sheet, row, reason in report.skipped:
            print(f"{sheet}\t{row}\t{reason}")
    print(f"导入完成：应用 {report.applied} 个环节，跳过重复 {len(report.skipped)} 行")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    e = sub.add_parser("export-manual", help="导出人工办理清单（Excel 工作簿和材料 JPG 压缩包）",
                       description="导出人工办理区县的待办：每个事项一个工作表，材料为 JPG")
    e.add_argument("--county", help="区县代码（默认：所有人工办理的区县）")
    e.add_argument("--item", help="事项代码（默认：所有事项，每个事项一个工作表）")
    e.add_argument("--out", required=True, help="存放 .xlsx 和 .zip 的目录")
    e.add_argument("--show-personal-data", action="store_true",
                   help="证件号码和电话不脱敏（仅限有权查看个人信息的人员）")
    e.set_defaults(func=cmd_export_manual)

    i = sub.add_parser("import-manual", help="导入已填写的工作簿，应用其中的办理环节",
                       description="导入 export-manual 导出并已填写「新环节」的工作簿："
                                   "全部行无误才应用，否则一行也不应用")
    i.add_argument("file", metavar="工作簿", help="已填写的 .xlsx 工作簿")
    i.add_argument("--operator", default=os.environ.get("HUB_ACTOR") or getpass.getuser(),
                   help="记入审计的经办人（默认：$HUB_ACTOR 或当前系统用户）")
    i.set_defaults(func=cmd_import_manual)
