"""预售项目监管 (Hunan profile, contracts/numbering.md): the register of unified numbers
(searchable), the project register, the two lists (逾期未竣工验收; 已办预售未办施工许可)
in the operator's divisions, an Excel export of all four, and the entry of a project
that has a presale permit but no construction permit (the seed: registered by hand).

The pages belong to the 办件时限 module (their endpoints start with
``admin.deadlines``) and exist only under a profile (else 404).
"""

from __future__ import annotations

import io
from datetime import UTC, date
from typing import Any

from flask import Response, abort, flash, redirect, request, url_for
from openpyxl import Workbook

from admin.auth import requires
from admin.web import audit, bp, hub, me, names, render, to_local
from mapping.cells import xlsx_row
from mapping.numbering import ACCEPTANCE_KINDS, KIND_NAMES, PROJECT_CODE, project_county
from store import numbering as register
from store.models import utcnow

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STATUS_NAMES = {"valid": "有效", "cancelled": "已注销"}


@bp.app_context_processor
def _numbering_flag() -> dict[str, Any]:
    """Pages may link here only when the profile is on."""
    return {"numbering_enabled": hub().numbering.enabled}


def _enabled() -> None:
    if not hub().numbering.enabled:
        abort(404)


def _filters() -> dict[str, str | None]:
    args = request.args
    county = args.get("county") or None
    if county is not None and (county not in hub().city.counties or not me().sees(county)):
        abort(404)
    kind = args.get("kind") or None
    status = args.get("status") or None
    q = (args.get("q") or "").strip()[:40] or None
    return {"county": county, "kind": kind if kind in KIND_NAMES else None,
            "status": status if status in STATUS_NAMES else None, "q": q}


def _today() -> date:
    return utcnow().replace(tzinfo=UTC).astimezone(hub().overrides.tz).date()


def _data(f: dict[str, str | None]) -> dict[str, Any]:
    h = hub()
    with h.transaction() as s:
        from store.numbering_models import IssuedNumber, Project

        numbers = register.search(s, me().scope(IssuedNumber.county_code), f["q"], f["kind"],
                                  f["county"], f["status"])
        projects = register.projects(s, me().scope(Project.county_code), f["county"])
    calendar = h.overrides.current().calendar
    return {"numbers": numbers, "projects": projects,
            "overdue": register.overdue_acceptance(projects, _today(), calendar),
            "no_permit": register.presale_without_permit(projects)}


@bp.get("/presale-projects")
@requires("view")
def deadlines_presale():  # type: ignore[no-untyped-def]
    _enabled()
    f = _filters()
    return render("presale_projects.html", f=f, **_data(f), kinds=KIND_NAMES,
                  statuses=STATUS_NAMES, acceptance_kinds=ACCEPTANCE_KINDS,
                  counties=me().visible_counties(hub().city.counties), today=_today())


@bp.post("/presale-projects/presale-only")
@requires("mark_stage")
def deadlines_presale_only():  # type: ignore[no-untyped-def]
    """登记已办理预售许可但未办理施工许可的项目 (the seed, task 2 (1))."""
    _enabled()
    form = request.form
    county, code = form.get("county") or "", (form.get("project_code") or "").strip()
    name, developer = (form.get("project_name") or "").strip(), \
        (form.get("developer_name") or "").strip()
    if county not in hub().city.counties or not me().sees(county):
        abort(404)
    problems = []
    if not PROJECT_CODE.fullmatch(code):
        problems.append("工改项目编码应为 24 位投资项目统一代码，如 2406-430223-70-01-000001")
    elif project_county(code) != county:
        problems.append("工改项目编码中的区划代码（第 6-11 位）不是所选区县的，请核对")
    if not name or len(name) > 200 or not developer or len(developer) > 200:
        problems.append("项目名称和建设单位必填（各不超过 200 字）")
    try:
        since = date.fromisoformat(form.get("presale_since") or "")
    except ValueError:
        problems.append("预售许可日期应为 YYYY-MM-DD")
    if problems:
        for p in problems:
            flash(p, "error")
        return redirect(url_for("admin.deadlines_presale"))
    with hub().transaction() as s:
        try:
            register.register_presale_only(s, county, code, name, developer, since)
        except register.NotOwn:
            flash("该项目属于其他区县", "error")
            return redirect(url_for("admin.deadlines_presale"))
        audit(s, "register_presale_project", code, {"county": county})
    flash("已登记", "ok")
    return redirect(url_for("admin.deadlines_presale", county=county))


def _project_row(r: register.ProjectRow, n: dict[str, dict[str, str]]) -> list[Any]:
    return [r.project_code, n["counties"].get(r.county_code, r.county_code), r.project_name,
            r.developer_name, r.presale_since.isoformat() if r.presale_since else "",
            r.planned_completion.isoformat() if r.planned_completion else "", r.permits,
            ACCEPTANCE_KINDS.get(r.acceptance_kind or "", ""),
            r.acceptance_date.isoformat() if r.acceptance_date else ""]


PROJECT_HEAD = ["工改项目编码", "区县", "项目名称", "建设单位", "首次预售日期", "计划竣工日期",
                "施工许可证数", "验收类型", "验收日期"]


@bp.get("/presale-projects.xlsx")
@requires("export")
def deadlines_presale_export():  # type: ignore[no-untyped-def]
    _enabled()
    f = _filters()
    data, n = _data(f), names()
    wb = Workbook()
    ws = wb.active
    ws.title = "编号登记簿"
    ws.append(xlsx_row(ws, ["编号", "类型", "区县", "工改项目编码", "所属预售许可证", "发放时间",
                            "状态", "注销时间"]))
    for r in data["numbers"]:
        ws.append(xlsx_row(ws, [r.number, KIND_NAMES.get(r.kind, r.kind),
                                n["counties"].get(r.county_code, r.county_code), r.project_code,
                                r.parent_number or "", to_local(r.issued_at),
                                "已注销" if r.cancelled_at else "有效", to_local(r.cancelled_at)]))
    for title, rows, extra in (("项目登记", data["projects"], False),
                               ("逾期未竣工验收", data["overdue"], True),
                               ("已办预售未办施工许可", data["no_permit"], False)):
        sheet = wb.create_sheet(title)
        sheet.append(xlsx_row(sheet, PROJECT_HEAD + (["逾期工作日数"] if extra else [])))
        for r in rows:
            sheet.append(xlsx_row(sheet, _project_row(r, n) + (
                [r.overdue_working_days if r.overdue_working_days is not None else ""]
                if extra else [])))
    out = io.BytesIO()
    wb.save(out)
    resp = Response(out.getvalue(), mimetype=XLSX)
    resp.headers["Content-Disposition"] = "attachment; filename=presale-projects.xlsx"
    return resp
