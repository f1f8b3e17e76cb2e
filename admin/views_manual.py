"""Manual work: the manual counties' queues, marking a stage, Excel export and import
(``adapters.manual_excel`` does the work; this page checks who may, and which county)."""

from __future__ import annotations

import io
import zipfile

from flask import Response, abort, flash, redirect, request, url_for
from openpyxl import load_workbook
from sqlalchemy import func, select

from adapters import manual_excel
from admin.auth import requires
from admin.web import audit, bp, hub, me, page_args, render
from mapping.excel import OPERATOR_STAGES, header_map, operator_values, text_of
from store.models import Case


def _manual_counties() -> list[str]:
    """Counties routed manually by the table or by an operator's division setting (a
    county set to auto keeps its queue of earlier manual cases)."""
    routes = [*hub().routes.routes.values(), *hub().routes.effective_routes()]
    return sorted({r.county for r in routes if r.manual and me().sees(r.county)})


def _divisions() -> list[str] | None:
    return None if me().divisions is None else sorted(me().divisions)


@bp.get("/manual")
@requires("view")
def manual():  # type: ignore[no-untyped-def]
    county = request.args.get("county") or None
    item = request.args.get("item") or None
    if county is not None and not me().sees(county):
        abort(404)
    page, per = page_args()
    stmt = manual_excel.work_queue(county, item, _divisions())
    with hub().db.read_session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = list(s.scalars(stmt.offset((page - 1) * per).limit(per)))
        queue = manual_excel.work_queue(None, None, _divisions()).order_by(None).subquery()
        per_county = dict(s.execute(select(queue.c.county_code, func.count())
                                    .group_by(queue.c.county_code)).all())
    return render("manual.html", rows=rows, total=total, page=page, per=per, county=county,
                  item=item, counties=_manual_counties(), stages=OPERATOR_STAGES,
                  per_county=per_county, report=None)


@bp.post("/manual/mark")
@requires("mark_stage")
def manual_mark():  # type: ignore[no-untyped-def]
    case_no = request.form.get("case_no", "").strip()
    with hub().transaction() as s:
        case = s.scalars(select(Case).where(Case.case_no == case_no)).first()
        if case is None or case.parent_id is None or not me().sees(case.county_code):
            abort(404)
    stage = OPERATOR_STAGES.get(request.form.get("stage", ""), request.form.get("stage", ""))
    try:
        outcome = manual_excel.mark_stage(
            hub(), case_no, stage, me().username,
            opinion=request.form.get("opinion") or None,
            filing_no=request.form.get("filing_no") or None)
    except manual_excel.StageRefused as exc:
        flash(f"未能标记：{exc}", "error")
    else:
        if outcome.recorded:
            flash(f"{case_no} 已标记为 {stage}", "ok")
        else:
            flash(f"{case_no} 未改变：{outcome.reason or '重复'}", "error")
    back = request.form.get("back") or ""
    return redirect(back if back.startswith("/admin/") else url_for("admin.manual"))


@bp.get("/manual/export")
@requires("export")
def manual_export():  # type: ignore[no-untyped-def]
    county = request.args.get("county") or None
    item = request.args.get("item") or None
    if county is not None and not me().sees(county):
        abort(404)
    personal = request.args.get("personal") == "1"
    if personal:
        me().require("view_personal_data")
    try:
        xlsx, materials = manual_excel.export_workbook(
            hub(), county, item, show_personal_data=personal, divisions=_divisions())
    except LookupError:
        abort(404)
    with hub().transaction() as s:
        audit(s, "export_manual", county or "all", {"item": item, "personal_data": personal})
    name = f"manual-{county or 'all'}-{item or 'all'}"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{name}.xlsx", xlsx)
        z.writestr(f"{name}-materials.zip", materials)
    return Response(buf.getvalue(), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}.zip"'})


def out_of_scope_rows(data: bytes) -> list[tuple[str, int, str]]:
    """Rows naming a case outside the principal's divisions (checked before importing)."""
    if me().divisions is None or manual_excel.workbook_problem(data) is not None:
        return []  # the import reports an unreadable or oversized file itself
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        return []  # the import reports an unreadable file itself
    wanted: list[tuple[str, int, str]] = []
    try:
        for ws in wb.worksheets:
            lines = ws.iter_rows(values_only=True)
            header = header_map(next(lines, ()) or ())
            for number, line in enumerate(lines, start=2):
                case_no = text_of(operator_values(header, line).get("case_no"))
                if case_no:
                    wanted.append((ws.title, number, case_no))
    finally:
        wb.close()
    with hub().transaction() as s:
        counties = dict(s.execute(select(Case.case_no, Case.county_code).where(
            Case.case_no.in_({c for _, _, c in wanted} or {""}))).all())
    return [(sheet, n, f"案件 {c} 不在您的数据权限范围内") for sheet, n, c in wanted
            if c in counties and not me().sees(counties[c])]


@bp.post("/manual/import")
@requires("mark_stage")
def manual_import():  # type: ignore[no-untyped-def]
    upload = request.files.get("workbook")
    if upload is None or not upload.filename:
        flash("请选择要导入的 Excel 文件", "error")
        return redirect(url_for("admin.manual"))
    data = upload.read()
    errors = out_of_scope_rows(data)
    if errors:
        report = manual_excel.ImportReport(errors=errors)
    else:
        report = manual_excel.import_workbook(hub(), data, me().username)
    with hub().transaction() as s:
        audit(s, "import_manual", upload.filename[:128], {
            "applied": report.applied, "errors": len(report.errors)})
    return render("manual.html", rows=[], total=0, page=1, per=50, county=None, item=None,
                  counties=_manual_counties(), stages=OPERATOR_STAGES, per_county={},
                  report=report)
