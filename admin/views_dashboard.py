"""Dashboard: statistics for a time range with charts, alerts, and CSV/Excel downloads."""

from __future__ import annotations

import csv
import io

from flask import Response, abort, redirect, request, url_for
from sqlalchemy import select

from admin import charts, stats
from admin.auth import requires
from admin.deadlines import due_counts, soon_limit
from admin.settings import get_setting
from admin.web import audit, bp, hub, local_date, me, names, render, time_range
from mapping.cells import csv_row, xlsx_row
from store.models import Alert, utcnow
from store.outbox import counts_by_status


def _dashboard():  # type: ignore[no-untyped-def]
    with hub().db.read_session() as s:
        since, until = time_range(int(get_setting(s, "dashboard_days")))
        dash = stats.dashboard(s, me(), since, until)
    return dash


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
    dash = _dashboard()
    n = names()
    with hub().db.read_session() as s:
        alerts = list(s.scalars(
            select(Alert).where(Alert.acknowledged_at.is_(None), me().scope(Alert.division))
            .order_by(Alert.created_at.desc()).limit(50)))
        queue = counts_by_status(s) if me().divisions is None else None
        deadlines = deadline_totals(s)
    return render(
        "dashboard.html", dash=dash, alerts=alerts, queue=queue, deadlines=deadlines,
        since=local_date(dash.since), until=local_date(dash.until, end=True),
        chart_item=charts.bars(dash.cases_by_item, n["items"]),
        chart_div=charts.bars(dash.cases_by_division, n["counties"]),
        chart_stage=charts.bars(dash.cases_by_stage, n["stages"]),
        chart_outcome=charts.bars(dash.messages_by_outcome, n["outcomes"], color="#5b8c3a"),
        chart_days=charts.day_series(dash.calls_by_day))


@bp.get("/stats.<fmt>")
@requires("export")
def stats_download(fmt: str):  # type: ignore[no-untyped-def]
    if fmt not in ("csv", "xlsx"):
        abort(404)
    dash = _dashboard()
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


@bp.post("/alerts/<int:alert_id>/ack")
@requires("view")
def ack_alert(alert_id: int):  # type: ignore[no-untyped-def]
    with hub().transaction() as s:
        alert = s.get(Alert, alert_id)
        if alert is None or not me().sees(alert.division):
            abort(404)
        if alert.acknowledged_at is None:
            alert.acknowledged_at, alert.acknowledged_by = utcnow(), me().username
            audit(s, "ack_alert", str(alert_id), {"kind": alert.kind, "title": alert.title})
    return redirect(url_for("admin.dashboard"))
