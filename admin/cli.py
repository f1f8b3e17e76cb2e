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
    from hub import data_cipher, load_config
    from store.db import Database

    config = load_config(args.config)
    try:
        password = _read_password()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not password:
        print("error: no password: set HUB_ADMIN_PASSWORD or give it on stdin", file=sys.stderr)
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
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OperationalError, ProgrammingError) as exc:
        print(f"error: the store is not ready (run `hub.py migrate` first): {exc.orig}",
              file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(f"created administrator {args.username} (role 系统管理员, all divisions)")
    return 0


def _audit(username: str):  # type: ignore[no-untyped-def]
    from store.models import AuditEntry

    return AuditEntry(actor=os.environ.get("HUB_ACTOR") or getpass.getuser(),
                      action="create_admin", target=username)


def add_commands(subparsers) -> None:  # type: ignore[no-untyped-def]
    p = subparsers.add_parser(
        "create-admin", help="create an administrator (password from HUB_ADMIN_PASSWORD or stdin)")
    p.add_argument("--username", required=True)
    p.add_argument("--display-name")
    p.set_defaults(func=cmd_create_admin)
