"""Dashboard: statistics for a time range with charts, alerts, and CSV/Excel downloads."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from sqlalchemy import func, select
from werkzeug.routing import BuildError

from admin import charts, stats
from admin.auth import requires
from admin.deadlines import due_counts, soon_limit
from admin.settings import get_setting
from admin.stats import local_day
from admin.web import (
    BadDate,
    audit,
    bp,
    day_start,
    hub,
    local_date,
    local_today,
    me,
    names,
    render,
    time_range,
    zone,
)
from mapping.cells import csv_row, xlsx_row
from store.models import Alert, Case, OutboxMessage, utcnow
from store.outbox import counts_by_status

#: The longest range the dashboard and its exports take (ten years; the rollup answers
#: whole days, the call log the rest, admin/stats.py).
MAX_RANGE_DAYS = 3660


def _dashboard():  # type: ignore[no-untyped-def]
    """The statistics of the asked range (local days); BadDate for a date that is not one."""
    with hub().db.read_session() as s:
        since, until = time_range(int(get_setting(s, "dashboard_days")), MAX_RANGE_DAYS)
        dash = stats.dashboard(s, me(), since, until, zone())
    return dash


@dataclass
class AlertGroup:
    kind: str
    alerts: list[Any]


def alert_link(ref: str | None, message_cases: dict[int, str]) -> tuple[str, str] | None:
    """(label, URL) of what an alert is about: the case of a message, the page of a fund
    event, the deadlines or the calendar; None when there is nothing to open. The URL
    is built by ``url_for`` from a parsed id, never from the stored text."""
    kind, _, rest = (ref or "").partition(":")
    try:
        if kind == "message" and rest.isdigit():
            if int(rest) in message_cases:
                return "查看办件", url_for("admin.case_page", case_no=message_cases[int(rest)],
                                        _anchor=f"message-{int(rest)}")
            return "查看调用记录", url_for("admin.calls", message_id=int(rest))
        if kind.startswith("fund_"):
            return "查看资金监管", url_for("admin.fund")
        if kind == "deadlines":
            return "查看办件时限", url_for("admin.deadlines")
        if kind == "calendar":
            return "查看工作日历", url_for("admin.settings_calendar")
    except BuildError:
        return None
    return None


def open_alerts(s) -> tuple[list[AlertGroup], dict[int, tuple[str, str] | None], int]:  # type: ignore[no-untyped-def]
    """The unacknowledged alerts in scope, grouped by kind (the most recent first), with
    their links; and how many there are in all."""
    where = (Alert.acknowledged_at.is_(None), me().scope(Alert.division))
    total = s.scalar(select(func.count()).select_from(Alert).where(*where)) or 0
    alerts = list(s.scalars(select(Alert).where(*where)
                            .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(200)))
    ids = [int(a.ref[8:]) for a in alerts
           if (a.ref or "").startswith("message:") and a.ref[8:].isdigit()]
    cases: dict[int, str] = {}
    if ids:
        cases = {mid: no for mid, no in s.execute(
            select(OutboxMessage.id, Case.case_no).join(Case, Case.id == OutboxMessage.case_id)
            .where(OutboxMessage.id.in_(ids)))}
    groups: dict[str, AlertGroup] = {}
    for a in alerts:
        groups.setdefault(a.kind, AlertGroup(a.kind, [])).alerts.append(a)
    links = {a.id: alert_link(a.ref, cases) for a in alerts}
    return list(groups.values()), links, total


def deadline_totals(s) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(overdue, due soon) open sub-cases in the operator's scope (办件时限)."""
    h, now = hub(), utcnow()
    days = int(get_setting(s, "deadline_warning_days"))
    until = soon_limit(h.overrides.current().calendar, now, days, h.overrides.tz)
    counts = due_counts(s, me(), now, until).values()
    return sum(o for o, _ in counts), sum(n for _, n in counts)


@bp.get("/")
@requires("view")
def dashboard():  # type: ignore[no-untyped-def]
    error = ""
    try:
        dash = _dashboard()
    except BadDate as exc:  # say so where the operator looks, and show the default range
        error = str(exc)
        with hub().transaction() as s:
            until = day_start(local_today() + timedelta(days=1))
            since = until - timedelta(days=int(get_setting(s, "dashboard_days")))
            dash = stats.dashboard(s, me(), since, until, zone())
    n = names()
    with hub().db.read_session() as s:
        groups, links, total = open_alerts(s)
        queue = counts_by_status(s) if me().divisions is None else None
        deadlines = deadline_totals(s)
        today = _today_counts(s)
    days = charts.fill_days(dash.calls_by_day, local_day(dash.since, zone()),
                            local_day(dash.until - timedelta(seconds=1), zone()))
    return render(
        "dashboard.html", dash=dash, groups=groups, links=links, alert_total=total,
        queue=queue, deadlines=deadlines, error=error, today=today,
        today_date=local_today().isoformat(),
        since=request.args.get("since", "") if error else local_date(dash.since),
        until=request.args.get("until", "") if error else local_date(dash.until, end=True),
        chart_item=charts.bars(dash.cases_by_item, n["items"]),
        chart_div=charts.bars(dash.cases_by_division, n["counties"]),
        chart_stage=charts.bars(dash.cases_by_stage, n["stages"]),
        chart_outcome=charts.bars(dash.messages_by_outcome, n["outcomes"],
                                  colors=OUTCOME_COLORS),
        chart_days=charts.day_series(days))


#: Outcome colours that mean something: failed red, held amber, retrying orange.
OUTCOME_COLORS = {"succeeded": "#3d8b3d", "retrying": "#e67e22", "queued": "#7f8c8d",
                  "held": "#f0ad00", "dead": "#c0392b"}


def _today_counts(s) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Today's (the operators' day) new applications and sub-cases in scope."""
    start = day_start(local_today())
    end = day_start(local_today() + timedelta(days=1))
    base = (Case.created_at >= start, Case.created_at < end)
    parents = select(func.count()).select_from(Case).where(*base, Case.parent_id.is_(None))
    if me().divisions is not None:
        parents = parents.where(Case.id.in_(select(Case.parent_id).where(
            *base, me().scope(Case.county_code))))
    subs = select(func.count()).select_from(Case).where(*base, Case.county_code != "",
                                                        me().scope(Case.county_code))
    return {"applications": s.scalar(parents) or 0, "sub_cases": s.scalar(subs) or 0}


@bp.get("/stats.<fmt>")
@requires("export")
def stats_download(fmt: str):  # type: ignore[no-untyped-def]
    if fmt not in ("csv", "xlsx"):
        abort(404)
    dash = _dashboard()  # a bad date: the error page says which (admin/web.py)
    rows = stats.stats_rows(dash, names())
    name = f"stats-{local_date(dash.since)}-{local_date(dash.until, end=True)}.{fmt}"
    with hub().transaction() as s:
        audit(s, "export_stats", name, dict(request.args))
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf).writerows(csv_row(r) for r in rows)
        data = ("\ufeff" + buf.getvalue()).encode("utf-8")
        mimetype = "text/csv; charset=utf-8"
    else:
        from openpyxl import Workbook

        wb = Workbook()
        ws = wb.active
        ws.title = "统计"
        for r in rows:
            ws.append(xlsx_row(ws, r))
        out = io.BytesIO()
        wb.save(out)
        data = out.getvalue()
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(data, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _ack(s, alert: Alert) -> None:  # type: ignore[no-untyped-def]
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = utcnow(), me().username
        audit(s, "ack_alert", str(alert.id), {"kind": alert.kind, "title": alert.title})


@bp.post("/alerts/<int:alert_id>/ack")
@requires("view")
def ack_alert(alert_id: int):  # type: ignore[no-untyped-def]
    with hub().transaction() as s:
        alert = s.get(Alert, alert_id)
        if alert is None or not me().sees(alert.division):
            abort(404)
        _ack(s, alert)
    return redirect(url_for("admin.dashboard", _anchor="alerts"))


#: At most this many alerts acknowledged by one form.
MAX_BULK_ACK = 200


@bp.post("/alerts/ack")
@requires("view")
def ack_alerts():  # type: ignore[no-untyped-def]
    """Acknowledge the ticked alerts (``id`` repeated), or every open alert of one type
    (``kind``, the group's button): only open ones the operator may see, at most
    ``MAX_BULK_ACK``; anything else in the form is ignored, nothing else changes."""
    kind = request.form.get("kind", "")[:32]
    raw = request.form.getlist("id")
    ids = sorted({int(x) for x in raw[:MAX_BULK_ACK] if x.isascii() and x.isdigit()
                  and len(x) <= 12})
    where = [Alert.acknowledged_at.is_(None), me().scope(Alert.division)]
    if kind:
        where.append(Alert.kind == kind)
    elif ids:
        where.append(Alert.id.in_(ids))
    else:
        flash("请先勾选要确认的告警，或点击某一类告警的“确认本类全部”", "error")
        return redirect(url_for("admin.dashboard", _anchor="alerts"))
    with hub().transaction() as s:
        alerts = list(s.scalars(select(Alert).where(*where).order_by(Alert.id)
                                .limit(MAX_BULK_ACK)))
        for alert in alerts:
            _ack(s, alert)
    flash(f"已确认 {len(alerts)} 条告警", "ok")
    return redirect(url_for("admin.dashboard", _anchor="alerts"))
