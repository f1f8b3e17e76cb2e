"""``hub.py create-admin``: create the first operator account (no default password).

The password is read from ``HUB_ADMIN_PASSWORD`` or, if unset, from stdin (asked twice
on a terminal); it is never an argument, so it stays out of shell history and ``ps``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from sqlalchemy.exc import OperationalError, ProgrammingError


def _read_password() -> str:
    env = os.environ.get("HUB_ADMIN_PASSWORD")
    if env:
        return env
    if sys.stdin.isatty():
        first = getpass.getpass("新密码: ")
        if getpass.getpass("再次输入: ") != first:
            raise ValueError("两次输入的密码不一致")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def cmd_create_admin(args: argparse.Namespace) -> int:
    from admin.people import PeopleError, create_user, ensure_admin_role, set_user_access
    from hub import data_cipher, load_config, print_error
    from store.db import Database

    config = load_config(args.config)
    try:
        password = _read_password()
    except ValueError as exc:
        print_error(str(exc))
        return 2
    if not password:
        print_error("没有密码：请设置环境变量 HUB_ADMIN_PASSWORD，或从标准输入给出密码")
        return 2
    db = Database(config.database_url, cipher=data_cipher(config))
    try:
        with db.session() as s:
            role = ensure_admin_role(s)
            user = create_user(s, args.username, args.display_name or args.username, password,
                               all_divisions=True)
            set_user_access(s, user, [role.id], [], [])
            s.add(_audit(args.username))
    except PeopleError as exc:
        print_error(str(exc))
        return 2
    except (OperationalError, ProgrammingError) as exc:
        print_error(f"数据库未就绪：请先运行 hub.py migrate（{type(exc.orig).__name__}）")
        return 2
    finally:
        db.dispose()
    print(f"已创建管理员 {args.username}（角色：系统管理员，数据权限：全市所有区划）")
    return 0


def _audit(username: str):  # type: ignore[no-untyped-def]
    from store.models import AuditEntry

    return AuditEntry(actor=os.environ.get("HUB_ACTOR") or getpass.getuser(),
                      action="create_admin", target=username)


def add_commands(subparsers) -> None:  # type: ignore[no-untyped-def]
    p = subparsers.add_parser(
        "create-admin", help="创建管理员（密码取自 HUB_ADMIN_PASSWORD 或标准输入）",
        description="创建全市范围的系统管理员；密码取自环境变量 HUB_ADMIN_PASSWORD，"
                    "未设置时从标准输入读取（终端上输入两次）")
    p.add_argument("--username", required=True, help="登录用户名")
    p.add_argument("--display-name", help="显示姓名（默认同用户名）")
    p.set_defaults(func=cmd_create_admin)
