"""Manual work: the manual counties' queues, marking a stage, Excel export and import
(``adapters.manual_excel`` does the work; this page checks who may, and which county).

An export or an import runs in the background (``admin.jobs``): the page lists the
operator's jobs with their progress (manual.js asks ``/manual/jobs/<id>``), a notice
says when one is done, and the export's zip is downloaded from its job."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from flask import abort, flash, g, jsonify, redirect, request, send_file, url_for
from sqlalchemy import func, select, update

from adapters import manual_excel
from admin import jobs
from admin.auth import requires
from admin.web import admin_path, audit, bp, hub, me, page_args, render, to_local
from mapping.excel import (
    LOCAL_TZ,
    OPERATOR_STAGES,
    explain,
    explain_outcome,
    stage_label,
)
from mapping.names import name
from store.admin_models import AdminJob
from store.models import Case, utcnow

#: The jobs listed on the page: this operator's of the last day, newest first.
LISTED_JOBS = 10
TOO_MANY = (f"您已有 {jobs.MAX_UNFINISHED} 个导出或导入任务在排队或进行中，"
            "请等其中一个完成后再提交")


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
    job_id = request.args.get("job", "")
    asked = int(job_id) if job_id.isdigit() and len(job_id) < 19 else None
    if asked is not None:
        _job(asked)  # 404 unless this operator may see it
    return _queue_page(county, item, asked)


def _queue_page(county: str | None, item: str | None, asked: int | None = None) -> str:
    """The queue with its per-county counts, read now (after an import too), and the
    operator's background jobs; ``asked`` is the import whose report the page shows once
    it is done, taken from the same row as the job list shows (a job listed as ended
    then always shows its report, and one still running is watched until it has one)."""
    page, per = page_args()
    stmt = manual_excel.work_queue(county, item, _divisions())
    # The notice of a job that ended before the page was open, read before the job list:
    # a job the notice says ended is then listed as ended too (not still 进行中).
    ended = _ended_unseen()
    if ended:
        _notified([j.id for j in ended])
    with hub().db.read_session() as s:
        total = s.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = list(s.scalars(stmt.offset((page - 1) * per).limit(per)))
        queue = manual_excel.work_queue(None, None, _divisions()).order_by(None).subquery()
        per_county = dict(s.execute(select(queue.c.county_code, func.count())
                                    .group_by(queue.c.county_code)).all())
        since = utcnow() - jobs.KEEP
        listed = [j for j in s.scalars(select(AdminJob).where(
            AdminJob.username == me().username, AdminJob.created_at >= since)
            .order_by(AdminJob.id.desc()).limit(LISTED_JOBS)) if jobs.visible(j, me())]
        report = None
        if asked is not None:
            job = next((j for j in listed if j.id == asked), None) or s.get(AdminJob, asked)
            report = jobs.report_of(job) if job is not None else None
    return render("manual.html", rows=rows, total=total, page=page, per=per, county=county,
                  item=item, counties=_manual_counties(), stages=OPERATOR_STAGES,
                  per_county=per_county, report=report,
                  jobs=[_job_view(j) for j in listed],
                  notice=_job_view(ended[-1]) if ended else None)


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
    return redirect(admin_path(request.form.get("back"), url_for("admin.manual")))


@bp.post("/manual/export")
@requires("export")
def manual_export():  # type: ignore[no-untyped-def]
    """Queue an export of the queue (as this operator sees it) and go back to the page,
    where its progress shows and, once done, its download link."""
    county = request.form.get("county") or None
    item = request.form.get("item") or None
    if county is not None and not me().sees(county):
        abort(404)
    personal = request.form.get("personal") == "1"
    if personal:
        me().require("view_personal_data")
    if item is not None and item not in manual_excel.ITEMS:
        abort(404)
    if county is not None and county not in _manual_counties():
        abort(404)
    day = datetime.now(UTC).astimezone(LOCAL_TZ).date()  # the operators' (Beijing) date
    stem, stem_zh = manual_excel.export_names(hub(), county, item, day)
    try:
        job_id = hub().jobs.submit_export(jobs.Scope.of(me(), personal), county, item,
                                          stem_zh + ".zip", stem)
    except jobs.TooMany:
        flash(TOO_MANY, "error")
        return redirect(url_for("admin.manual", county=county, item=item))
    with hub().transaction() as s:
        audit(s, "export_manual", county or "all", {"item": item, "personal_data": personal,
                                                    "job": job_id})
    flash(f"已开始导出（任务 {job_id}）：完成后在「后台任务」中下载", "ok")
    return redirect(url_for("admin.manual", county=county, item=item, job=job_id))


@bp.post("/manual/import")
@requires("mark_stage")
def manual_import():  # type: ignore[no-untyped-def]
    """Keep the upload and queue its import; the page shows its progress, then its
    report (rows applied, or each row's error in Chinese, and then nothing applied)."""
    upload = request.files.get("workbook")
    if upload is None or not upload.filename:
        flash("请选择要导入的 Excel 文件", "error")
        return redirect(url_for("admin.manual"))
    try:
        job_id = hub().jobs.submit_import(jobs.Scope.of(me()), upload.read(), upload.filename)
    except jobs.TooMany:
        flash(TOO_MANY, "error")
        return redirect(url_for("admin.manual"))
    flash(f"已开始导入（任务 {job_id}）：完成后本页显示结果", "ok")
    return redirect(url_for("admin.manual", job=job_id))


def _job(job_id: int) -> AdminJob:
    """The job if this operator may see it (else 404: another operator's does not exist)."""
    if not 0 < job_id < 2**62:  # a bigint's range: nothing to look up
        abort(404)
    with hub().db.read_session() as s:
        job = s.get(AdminJob, job_id)
        if job is None or not jobs.visible(job, me()):
            abort(404)
        s.expunge(job)
    return job


def _job_view(job: AdminJob) -> dict[str, Any]:
    """A job as the page and manual.js show it: Chinese names, Beijing time."""
    path = hub().jobs.path(job)
    report = jobs.report_of(job)
    done, total = hub().jobs.progress.get(job.id, (job.done, job.total))
    if job.state == "done" and job.kind == jobs.EXPORT:
        note = "" if path else "文件已过期删除，请重新导出"
    elif report is not None:
        note = (f"应用 {report.applied} 行" if report.ok
                else f"{len(report.errors)} 行有错误，未导入任何行")
    else:
        note = job.error or ""
    return {"id": job.id, "kind": job.kind, "kind_name": name("job_kinds", job.kind),
            "state": job.state, "state_name": name("job_states", job.state),
            "done": done, "total": total, "label": job.label, "note": note,
            "created": to_local(job.created_at), "finished": to_local(job.finished_at),
            "notice": notice_of(job, report),
            "download": url_for("admin.manual_job_download", job_id=job.id) if path else None,
            "report": (url_for("admin.manual", job=job.id) if report is not None else None)}


@bp.get("/manual/jobs/<int:job_id>")
@requires("view")
def manual_job(job_id: int):  # type: ignore[no-untyped-def]
    """One job's state and progress (manual.js asks while it runs); a finished one
    counts as notified (the page shows its notice)."""
    job = _job(job_id)
    if job.state not in jobs.UNFINISHED and not job.notified:
        _notified([job.id])
    return jsonify(_job_view(job))


@bp.get("/manual/jobs/<int:job_id>/download")
@requires("export")
def manual_job_download(job_id: int):  # type: ignore[no-untyped-def]
    job = _job(job_id)
    path = hub().jobs.path(job)
    if path is None:
        abort(404)
    day = to_local(job.created_at)[:10].replace("-", "")
    stem, _ = manual_excel.export_names(hub(), job.county, job.item,
                                        datetime.strptime(day, "%Y%m%d").date())
    resp = send_file(path, mimetype="application/zip", conditional=False, etag=False)
    resp.headers["Content-Disposition"] = (
        f'attachment; filename="{stem}.zip"; '
        f"filename*=UTF-8''{quote(job.label, safe='')}")
    return resp


def _notified(ids: list[int]) -> None:
    with hub().transaction() as s:
        s.execute(update(AdminJob).where(AdminJob.id.in_(ids)).values(notified=True))


def notice_of(job: AdminJob, report: manual_excel.ImportReport | None) -> str:
    """The operator's notice of a job that ended ('' while it runs)."""
    verb = "导出" if job.kind == jobs.EXPORT else "导入"
    if job.state == "failed":
        return f"{verb}失败（任务 {job.id}）：{job.error or ''}"
    if job.state != "done":
        return ""
    if job.kind == jobs.EXPORT:
        return f"{verb}完成（任务 {job.id}）：{job.label}，请在人工办理页下载（保留 1 天）"
    if report is not None and report.ok:
        return f"{verb}完成（任务 {job.id}）：应用 {report.applied} 行"
    return f"{verb}完成（任务 {job.id}）：有错误，未导入任何行，请在人工办理页查看"


def _ended_unseen() -> list[AdminJob]:
    """This operator's jobs that ended and whose notice was not shown yet."""
    principal = me()
    with hub().db.read_session() as s:
        ended = [j for j in s.scalars(select(AdminJob).where(
            AdminJob.username == principal.username,
            AdminJob.state.in_(("done", "failed")), AdminJob.notified.is_(False))
            .order_by(AdminJob.id).limit(LISTED_JOBS)) if jobs.visible(j, principal)]
        for job in ended:
            s.expunge(job)
    return ended


#: Pages that never carry the "job done" notice as a flash: manual.js's polls, downloads,
#: files, and the manual page itself (which shows it in its own notice, with the link).
_QUIET = {"admin.manual_job", "admin.manual_job_download", "admin.static", "admin.login",
          "admin.manual"}


@bp.before_request
def _job_notices() -> None:
    """The notice that a job ended, on the next page its operator opens (once)."""
    if (g.get("principal") is None or request.method != "GET"
            or request.endpoint in _QUIET or hub().jobs is None):
        return
    ended = _ended_unseen()
    for job in ended:
        flash(notice_of(job, jobs.report_of(job)), "error" if job.state == "failed" else "ok")
    if ended:
        _notified([j.id for j in ended])
