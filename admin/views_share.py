"""The sharing audit (contracts/departments.md section 8): every department query and
push, searchable by department, operator, ID number (its keyed hash), filing number and
time; exported through mapping/cells.py; a monthly summary per department; and the
defaulter rule's switch per item (系统设置)."""

from __future__ import annotations

import io
from typing import Any

from flask import Response, flash, redirect, request, url_for
from openpyxl import Workbook
from sqlalchemy import and_, func, select

from admin.auth import requires
from admin.web import audit, bp, hub, local_date, me, page_args, render, time_range, to_local
from mapping.cells import xlsx_row
from mapping.departments import norm_id
from mapping.items import ITEMS
from mapping.names import known, name
from store import share
from store.models import utcnow
from store.share_models import ShareAccess

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILTERS = ("app_id", "action", "operator", "id_no", "filing_no", "code")
MAX_EXPORT = 50_000
#: The longest time range the page and the export read (days): one year, leap or not.
MAX_RANGE_DAYS = 366


def _where(args: dict[str, str], since: Any, until: Any) -> Any:
    a = ShareAccess
    conds = [a.at >= since, a.at < until]
    if me().divisions is not None:  # scoped operators see their counties' pushes only
        conds.append(me().scope(a.division))
    if args["app_id"]:
        conds.append(a.app_id == args["app_id"][:64])
    if args["action"]:
        conds.append(a.action == args["action"][:32])
    if args["code"]:
        conds.append(a.code == args["code"][:4])
    if args["operator"]:
        conds.append(a.operator_hash == args["operator"][:64])
    if args["id_no"]:
        conds.append(a.asked_hash == norm_id(args["id_no"][:64]))
    if args["filing_no"]:  # within the time range; filing numbers are not personal data
        conds.append(a.returned.contains(args["filing_no"][:64], autoescape=True))
    return and_(*conds)


def _args() -> dict[str, str]:
    return {k: request.args.get(k, "").strip() for k in FILTERS}


def _row(r: ShareAccess) -> list[Any]:
    return [to_local(r.at), name("partners", r.app_id), name("share_actions", r.action),
            r.operator or "", r.purpose or "",
            "证件号（已脱敏）" if r.asked_hash else (r.asked or ""),
            r.returned or "", r.count, name("result_codes", r.code)]


HEADER = ["时间（北京时间）", "部门", "操作", "经办人", "事由", "查询条件", "返回的备案号",
          "记录数", "结果"]


@bp.get("/share")
@requires("view_audit")
def share_audit():  # type: ignore[no-untyped-def]
    args = _args()
    since, until = time_range(31, MAX_RANGE_DAYS)
    page, per = page_args()
    where = _where(args, since, until)
    with hub().transaction() as s:
        total = s.scalar(select(func.count()).select_from(ShareAccess).where(where)) or 0
        rows = [_row(r) for r in s.scalars(select(ShareAccess).where(where)
                                           .order_by(ShareAccess.id.desc())
                                           .offset((page - 1) * per).limit(per))]
        summary = share.monthly_summary(s, since, until, where)
        rules = {item: share.rule_enabled(s, item) for item in share.RULE_ITEMS}
        if args["id_no"]:
            audit(s, "search_by_id_no", "share_access", {"found": total})
    departments = [(d, name("partners", d)) for d in sorted(hub().sharing.departments)]
    for m in summary:
        m["label"] = name("partners", m["app_id"])
    return render("share.html", rows=rows, header=HEADER, total=total, args=args, page=page,
                  per=per, summary=summary, rules=rules, departments=departments,
                  since=local_date(since), until=local_date(until, end=True),
                  actions=sorted(known("share_actions").items()), item_names={
                      i: ITEMS[i].name_zh for i in share.RULE_ITEMS})


@bp.get("/share.xlsx")
@requires("export")
def share_export():  # type: ignore[no-untyped-def]
    me().require("view_audit")
    args = _args()
    since, until = time_range(31, MAX_RANGE_DAYS)
    where = _where(args, since, until)
    wb = Workbook(write_only=True)  # rows streamed to a temporary file, not kept as cells
    ws = wb.create_sheet("共享访问审计")
    ws.append(xlsx_row(ws, HEADER))
    with hub().transaction() as s:
        n = 0
        for r in s.scalars(select(ShareAccess).where(where).order_by(ShareAccess.id)
                           .limit(MAX_EXPORT).execution_options(yield_per=1000)):
            ws.append(xlsx_row(ws, _row(r)))
            n += 1
        sheet = wb.create_sheet("按月汇总")
        sheet.append(xlsx_row(sheet, ["月份（北京时间）", "部门", "查询次数", "返回记录数",
                                      "推送次数", "拒绝次数"]))
        for m in share.monthly_summary(s, since, until, where):
            sheet.append(xlsx_row(sheet, [m["month"], name("partners", m["app_id"]),
                                          m["queries"], m["records"], m["pushes"],
                                          m["refusals"]]))
        audit(s, "export_share_audit", args["app_id"] or "all", {"rows": n})
    buf = io.BytesIO()
    wb.save(buf)
    stamp = to_local(utcnow())[:10].replace("-", "")
    return Response(buf.getvalue(), mimetype=XLSX, headers={
        "Content-Disposition": f'attachment; filename="share-audit-{stamp}.xlsx"'})


@bp.post("/share/rules")
@requires("manage_settings")
def share_rules():  # type: ignore[no-untyped-def]
    if me().divisions is not None:  # the rule holds for every county's filings
        flash("失信被执行人自动不予办理规则对全市所有区县生效，只有全市范围的管理员才能修改",
              "error")
        return redirect(url_for("admin.share_audit"))
    with hub().transaction() as s:
        for item in share.RULE_ITEMS:
            on = request.form.get(item) == "on"
            if share.rule_enabled(s, item) != on:
                share.set_rule(s, item, on, me().username)
                audit(s, "share_rule", item, {"defaulter_refusal": on})
    flash("共享规则已保存", "ok")
    return redirect(url_for("admin.share_audit"))
