"""Outgoing messages: list by filter, resubmit one or all that match, with a dry run."""

from __future__ import annotations

from dataclasses import replace

from flask import abort, flash, redirect, request, url_for
from sqlalchemy import and_, false, func, select

from admin.auth import requires
from admin.web import (
    MESSAGE_STATUS,
    BadInput,
    admin_path,
    audit,
    bp,
    hub,
    me,
    page_args,
    parse_dt,
    render,
)
from store.models import Case, OutboxMessage
from store.outbox import MessageFilter, find, held_condition, resubmit

FIELDS = ("item", "division", "interface", "partner", "status", "since", "until")


def _filter(form) -> MessageFilter:  # type: ignore[no-untyped-def]
    """A MessageFilter from a form, narrowed to the principal's divisions."""
    status = form.get("status") or "dead"
    if status not in ("dead", "done"):
        abort(400, description="只能重新提交失败或已送达的报文")
    ids = tuple(int(x) for x in form.getlist("id") if x.isdigit())
    division = form.get("division") or None
    if division is not None and not me().sees(division):
        abort(404)
    if division is None and me().divisions is not None:
        if len(me().divisions) != 1:
            abort(400, description="请选择一个区县")
        division = next(iter(me().divisions))
    return MessageFilter(
        ids=ids, item=form.get("item") or None, division=division,
        interface=form.get("interface") or None, partner=form.get("partner") or None,
        statuses=(status,), since=parse_dt(form.get("since")),
        until=parse_dt(form.get("until"), end=True))


@bp.get("/messages")
@requires("view")
def messages():  # type: ignore[no-untyped-def]
    args = {k: request.args.get(k, "").strip() for k in FIELDS}
    page, per = page_args()
    m = OutboxMessage
    conds = [me().scope(m.division)]
    for key in ("item", "division", "interface", "partner"):
        if args[key]:
            conds.append(getattr(m, key) == args[key])
    if args["status"] == "held":
        conds += [m.status == "pending", held_condition()]
    elif args["status"]:
        conds.append(m.status == args["status"])
    error = ""
    try:
        since = parse_dt(args["since"], label="开始日期")
        until = parse_dt(args["until"], end=True, label="结束日期")
    except BadInput as exc:  # said on the page; nothing listed
        error, since, until = str(exc), None, None
        conds.append(false())
    if since:
        conds.append(m.created_at >= since)
    if until:
        conds.append(m.created_at < until)
    where = and_(*conds)
    with hub().db.read_session() as s:
        total = s.scalar(select(func.count()).select_from(m).where(where)) or 0
        rows = list(s.scalars(select(m).where(where).order_by(m.id.desc())
                              .offset((page - 1) * per).limit(per)))
        held = set(s.scalars(select(m.id).where(m.id.in_([r.id for r in rows]),
                                                m.status == "pending", held_condition())))
        cases = {mid: no for mid, no in s.execute(
            select(m.id, Case.case_no).join(Case, Case.id == m.case_id)
            .where(m.id.in_([r.id for r in rows])))}
        known = set(s.scalars(select(m.interface).distinct()))
    return render("messages.html", rows=rows, total=total, args=args, page=page, per=per,
                  held=held, statuses=MESSAGE_STATUS, cases=cases, error=error,
                  interfaces=sorted((known | {args["interface"]}) - {""}),
                  partners=sorted({*hub().partners, args["partner"]} - {""}),
                  counties=me().visible_counties(hub().city.counties))


@bp.post("/messages/resubmit")
@requires("resubmit")
def messages_resubmit():  # type: ignore[no-untyped-def]
    """Resubmit by id (``id`` repeatable) or by filter; ``dry_run`` lists what would go."""
    flt = _filter(request.form)
    if not flt.ids and not request.form.get("confirm_filter") and not request.form.get(
            "dry_run"):
        abort(400, description="按条件批量重新提交前请先试运行")
    h = hub()
    with h.transaction() as s:
        if flt.ids and me().divisions is not None:
            # ids outside the scope are dropped (the division condition also applies)
            flt = replace(flt, ids=tuple(r.id for r in find(s, replace(flt, statuses=(
                "dead", "done", "pending", "in_flight")))) or (-1,))
        if request.form.get("dry_run"):
            rows = find(s, flt)
            return render("resubmit_preview.html", rows=rows, form=request.form,
                          statuses=MESSAGE_STATUS)
        ids = resubmit(s, flt, actor=me().username)
        audit(s, "resubmit", ",".join(map(str, ids))[:128], {
            "ids": ids, "filter": {k: v for k, v in request.form.items()
                                   if k not in ("csrf_token",)}})
    if ids:
        flash(f"已重新提交 {len(ids)} 条报文：{', '.join(map(str, ids[:50]))}", "ok")
    else:
        flash("没有需要重新提交的报文（可能已被他人重新提交或正在发送）", "error")
    return redirect(admin_path(request.form.get("back"), url_for("admin.messages")))
