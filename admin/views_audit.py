"""The audit trail: every operator action, searchable."""

from __future__ import annotations

from flask import request
from sqlalchemy import and_, func, select

from admin.auth import requires
from admin.web import bp, hub, page_args, parse_dt, render
from store.models import AuditEntry


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
    where = and_(*conds) if conds else a.id > 0
    with hub().db.read_session() as s:
        total = s.scalar(select(func.count()).select_from(a).where(where)) or 0
        rows = list(s.scalars(select(a).where(where).order_by(a.id.desc())
                              .offset((page - 1) * per).limit(per)))
        actions = sorted(s.scalars(select(a.action).distinct()))
    return render("audit.html", rows=rows, total=total, args=args, page=page, per=per,
                  actions=actions)
