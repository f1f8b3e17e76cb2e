"""系统设置 → 工作日历: the years the working-day calendar knows, and an operator's entry
of a year's arrangement (the State Council publishes next year's each November, often
before the chinese_calendar package has it). One line a day: ``2027-01-01 休 元旦`` or
``2027-02-07 班 春节`` (休: a weekday off; 班: a weekend day worked)."""

from __future__ import annotations

from datetime import date

from flask import flash, redirect, request, url_for

from admin.auth import requires
from admin.deadlines import recount_after_calendar_change
from admin.web import audit, bp, hub, me, render
from mapping.workdays import HOLIDAY, KIND_NAMES, WORKDAY, CalendarDay
from store.calendar import CalendarError, check_year, save_year, year_days
from store.calendar_models import CalendarYear
from store.due_recount import changed_span
from store.models import utcnow

#: The words a line may use for a day's kind.
KIND_WORDS = {"休": HOLIDAY, "节假日": HOLIDAY, "holiday": HOLIDAY,
              "班": WORKDAY, "调休上班": WORKDAY, "workday": WORKDAY}
MAX_LINES = 120


def parse_lines(year: int, text: str) -> list[CalendarDay]:
    """An operator's lines as calendar days; CalendarError names the first bad line."""
    days = []
    lines = [ln.strip() for ln in text.replace("\r", "").split("\n") if ln.strip()]
    if len(lines) > MAX_LINES:
        raise CalendarError(f"最多 {MAX_LINES} 行")
    for n, line in enumerate(lines, start=1):
        parts = line.split(maxsplit=2)
        if len(parts) < 2:
            raise CalendarError(f"第 {n} 行：应为“日期 休/班 名称”，如 {year}-01-01 休 元旦")
        try:
            day = date.fromisoformat(parts[0])
        except ValueError:
            raise CalendarError(f"第 {n} 行：日期应为 YYYY-MM-DD（{parts[0][:20]}）") from None
        kind = KIND_WORDS.get(parts[1])
        if kind is None:
            raise CalendarError(f"第 {n} 行：类型应为“休”（节假日）或“班”（调休上班）")
        days.append(CalendarDay(day, kind, (parts[2] if len(parts) > 2 else "")[:32]))
    return days


@bp.get("/settings/calendar")
@requires("manage_settings")
def settings_calendar():  # type: ignore[no-untyped-def]
    with hub().transaction() as s:
        years = list(s.query(CalendarYear).order_by(CalendarYear.year.desc()))
        year = request.args.get("year", "")
        shown = int(year) if year.isdigit() and 2000 <= int(year) <= 2100 else utcnow().year + 1
        days = year_days(s, shown)
    known = {y.year for y in years}
    return render("calendar.html", years=years, shown=shown, days=days, kinds=KIND_NAMES,
                  missing=shown not in known,
                  text="\n".join(f"{d.day.isoformat()} {'休' if d.kind == HOLIDAY else '班'} "
                                 f"{d.name}".rstrip() for d in days))


@bp.post("/settings/calendar")
@requires("manage_settings")
def settings_calendar_save():  # type: ignore[no-untyped-def]
    year_text = request.form.get("year", "").strip()
    if me().divisions is not None:  # one calendar for every county's deadlines
        flash("工作日历对全市所有区县的办理时限生效，只有全市范围的管理员才能修改", "error")
        return redirect(url_for("admin.settings_calendar"))
    if not (year_text.isdigit() and 2000 <= int(year_text) <= 2100):
        flash("年份应为 2000–2100 之间的四位数字", "error")
        return redirect(url_for("admin.settings_calendar"))
    year = int(year_text)
    try:
        days = parse_lines(year, request.form.get("days", ""))
        with hub().transaction() as s:
            before = year_days(s, year) if s.get(CalendarYear, year) is not None else None
            save_year(s, year, days, me().username)
            s.flush()
            # the counts that passed through a changed day, and those that had no year
            span = changed_span(before, check_year(year, days), year)
            recounted = recount_after_calendar_change(hub(), s, span)
            audit(s, "save_calendar_year", str(year),
                  {"days": len(days), "recounted": recounted})
    except CalendarError as exc:
        flash(f"未保存：{exc}", "error")
        return redirect(url_for("admin.settings_calendar", year=year))
    hub().overrides.reload()
    recount = f"；{recounted} 件在办案件的办结期限已按新日历重新计算" if recounted else ""
    flash(f"已保存 {year} 年工作日历（{len(days)} 天例外）{recount}", "ok")
    return redirect(url_for("admin.settings_calendar", year=year))

