"""Interfaces: call counts and last error, enable/disable switches (held messages),
the loaded routing table with a "where would this go" form, and the call log."""

from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, g, redirect, request, url_for
from sqlalchemy import and_, func, select

from admin import stats
from admin.auth import requires
from admin.journey import _open
from admin.switches import set_switch
from admin.web import CALL_OUTCOMES, audit, bp, hub, me, page_args, parse_dt, render
from mapping.names import name as code_name
from routes.explain import why_unrouted
from store.models import CallLogEntry, InterfaceSwitch, OutboxMessage, utcnow
from store.outbox import held_condition


@bp.get("/interfaces")
@requires("view")
def interfaces():  # type: ignore[no-untyped-def]
    h = hub()
    until = utcnow()
    since = until - timedelta(days=7)
    c = CallLogEntry
    with h.db.read_session() as s:
        stat_rows, _ = stats.interface_stats(s, me(), since, until, hub().overrides.tz)
        last_ids = dict(s.execute(
            select(c.interface, func.max(c.id))
            .where(c.outcome != "ok", c.started_at >= until - timedelta(days=30),
                   me().scope(c.division))
            .group_by(c.interface)).all())
        last_errors = {r.interface: r for r in s.scalars(
            select(c).where(c.id.in_(list(last_ids.values()) or [-1])))}
        switches = {(w.kind, w.name): w for w in s.scalars(select(InterfaceSwitch))}
        held = dict(s.execute(
            select(OutboxMessage.interface, func.count())
            .where(OutboxMessage.status == "pending", held_condition(),
                   me().scope(OutboxMessage.division))
            .group_by(OutboxMessage.interface)).all())
        known = set(s.scalars(select(OutboxMessage.interface).distinct()))
    by_name = {st.interface: st for st in stat_rows}
    names_ = sorted(known | set(by_name) | {w[1] for w in switches if w[0] == "interface"})
    routes = h.routes.effective_routes()  # with the operators' division settings
    if me().divisions is not None:
        routes = [r for r in routes if me().sees(r.county)]
    return render("interfaces.html", names_=names_, stats=by_name, last_errors=last_errors,
                  switches=switches, held=held, partners=sorted(h.partners), routes=routes,
                  source=h.routes.source, route=None, route_error=None)


@bp.post("/interfaces/switch")
@requires("manage_interfaces")
def interface_switch():  # type: ignore[no-untyped-def]
    kind = request.form.get("kind", "")
    name = request.form.get("name", "").strip()
    enabled = request.form.get("enabled") == "1"
    reason = request.form.get("reason", "").strip()[:500] or None
    if kind not in ("interface", "partner") or not name or len(name) > 64:
        abort(400, description="参数不正确")
    if kind == "partner" and name not in hub().partners:
        abort(400, description="未知的对接方")
    refused = _switch_refused(kind, name)
    if refused:
        flash(refused, "error")
        return redirect(url_for("admin.interfaces"))
    if not enabled and request.form.get("confirm") != "1":  # ask first: messages will wait
        label = code_name("interfaces" if kind == "interface" else "partners", name)
        return render("switch_confirm.html", kind=kind, name=name, label=label,
                      reason=reason or "")
    with hub().transaction() as s:
        set_switch(s, kind, name, enabled, reason)
    if enabled and hub().workers is not None:
        hub().workers.wake()
    label = code_name("interfaces" if kind == "interface" else "partners", name)
    flash(f"{'已启用' if enabled else '已停用'}：{label}", "ok")
    return redirect(url_for("admin.interfaces"))


def _switch_refused(kind: str, name: str) -> str | None:
    """Why the operator may not switch this (None: they may). An interface serves every
    county, so only a city-wide operator switches it; a county operator switches only
    its own county's partner."""
    if me().divisions is None:
        return None
    if kind == "partner" and me().sees(hub().partners[name].division):
        return None
    return ("该接口（或对接方）服务全市或其他区县，只有全市范围的管理员才能停用或启用；"
            "您只能开关本区县的对接方")


@bp.get("/interfaces/route")
@requires("view")
def where_would_it_go():  # type: ignore[no-untyped-def]
    county, item = request.args.get("county", ""), request.args.get("item", "")
    route, error = None, None
    try:
        route = hub().routes.resolve(county, item)
    except LookupError:
        error = why_unrouted(hub().routes, county, item)
    return render("route.html", route=route, error=error, county=county, item=item,
                  source=hub().routes.source)


@bp.get("/calls")
@requires("view")
def calls():  # type: ignore[no-untyped-def]
    keys = ("interface", "outcome", "direction", "division", "case_id", "message_id",
            "since", "until")
    args = {k: request.args.get(k, "").strip() for k in keys}
    page, per = page_args()
    c = CallLogEntry
    conds = [me().scope(c.division)]
    for key in ("interface", "outcome", "direction", "division"):
        if args[key]:
            conds.append(getattr(c, key) == args[key])
    for key in ("case_id", "message_id"):
        if args[key].isdigit():
            conds.append(getattr(c, key) == int(args[key]))
    since = parse_dt(args["since"]) or (utcnow() - timedelta(days=7))
    conds.append(c.started_at >= since)
    if until := parse_dt(args["until"], end=True):
        conds.append(c.started_at < until)
    with hub().db.read_session() as s:
        rows = list(s.scalars(select(c).where(and_(*conds)).order_by(c.started_at.desc())
                              .offset((page - 1) * per).limit(per + 1)))
    return render("calls.html", rows=rows[:per], more=len(rows) > per, args=args, page=page,
                  outcomes=CALL_OUTCOMES)


def _call_or_404(s, call_id: int) -> CallLogEntry:  # type: ignore[no-untyped-def]
    row = s.get(CallLogEntry, call_id)
    if row is None or not me().sees(row.division) and me().divisions is not None:
        abort(404)
    return row


@bp.route("/calls/<int:call_id>", methods=["GET", "POST"])
@requires("view")
def call_detail(call_id: int):  # type: ignore[no-untyped-def]
    reveal = request.method == "POST"
    if reveal:
        me().require("view_personal_data")
        g.reveal = True
    with hub().transaction() as s:
        row = _call_or_404(s, call_id)
        request_text = _open(hub(), row.request_enc, reveal)
        response_text = _open(hub(), row.response_enc, reveal)
        if reveal:
            audit(s, "view_personal_data", f"call:{row.ref_id}", {"call_id": call_id})
    return render("call.html", row=row, request_text=request_text,
                  response_text=response_text, reveal=reveal)
