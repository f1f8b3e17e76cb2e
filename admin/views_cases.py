"""Case search and the case journey page (masked unless the role may see personal data)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, request, url_for
from sqlalchemy import and_, func, select

from admin import journey
from admin.auth import requires
from admin.reprocess import ReprocessRefused, reprocess_sub_case
from admin.settings import promised_days
from admin.web import audit, bp, hub, me, page_args, parse_dt, render
from store.models import Case

FILTERS = ("apply_no", "case_no", "item", "county", "stage", "since", "until", "id_no")


def case_query(args):  # type: ignore[no-untyped-def]
    """The WHERE clause of a case search, always within the principal's divisions."""
    conds = [me().scope(Case.county_code)]
    if me().divisions is None:
        conds = []
    if args.get("apply_no"):
        conds.append(Case.apply_no == args["apply_no"].strip())
    if args.get("case_no"):
        conds.append(Case.case_no == args["case_no"].strip())
    if args.get("item"):
        conds.append(Case.item == args["item"])
    if args.get("county"):
        conds.append(Case.county_code == args["county"])
    if args.get("stage"):
        conds.append(Case.stage == args["stage"])
    if since := parse_dt(args.get("since")):
        conds.append(Case.created_at >= since)
    if until := parse_dt(args.get("until"), end=True):
        conds.append(Case.created_at < until)
    if args.get("id_no"):
        conds.append(Case.applicant_id_hash == hub().cipher.id_hash(args["id_no"]))
    return and_(*conds)


@bp.get("/cases")
@requires("view")
def cases():  # type: ignore[no-untyped-def]
    args = {k: request.args.get(k, "").strip() for k in FILTERS}
    page, per = page_args()
    rows, total = [], 0
    if any(args.values()) or request.args.get("all"):
        where = case_query(args)
        with hub().transaction() as s:
            total = s.scalar(select(func.count()).select_from(Case).where(where)) or 0
            rows = list(s.scalars(select(Case).where(where).order_by(Case.id.desc())
                                  .offset((page - 1) * per).limit(per)))
            if args["id_no"]:
                audit(s, "search_by_id_no", "", {
                    "id_hash": (hub().cipher.id_hash(args["id_no"]) or "")[:12],
                    "found": total})
    return render("cases.html", rows=rows, total=total, args=args, page=page, per=per,
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
    return render("case.html", j=j, reveal=False, promised=promised)


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
    return render("case.html", j=j, reveal=True, promised=promised)


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
