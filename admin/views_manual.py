"""Manual work: the manual counties' queues, marking a stage, Excel export and import
(``adapters.manual_excel`` does the work; this page checks who may, and which county)."""

from __future__ import annotations

import io
import tempfile
from datetime import UTC, datetime
from urllib.parse import quote

from flask import Response, abort, flash, redirect, request, url_for
from openpyxl import load_workbook
from sqlalchemy import func, select

from adapters import manual_excel
from admin.auth import requires
from admin.web import audit, bp, hub, me, page_args, render
from mapping.excel import (
    LOCAL_TZ,
    OPERATOR_STAGES,
    explain,
    explain_outcome,
    header_map,
    operator_values,
    stage_label,
    text_of,
)
from store.models import Case

#: An export is spooled in memory up to this size, then to a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024


def _manual_counties() -> list[str]:
    return [c for c in manual_excel.manual_counties(hub()) if me().sees(c)]


def _divisions() -> list[str] | None:
    return None if me().divisions is None else sorted(me().divisions)


@bp.get("/manual")
@requires("view")
def manual():  # type: ignore[no-untyped-def]
    county = request.args.get("county") or None
    item = request.args.get("item") or None
    if county is not None and not me().sees(county):
        abort(404)
    return _queue_page(county, item, None)


def _queue_page(county: str | None, item: str | None,
                report: manual_excel.ImportReport | None) -> str:
    """The queue with its per-county counts, read now (after an import too)."""
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
                  per_county=per_county, report=report)


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
        flash("未能标记：" + "；".join(explain(f, r) for f, r in exc.errors), "error")
    else:
        if outcome.recorded:
            flash(f"{case_no} 已标记为 {stage_label(stage)}", "ok")
        else:
            flash(f"{case_no} 未改变：{explain_outcome(outcome.reason or 'already recorded')}",
                  "error")
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
    if item is not None and item not in manual_excel.ITEMS:
        abort(404)
    if county is not None and county not in _manual_counties():
        abort(404)
    day = datetime.now(UTC).astimezone(LOCAL_TZ).date()  # the operators' (Beijing) date
    stem, stem_zh = manual_excel.export_names(hub(), county, item, day)
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (streamed)
    manual_excel.export_bundle(hub(), out, stem, county, item, show_personal_data=personal,
                               divisions=_divisions())
    with hub().transaction() as s:
        audit(s, "export_manual", county or "all", {"item": item, "personal_data": personal})
    size = out.tell()
    out.seek(0)

    def chunks():  # type: ignore[no-untyped-def]
        try:
            while block := out.read(64 * 1024):
                yield block
        finally:
            out.close()

    disposition = (f'attachment; filename="{stem}.zip"; '
                   f"filename*=UTF-8''{quote(stem_zh + '.zip', safe='')}")
    token = request.args.get("token", "")
    resp = Response(chunks(), mimetype="application/zip", headers={
        "Content-Disposition": disposition, "Content-Length": str(size)})
    if token.isalnum() and len(token) <= 32:  # the page's "导出完成" notice (manual.js)
        resp.set_cookie("manual_export_done", token, max_age=300, path="/admin/",
                        samesite="Strict", secure=request.is_secure)
    return resp


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
    return _queue_page(None, None, report)
