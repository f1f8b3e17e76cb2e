"""The audit trail: every operator action, searchable."""

from __future__ import annotations

from typing import Any

from flask import request
from markupsafe import Markup
from sqlalchemy import and_, func, select

from admin.auth import requires
from admin.web import bp, codes_zh, hub, me, page_args, parse_dt, render, zh
from store.admin_models import AdminUser, AdminUserDivision
from store.models import AuditEntry

#: An audit target ``<kind>:<code>`` (admin/switches.py) and how its code is named.
TARGET_KINDS = {"partner": ("对接方", "partners"), "interface": ("接口", "interfaces")}


@bp.app_template_filter("audit_target")
def audit_target(target: Any) -> Markup:
    """An audit entry's target in the operators' words, the raw target in a tooltip."""
    text = "" if target is None else str(target)
    kind, _, code = text.partition(":")
    if kind in TARGET_KINDS and code:
        label, catalogue = TARGET_KINDS[kind]
        shown = f"{label} {zh(code, catalogue)}"
    else:
        shown = codes_zh(text)
    return Markup('<span title="{}">{}</span>').format(text, shown)


def _people_inside(s: Any, divisions: frozenset[str]) -> list[str]:
    """The usernames whose whole scope lies inside ``divisions`` (not city-wide): the
    audit has no division of its own, so a scoped auditor sees the entries of their
    county's operators (another county's entries, and the city's, had been listed)."""
    scopes: dict[str, set[str]] = {}
    for username, division in s.execute(
            select(AdminUser.username, AdminUserDivision.division)
            .join(AdminUserDivision, AdminUserDivision.user_id == AdminUser.id)
            .where(AdminUser.all_divisions.is_(False))):
        scopes.setdefault(username, set()).add(division)
    return sorted(name for name, held in scopes.items() if held <= divisions)


@bp.get("/audit")
@requires("view_audit")
def audit_trail():  # type: ignore[no-untyped-def]
    args = {k: request.args.get(k, "").strip()
            for k in ("actor", "action", "target", "since", "until")}
    page, per = page_args()
    a = AuditEntry
    conds = []
    if args["actor"]:
        conds.append(a.actor_hash == args["actor"])  # sealed: found by its blind index
    if args["action"]:
        conds.append(a.action == args["action"])
    if args["target"]:
        conds.append(a.target_hash == args["target"])  # exact: the target is sealed
    if since := parse_dt(args["since"]):
        conds.append(a.at >= since)
    if until := parse_dt(args["until"], end=True):
        conds.append(a.at < until)
    with hub().db.read_session() as s:
        if me().divisions is not None:  # a county's auditor: what its own people did
            conds.append(a.actor_hash.in_(_people_inside(s, me().divisions) or ["-"]))
        where = and_(*conds) if conds else a.id > 0
        total = s.scalar(select(func.count()).select_from(a).where(where)) or 0
        rows = list(s.scalars(select(a).where(where).order_by(a.id.desc())
                              .offset((page - 1) * per).limit(per)))
        actions = sorted(s.scalars(select(a.action).distinct()))
    return render("audit.html", rows=rows, total=total, args=args, page=page, per=per,
                  actions=actions)
