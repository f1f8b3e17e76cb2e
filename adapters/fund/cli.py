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
from datetime import date
from typing import Any

from sqlalchemy import select


def _hub(args: argparse.Namespace) -> Any:
    from hub import build_hub

    return build_hub(args.config)


def _fail(message: str) -> None:
    from hub import print_error

    print_error(message)


def _actor() -> str:
    return os.environ.get("HUB_ACTOR") or getpass.getuser()


def cmd_login_add(args: argparse.Namespace) -> int:
    from adapters.fund.auth import add_login

    password = os.environ.get("HUB_BANK_PASSWORD")
    if not password:
        password = (getpass.getpass("password: ") if sys.stdin.isatty()
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
    print(f"login {args.bank_code}/{args.username} ready")
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
    print(f"supervised account {args.account_no} saved")
    return 0


def cmd_account_list(args: argparse.Namespace) -> int:
    from adapters.fund.ledger import balance_fen
    from mapping.fund import fen_to_yuan
    from store.fund_models import SupervisedAccount

    hub = _hub(args)
    try:
        with hub.transaction() as s:
            for a in s.scalars(select(SupervisedAccount).order_by(SupervisedAccount.account_no)):
                total_in, total_out = balance_fen(s, a.account_no)
                print(f"{a.account_no}\t{a.bank_code}\t{a.division}\t{a.status}\t"
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
    print(f"house {args.house_code} → {args.account_no} ({args.status})")
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
            print("\n".join(send_reconciliations(hub, settings, day)) or "nothing to send")
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
            print(f"{row.operation} {row.instruction_no} queued (deadline {row.deadline_at:%F})")
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
            for e in s.scalars(select(FundEvent).where(FundEvent.status == "held")
                               .order_by(FundEvent.id)):
                amount = "-" if e.amount_fen is None else fen_to_yuan(e.amount_fen)
                print(f"{e.id}\t{e.created_at:%F %T}\t{e.bank_code}\t{e.serial_no}\t"
                      f"{e.operation}\t{e.account_no or '-'}\t{amount}\t{e.reason}")
    finally:
        hub.close()
    return 0


def add_commands(sub: Any) -> None:
    p = sub.add_parser("bank-account", help="logins of banks and POS terminals")
    ps = p.add_subparsers(dest="action", required=True)
    a = ps.add_parser("add", help="add or reset a login (password: $HUB_BANK_PASSWORD/stdin)")
    a.add_argument("--bank-code", required=True)
    a.add_argument("--username", required=True)
    a.add_argument("--pos", action="store_true", help="a POS login (POS operations only)")
    a.set_defaults(func=cmd_login_add)

    p = sub.add_parser("fund-account", help="the supervised-account registry")
    ps = p.add_subparsers(dest="action", required=True)
    a = ps.add_parser("add", help="register or edit a supervised account")
    a.add_argument("--account-no", required=True)
    for name in ACCOUNT_FIELDS:
        a.add_argument("--" + name.replace("_", "-"))
    a.set_defaults(func=cmd_account_add)
    ps.add_parser("list", help="accounts and balances").set_defaults(func=cmd_account_list)

    p = sub.add_parser("fund-house", help="houses on sale under a supervised account (POS)")
    ps = p.add_subparsers(dest="action", required=True)
    a = ps.add_parser("add")
    a.add_argument("--house-code", required=True)
    a.add_argument("--account-no", required=True)
    a.add_argument("--status", default="on_sale", choices=["on_sale", "withdrawn"])
    a.set_defaults(func=cmd_house_add)

    p = sub.add_parser("fund-instruction", help="send an instruction to a bank")
    p.add_argument("kind", choices=["setup", "cancel", "transfer", "reconcile"])
    for name in ("account-no", "bank-code", "division", "reason", "amount", "payee-account",
                 "payee-name", "approval-no", "developer-name", "developer-uscc",
                 "project-name", "permit-no", "branch-name", "date"):
        p.add_argument("--" + name)
    p.set_defaults(func=cmd_instruction)

    p = sub.add_parser("fund-held", help="notices kept for operators (unknown account, ...)")
    ps = p.add_subparsers(dest="action", required=True)
    ps.add_parser("list").set_defaults(func=cmd_held_list)
