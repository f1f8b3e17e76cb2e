"""办件时限: overdue and due-soon sub-cases per county and item (the operator's scope),
on-time rates by month, and the same as an Excel workbook."""

from __future__ import annotations

import io
from datetime import timedelta

from flask import Response, abort, request
from openpyxl import Workbook

from admin.auth import requires
from admin.deadlines import due_counts, due_rows, on_time_rates, soon_limit
from admin.settings import get_setting
from admin.web import audit, bp, hub, me, names, render, to_local
from mapping.cells import xlsx_row
from mapping.items import ITEMS, STAGES
from store.models import utcnow

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: How far back the on-time rates reach (months shown on the page and in the export).
RATE_DAYS = 366


def _query() -> tuple[str | None, str | None]:
    county = request.args.get("county") or None
    item = request.args.get("item") or None
    if county is not None and not me().sees(county):
        abort(404)
    if item is not None and item not in ITEMS:
        abort(404)
    return county, item


def _lists(county: str | None, item: str | None):  # type: ignore[no-untyped-def]
    h, now = hub(), utcnow()
    with h.db.read_session() as s:
        days = int(get_setting(s, "deadline_warning_days"))
        until = soon_limit(h.overrides.current().calendar, now, days, h.overrides.tz)
        rows = due_rows(s, me(), now, until, county, item)
        counts = due_counts(s, me(), now, until, county, item)
        rates = on_time_rates(s, me(), now - timedelta(days=RATE_DAYS), now + timedelta(days=1),
                              h.overrides.tz)
    return days, until, rows, counts, rates


@bp.get("/deadlines")
@requires("view")
def deadlines():  # type: ignore[no-untyped-def]
    county, item = _query()
    days, until, rows, counts, rates = _lists(county, item)
    return render("deadlines.html", county=county, item=item, days=days, until=until,
                  rows=rows, counts=counts, rates=rates,
                  counties=me().visible_counties(hub().city.counties))


@bp.get("/deadlines.xlsx")
@requires("export")
def deadlines_export():  # type: ignore[no-untyped-def]
    county, item = _query()
    days, _, rows, _, rates = _lists(county, item)
    n = names()
    wb = Workbook()
    ws = wb.active
    ws.title = "逾期及即将到期"
    ws.append(xlsx_row(ws, ["状态", "案件编号", "区县", "事项", "当前环节", "收件时间",
                            "承诺时限（工作日）", "到期时间"]))
    for r in rows:
        ws.append(xlsx_row(ws, ["已逾期" if r.overdue else "即将到期", r.case_no,
                   n["counties"].get(r.county_code, r.county_code), n["items"].get(r.item, r.item),
                   STAGES.get(r.stage, r.stage), to_local(r.received_at), r.promised_days,
                   to_local(r.due_at)]))
    rate_ws = wb.create_sheet("按时办结率")
    rate_ws.append(xlsx_row(rate_ws, ["区县", "事项", "月份（北京时间）", "办结数", "按时办结数",
                                      "无时限", "按时办结率"]))
    for r in rates:
        rate_ws.append(xlsx_row(rate_ws, [n["counties"].get(r["county"], r["county"]),
                        n["items"].get(r["item"], r["item"]), r["month"], r["completed"],
                        r["on_time"], r["untimed"],
                        "" if r["rate"] is None else f"{r['rate']:.1%}"]))
    buf = io.BytesIO()
    wb.save(buf)
    with hub().transaction() as s:
        audit(s, "export_deadlines", county or "all", {"item": item, "rows": len(rows)})
    stamp = to_local(utcnow())[:10].replace("-", "")  # the Beijing day
    name = f"deadlines-{county or 'all'}-{item or 'all'}-{stamp}.xlsx"
    return Response(buf.getvalue(), mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
