"""Operator commands for fund supervision (added to ``hub.py`` by ``add_commands``).

    hub.py bank-account add --bank-code ICBC --username icbc-front [--pos]
        (password from $HUB_BANK_PASSWORD, else read from stdin)
    hub.py fund-account add --account-no ... --bank-code ICBC --division 511702 ...
    hub.py fund-account list
    hub.py fund-house add --house-code ... --account-no ...
    hub.py fund-instruction setup|cancel|transfer|reconcile ...
    hub.py fund-held list
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from mapping.names import name


def _hub(args: argparse.Namespace) -> Any:
    from hub import build_hub

    return build_hub(args.config)


def _fail(message: str) -> None:
    from hub import print_error

    print_error(message)


def coded(kind: str, code: str | None) -> str:
    """``中国工商银行（ICBC）``: the catalogue's name with the code beside it."""
    zh = name(kind, code)
    return zh if not code or zh == code else f"{zh}（{code}）"


def _local(hub: Any, at: datetime | None) -> str:
    """A stored (naive UTC) time in the operators' zone (config ``timezone``)."""
    if at is None:
        return "-"
    return at.replace(tzinfo=UTC).astimezone(hub.overrides.tz).strftime("%Y-%m-%d %H:%M")


def _actor() -> str:
    return os.environ.get("HUB_ACTOR") or getpass.getuser()


def cmd_login_add(args: argparse.Namespace) -> int:
    from adapters.fund.auth import add_login

    password = os.environ.get("HUB_BANK_PASSWORD")
    if not password:
        password = (getpass.getpass("密码：") if sys.stdin.isatty()
                    else sys.stdin.readline().rstrip("\n"))
    hub = _hub(args)
    try:
        with hub.transaction() as s:
            add_login(s, args.bank_code, args.username, password,
                      kind="pos" if args.pos else "bank")
            hub.audit(s, _actor(), "fund.login.add", f"{args.bank_code}/{args.username}",
                      {"kind": "pos" if args.pos else "bank"})
    except ValueError as exc:
        _fail(f"银行登录账号未添加：{exc}")
        return 2
    finally:
        hub.close()
    kind = "POS 终端" if args.pos else "银行前置"
    print(f"已设置{name('banks', args.bank_code)}（{args.bank_code}）的{kind}登录账号 "
          f"{args.username}")
    return 0


ACCOUNT_FIELDS = ("bank_code", "division", "account_name", "branch_name", "developer_name",
                  "developer_uscc", "project_name", "permit_no", "status")


def cmd_account_add(args: argparse.Namespace) -> int:
    from store.fund_models import SupervisedAccount

    hub = _hub(args)
    try:
        if args.division and not hub.city.is_county(args.division):
            _fail(f"未知区县 {args.division[:16]!r}：不是{hub.city.name}的区县，"
                  "请在 --division 填写区划表中的区县代码")
            return 2
        with hub.transaction() as s:
            row = s.scalar(select(SupervisedAccount).where(
                SupervisedAccount.account_no == args.account_no))
            if row is None:
                if not (args.bank_code and args.division):
                    _fail(f"监管账户 {args.account_no[:40]} 是新账户：请同时填写 "
                          "--bank-code（银行代码）和 --division（区县代码）")
                    return 2
                row = SupervisedAccount(account_no=args.account_no, bank_code=args.bank_code,
                                        division=args.division)
                s.add(row)
            changed = {k: getattr(args, k) for k in ACCOUNT_FIELDS if getattr(args, k)}
            for key, value in changed.items():
                setattr(row, key, value)
            row.updated_by = _actor()
            hub.audit(s, _actor(), "fund.account.save", args.account_no, changed)
    finally:
        hub.close()
    print(f"已保存监管账户 {args.account_no}")
    return 0


def cmd_account_list(args: argparse.Namespace) -> int:
    from adapters.fund.ledger import balance_fen
    from mapping.fund import fen_to_yuan
    from store.fund_models import SupervisedAccount

    hub = _hub(args)
    try:
        with hub.transaction() as s:
            print("监管账号\t银行\t区县\t状态\t项目\t余额（元）")
            for a in s.scalars(select(SupervisedAccount).order_by(SupervisedAccount.account_no)):
                total_in, total_out = balance_fen(s, a.account_no)
                print(f"{a.account_no}\t{coded('banks', a.bank_code)}\t"
                      f"{hub.city.county_name(a.division)}（{a.division}）\t"
                      f"{coded('fund_account_statuses', a.status)}\t"
                      f"{a.project_name or '-'}\t{fen_to_yuan(total_in - total_out)}")
    finally:
        hub.close()
    return 0


def cmd_house_add(args: argparse.Namespace) -> int:
    from store.fund_models import FundHouse

    hub = _hub(args)
    try:
        with hub.transaction() as s:
            row = s.get(FundHouse, args.house_code) or FundHouse(house_code=args.house_code)
            row.account_no, row.status = args.account_no, args.status
            s.add(row)
            hub.audit(s, _actor(), "fund.house.save", args.house_code,
                      {"account_no": args.account_no, "status": args.status})
    finally:
        hub.close()
    print(f"已保存房屋 {args.house_code} → 监管账户 {args.account_no}"
          f"（{name('house_statuses', args.status)}）")
    return 0


def cmd_instruction(args: argparse.Namespace) -> int:
    from adapters.bank_soap import fund_desk
    from adapters.fund.instructions import issue, send_reconciliations
    from store.fund_models import SupervisedAccount

    hub = _hub(args)
    settings = fund_desk(hub).settings
    try:
        if args.kind == "reconcile":
            day = date.fromisoformat(args.date) if args.date else None
            sent = send_reconciliations(hub, settings, day)
            print("已发出对账指令：" + "、".join(sent) if sent else "没有需要发出的对账指令")
            return 0
        with hub.transaction() as s:
            division = args.division
            if args.account_no:
                acc = s.scalar(select(SupervisedAccount).where(
                    SupervisedAccount.account_no == args.account_no))
                if acc is None:
                    _fail(f"未知监管账户 {args.account_no[:40]!r}：请先用 hub.py fund-account add "
                          "登记该账户，或核对账号")
                    return 2
                division, bank_code = acc.division, acc.bank_code
            else:
                bank_code = args.bank_code
            type_code = {"setup": "04", "cancel": "02", "transfer": "03"}[args.kind]
            fields = {k: getattr(args, k, None) for k in (
                "account_no", "reason", "amount", "payee_account", "payee_name", "approval_no",
                "developer_name", "developer_uscc", "project_name", "permit_no", "branch_name")}
            row = issue(hub, s, settings, type_code, bank_code, fields, division=division,
                        actor=_actor())
            hub.audit(s, _actor(), f"fund.instruction.{args.kind}", row.instruction_no)
            print(f"已排队发送{name('operations', row.operation)}（{row.operation}）"
                  f"{row.instruction_no}，答复期限 {_local(hub, row.deadline_at)}")
    except (ValueError, LookupError) as exc:
        _fail(f"指令未发出：{exc}")
        return 2
    finally:
        hub.close()
    return 0


def cmd_held_list(args: argparse.Namespace) -> int:
    from mapping.fund import fen_to_yuan
    from store.fund_models import FundEvent

    hub = _hub(args)
    try:
        with hub.transaction() as s:
            print("编号\t时间（北京时间）\t银行\t流水号\t业务\t监管账号\t金额（元）\t原因")
            for e in s.scalars(select(FundEvent).where(FundEvent.status == "held")
                               .order_by(FundEvent.id)):
                amount = "-" if e.amount_fen is None else fen_to_yuan(e.amount_fen)
                print(f"{e.id}\t{_local(hub, e.created_at)}\t{coded('banks', e.bank_code)}\t"
                      f"{e.serial_no}\t{name('operations', e.operation)}\t{e.account_no or '-'}\t"
                      f"{amount}\t{e.reason}")
    finally:
        hub.close()
    return 0


#: The Chinese help of each option (the account registry's fields and the instructions').
OPTION_HELP = {
    "account-no": "监管账号", "bank-code": "银行代码（如 ICBC）", "division": "区县代码",
    "account-name": "账户名称", "branch-name": "开户网点", "developer-name": "开发企业名称",
    "developer-uscc": "开发企业统一社会信用代码", "project-name": "项目名称",
    "permit-no": "预售许可证号", "status": "状态", "reason": "原因（撤销监管时填写）",
    "amount": "金额（元）", "payee-account": "收款账号", "payee-name": "收款人名称",
    "approval-no": "拨付审批编号", "date": "对账日期 YYYY-MM-DD（默认前一日）",
}


def add_commands(sub: Any) -> None:
    p = sub.add_parser("bank-account", help="银行与 POS 终端的接入账号")
    ps = p.add_subparsers(dest="action", required=True, title="操作")
    a = ps.add_parser("add", help="新增或重设接入账号（密码取自 $HUB_BANK_PASSWORD 或标准输入）")
    a.add_argument("--bank-code", required=True, help="银行代码（如 ICBC）")
    a.add_argument("--username", required=True, help="登录名")
    a.add_argument("--pos", action="store_true", help="POS 终端账号（只能做 POS 业务）")
    a.set_defaults(func=cmd_login_add)

    p = sub.add_parser("fund-account", help="监管账户登记")
    ps = p.add_subparsers(dest="action", required=True, title="操作")
    a = ps.add_parser("add", help="登记或修改监管账户")
    a.add_argument("--account-no", required=True, help=OPTION_HELP["account-no"])
    for field_name in ACCOUNT_FIELDS:
        option = field_name.replace("_", "-")
        a.add_argument("--" + option, help=OPTION_HELP[option])
    a.set_defaults(func=cmd_account_add)
    ps.add_parser("list", help="监管账户及余额").set_defaults(func=cmd_account_list)

    p = sub.add_parser("fund-house", help="监管账户下在售的房屋（POS 缴款）")
    ps = p.add_subparsers(dest="action", required=True, title="操作")
    a = ps.add_parser("add", help="登记房屋与监管账户的对应")
    a.add_argument("--house-code", required=True, help="房屋编码")
    a.add_argument("--account-no", required=True, help=OPTION_HELP["account-no"])
    a.add_argument("--status", default="on_sale", choices=["on_sale", "withdrawn"],
                   help="on_sale 在售（默认），withdrawn 已撤回")
    a.set_defaults(func=cmd_house_add)

    p = sub.add_parser("fund-instruction", help="向银行发送监管指令")
    p.add_argument("kind", choices=["setup", "cancel", "transfer", "reconcile"],
                   help="setup 设立监管，cancel 撤销监管，transfer 拨付，reconcile 对账")
    for option in ("account-no", "bank-code", "division", "reason", "amount", "payee-account",
                   "payee-name", "approval-no", "developer-name", "developer-uscc",
                   "project-name", "permit-no", "branch-name", "date"):
        p.add_argument("--" + option, help=OPTION_HELP[option])
    p.set_defaults(func=cmd_instruction)

    p = sub.add_parser("fund-held", help="暂存待人工处理的资金事件（未知账户等）")
    ps = p.add_subparsers(dest="action", required=True, title="操作")
    ps.add_parser("list", help="列出暂存的资金事件").set_defaults(func=cmd_held_list)
