"""Case search and the case journey page (masked unless the role may see personal data)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, g, redirect, request, url_for
from sqlalchemy import and_, func, select

from admin import casefile, journey
from admin.auth import requires
from admin.reprocess import ReprocessRefused, reprocess_sub_case
from admin.settings import promised_days
from admin.web import (
    BadDate,
    BadInput,
    audit,
    bp,
    hub,
    me,
    page_args,
    parse_dt,
    render,
    to_local,
    zh,
)
from store.models import Case

FILTERS = ("apply_no", "case_no", "item", "county", "stage", "since", "until", "id_no")
#: The longest text a number field takes (apply numbers are at most 64 characters).
MAX_NUMBER = 64


def _number_filter(column, text: str, label: str):  # type: ignore[no-untyped-def]
    """Part of an apply or case number matches anywhere in it (LIKE, escaped)."""
    text = text.strip()
    if len(text) > MAX_NUMBER:
        raise BadInput(f"{label}最多 {MAX_NUMBER} 个字符，请缩短后再查询")
    return column.contains(text, autoescape=True)


def case_query(args):  # type: ignore[no-untyped-def]
    """The WHERE clause of a case search, always within the principal's divisions;
    BadInput (a Chinese message) for a date or number the search cannot take."""
    conds = [me().scope(Case.county_code)]
    if me().divisions is None:
        conds = []
    if args.get("apply_no"):
        conds.append(_number_filter(Case.apply_no, args["apply_no"], "申请编号"))
    if args.get("case_no"):
        conds.append(_number_filter(Case.case_no, args["case_no"], "案件编号"))
    if args.get("item"):
        conds.append(Case.item == args["item"])
    if args.get("county"):
        conds.append(Case.county_code == args["county"])
    if args.get("stage"):
        conds.append(Case.stage == args["stage"])
    since = parse_dt(args.get("since"), label="开始日期")
    until = parse_dt(args.get("until"), end=True, label="结束日期")
    if since and until and since >= until:
        raise BadDate("开始日期晚于结束日期，请重新选择")
    if since:
        conds.append(Case.created_at >= since)
    if until:
        conds.append(Case.created_at < until)
    if args.get("id_no"):
        conds.append(Case.applicant_id_hash == hub().cipher.id_hash(args["id_no"]))
    return and_(*conds)


@bp.get("/cases")
@requires("view")
def cases():  # type: ignore[no-untyped-def]
    args = {k: request.args.get(k, "").strip() for k in FILTERS}
    page, per = page_args()
    rows, total, error = [], 0, ""
    searched = bool(any(args.values()) or request.args.get("all"))
    try:
        where = case_query(args) if searched else None
    except BadInput as exc:  # said where the operator looks; nothing searched
        error, searched, where = str(exc), False, None
    if where is not None:
        with hub().transaction() as s:
            total = s.scalar(select(func.count()).select_from(Case).where(where)) or 0
            rows = list(s.scalars(select(Case).where(where).order_by(Case.id.desc())
                                  .offset((page - 1) * per).limit(per)))
            if args["id_no"]:
                audit(s, "search_by_id_no", "", {
                    "id_hash": (hub().cipher.id_hash(args["id_no"]) or "")[:12],
                    "found": total})
    return render("cases.html", rows=rows, total=total, args=args, page=page, per=per,
                  searched=searched, error=error,
                  counties=me().visible_counties(hub().city.counties))


def _case_or_404(s, case_no: str) -> Case:  # type: ignore[no-untyped-def]
    case = journey.visible_case(s, me(), case_no)
    if case is None:
        abort(404)
    return case


@bp.get("/cases/<case_no>")
@requires("view")
def case_page(case_no: str):  # type: ignore[no-untyped-def]
    with hub().db.read_session() as s:
        case = _case_or_404(s, case_no)
        j = journey.build(s, hub(), me(), case, reveal=False)
        promised = promised_days(s, case.item)
        seizures = hub().sharing.warnings_for(s, case)  # 查封 (departments.md)
    return render("case.html", j=j, reveal=False, promised=promised, seizures=seizures,
                  fields=casefile.form(j.payload, zh_named))


@bp.post("/cases/<case_no>/reveal")
@requires("view_personal_data")
def case_reveal(case_no: str):  # type: ignore[no-untyped-def]
    g.reveal = True
    with hub().transaction() as s:
        case = _case_or_404(s, case_no)
        j = journey.build(s, hub(), me(), case, reveal=True)
        audit(s, "view_personal_data", case.case_no,
              {"reason": request.form.get("reason", "")[:200]})
        promised = promised_days(s, case.item)
        seizures = hub().sharing.warnings_for(s, case)  # 查封 (departments.md)
    return render("case.html", j=j, reveal=True, promised=promised, seizures=seizures,
                  fields=casefile.form(j.payload, zh_named))


def zh_named(kind: str, code: str) -> str:
    """A code in the application form by its name (cities by the division table)."""
    if kind == "cities":
        return hub().city.name if code == hub().city.code else code
    if kind == "time":  # an ISO time in the operators' zone; anything else as it is
        try:
            value = datetime.fromisoformat(code)
        except ValueError:
            return code
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return to_local(value)
    return zh(code, kind)


@bp.post("/cases/<case_no>/reprocess")
@requires("resubmit")
def case_reprocess(case_no: str):  # type: ignore[no-untyped-def]
    h = hub()
    try:
        with h.transaction() as s:
            case = _case_or_404(s, case_no)
            mid = reprocess_sub_case(s, h, case)
            audit(s, "reprocess", case.case_no, {"message_id": mid,
                                                 "what": "re-queued the county delivery"})
        flash(f"已重新排队投递到区县：报文 #{mid}", "ok")
    except ReprocessRefused as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.case_page", case_no=case_no))
