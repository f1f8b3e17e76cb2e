"""Helpers shared by the admin views: the hub, the principal, audit, forms, time ranges
in the operators' zone, and the template filters that name codes in Chinese."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from flask import Blueprint, current_app, g, render_template, request
from markupsafe import Markup
from sqlalchemy.orm import Session

from admin.perms import Principal
from mapping.items import ITEMS, STAGES
from mapping.names import name as catalogue_name

if TYPE_CHECKING:
    from hub import Hub

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")

OUTCOMES = {"succeeded": "成功", "retrying": "重试中", "queued": "排队", "held": "暂停中",
            "dead": "失败（已停止）"}
MESSAGE_STATUS = {k: catalogue_name("message_statuses", k)
                  for k in ("pending", "in_flight", "done", "dead")}
CALL_OUTCOMES = {"ok": "成功", "error": "错误", "rejected": "拒绝"}


def admin_path(target: str | None, fallback: str) -> str:
    """``target`` if it is a path under /admin/ a browser resolves under /admin/ (the
    sign-in's ``next``, a form's ``back``), else ``fallback``: never another host, a
    scheme-relative URL, a backslash, a control character (a CR/LF would be a header
    of its own) or a dot segment (``/admin/../x``, ``%2e%2e`` too) leading out of it."""
    if (not target or not target.startswith("/admin/") or "\\" in target
            or not target.isprintable() or len(target) > 500):
        return fallback
    path = target.split("?", 1)[0].split("#", 1)[0]
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        return fallback
    return target


def hub() -> Hub:
    return current_app.extensions["cityhub"]


def me() -> Principal:
    return g.principal


def audit(s: Session, action: str, target: str = "", detail: Any = None) -> None:
    """Record an operator action in the audit trail (in the caller's transaction)."""
    hub().audit(s, me().username, action, target, detail)


def render(template: str, **ctx: Any) -> str:
    return render_template(template, **ctx)


def names() -> dict[str, dict[str, str]]:
    """Display names of items, counties, stages and outcomes (as operators renamed them
    in the settings: items loaded per request, counties from the division snapshot)."""
    h = hub()
    return {
        "items": {code: item.name_zh for code, item in ITEMS.items()} | g.get("item_names", {}),
        "counties": dict(h.city.counties) | h.overrides.names(),
        "stages": dict(STAGES),
        "outcomes": OUTCOMES,
    }


def zone() -> ZoneInfo:
    """The operators' time zone (config ``timezone``, default Asia/Shanghai)."""
    return hub().overrides.tz


def _aware(value: datetime) -> datetime:
    """A stored naive-UTC time in the operators' zone."""
    return value.replace(tzinfo=UTC).astimezone(zone())


def _utc(local: datetime) -> datetime:
    """A naive local wall time in the operators' zone as naive UTC."""
    return local.replace(tzinfo=zone()).astimezone(UTC).replace(tzinfo=None)


def to_local(value: datetime | None) -> str:
    return "" if value is None else _aware(value).strftime("%Y-%m-%d %H:%M:%S")


def local_today() -> date:
    return datetime.now(zone()).date()


def day_start(day: date) -> datetime:
    """The first instant of ``day`` in the operators' zone, as naive UTC."""
    return _utc(datetime.combine(day, time()))


class BadInput(ValueError):
    """A search or filter value the page cannot take (a date that is not one, a number
    too long): the page says so in Chinese, and what to do."""


BadDate = BadInput
#: The years a form date may name: nothing the hub keeps is older, and the edges of
#: Python's datetime (0001, 9999) overflowed in the conversion to UTC.
FIRST_YEAR, LAST_YEAR = 2000, 2099


def parse_dt(text: str | None, end: bool = False, label: str = "日期") -> datetime | None:
    """A form date (YYYY-MM-DD) or datetime in local time, as naive UTC; an end date
    includes that whole day. Raises BadDate (with the field's label) for anything else."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if len(text) > 32:
            raise ValueError(text)
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadDate(f"{label}“{text[:32]}”不是有效日期，请按 年-月-日 填写，例如 "
                      f"{local_today().isoformat()}") from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:  # 0001 and 9999 overflowed: a 500
        raise BadDate(f"{label}“{text[:32]}”超出可查询的年份（{FIRST_YEAR}–{LAST_YEAR} 年）")
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if len(text) == 10:
        return day_start(value.date() + timedelta(days=1 if end else 0))
    return _utc(value)


def lenient_dt(text: str | None, end: bool = False) -> datetime | None:
    """``parse_dt`` for pages that ignore a bad date (none of the pages here)."""
    try:
        return parse_dt(text, end)
    except BadDate:
        return None


def time_range(default_days: int, max_days: int | None = None) -> tuple[datetime, datetime]:
    """[since, until) from the query string (local dates), as naive UTC; BadDate for a
    date that is not one, an end before the start, or a range over ``max_days`` days."""
    until = parse_dt(request.args.get("until"), end=True, label="结束日期") or day_start(
        local_today() + timedelta(days=1))
    since = parse_dt(request.args.get("since"), label="开始日期") or (
        until - timedelta(days=default_days))
    if since >= until:
        raise BadDate("开始日期晚于结束日期，请重新选择")
    if max_days is not None and until - since > timedelta(days=max_days):
        raise BadDate(f"查询的时间范围最长 {max_days} 天，请缩短开始日期与结束日期之间的间隔")
    return since, until


def local_date(value: datetime, end: bool = False) -> str:
    """The local date a UTC bound stands for (an exclusive end shows its last day)."""
    return (_aware(value) - (timedelta(seconds=1) if end else timedelta())).strftime("%Y-%m-%d")


def page_args(per_page: int = 50) -> tuple[int, int]:
    raw = request.args.get("page", "1").strip()
    # bounded before conversion: an OFFSET past the store's integers is a 500, not a page
    page = max(1, int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 1
    return page, per_page


# --------------------------------------------------------------------------- words

@bp.app_template_filter("zh")
def zh(code: Any, kind: str) -> str:
    """``{{ m.interface|zh('interfaces') }}``: a code's Chinese name (mapping/names.py);
    counties and items as operators renamed them in the settings."""
    text = "" if code is None else str(code)
    if kind == "counties":
        return names()["counties"].get(text, text)
    if kind == "items":
        return names()["items"].get(text, catalogue_name("items", text))
    if kind == "partners" and text.startswith("county_"):
        county = names()["counties"].get(text[7:])
        if county:
            return f"{county}智慧平台"
    if kind == "partners" and (bank := _bank_code_of(text)):  # a bank is config: its code
        return catalogue_name("partners", bank)
    return catalogue_name(kind, text)


def _bank_code_of(app_id: str) -> str | None:
    """The ``bank_code`` of a configured bank partner (``bank_icbc_dazhou`` → ICBC)."""
    partner = hub().partners.get(app_id)
    code = partner.options.get("bank_code") if partner is not None else None
    return code if isinstance(code, str) and code else None


@bp.app_template_filter("coded")
def coded(code: Any, kind: str) -> Markup:
    """The Chinese name, with the code in a tooltip for technical staff."""
    text = "" if code is None else str(code)
    return Markup('<span title="{}">{}</span>').format(text, zh(text, kind))


def message_status(status: str, attempts: int, held: bool = False) -> str:
    """The status an operator reads: 待发送/重试中/发送中/已送达/已停止/暂停中."""
    if status == "pending":
        status = "held" if held else "retrying" if attempts else "pending"
    return catalogue_name("message_statuses", status)


@bp.app_template_filter("status_zh")
def status_zh(m: Any, held: bool = False) -> str:
    return message_status(m.status, m.attempts or 0, held)


#: A code inside free text (alert titles written by the engine): ``a.b_c`` or ``county_…``.
_CODE_IN_TEXT = re.compile(r"\b(?:[a-z][a-z_\-]*(?:\.[a-z][a-z_\-]*)+|county_\d{6}|province)\b")


@bp.app_template_filter("codes_zh")
def codes_zh(text: Any) -> str:
    """Free text with its interface and partner codes replaced by their names."""
    def sub(found: re.Match[str]) -> str:
        code = found.group(0)
        named = zh(code, "interfaces") if "." in code else zh(code, "partners")
        return named if named != code else code
    return _CODE_IN_TEXT.sub(sub, "" if text is None else str(text))


@bp.app_template_filter("workdays")
def _workdays(n: Any) -> str:
    return "" if n in (None, "") else f"{n} 个工作日"


@bp.errorhandler(BadDate)
def _bad_date(exc: BadDate):  # type: ignore[no-untyped-def]
    return render("error.html", code=400, message=str(exc)), 400
