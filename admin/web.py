"""Helpers shared by the admin views: the hub, the principal, audit, forms, time ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, current_app, g, render_template, request
from sqlalchemy.orm import Session

from admin.perms import Principal
from mapping.items import ITEMS, STAGES

if TYPE_CHECKING:
    from hub import Hub

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates",
               static_folder="static", static_url_path="/static")

OUTCOMES = {"succeeded": "成功", "retrying": "重试中", "queued": "排队", "held": "暂停中",
            "dead": "失败（已停止）"}
MESSAGE_STATUS = {"pending": "待发送", "in_flight": "发送中", "done": "已送达", "dead": "失败"}
CALL_OUTCOMES = {"ok": "成功", "error": "错误", "rejected": "拒绝"}


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


#: Pages show and take Beijing time (UTC+8, no DST); the store keeps naive UTC.
LOCAL_OFFSET = timedelta(hours=8)


def to_local(value: datetime | None) -> str:
    return "" if value is None else (value + LOCAL_OFFSET).strftime("%Y-%m-%d %H:%M:%S")


def parse_dt(text: str | None, end: bool = False) -> datetime | None:
    """A form date (YYYY-MM-DD) or datetime in local time, as naive UTC; an end date
    includes that whole day."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if end and len(text.strip()) == 10:
        value += timedelta(days=1)
    return value - LOCAL_OFFSET


def time_range(default_days: int) -> tuple[datetime, datetime]:
    """[since, until) from the query string (local dates), as naive UTC."""
    today = (datetime.now(UTC).replace(tzinfo=None) + LOCAL_OFFSET).date()
    until = parse_dt(request.args.get("until"), end=True) or (
        datetime(today.year, today.month, today.day) + timedelta(days=1) - LOCAL_OFFSET)
    since = parse_dt(request.args.get("since")) or (until - timedelta(days=default_days))
    return since, until


def local_date(value: datetime, end: bool = False) -> str:
    """The local date a UTC bound stands for (an exclusive end shows its last day)."""
    local = value + LOCAL_OFFSET - (timedelta(seconds=1) if end else timedelta())
    return local.strftime("%Y-%m-%d")


def page_args(per_page: int = 50) -> tuple[int, int]:
    raw = request.args.get("page", "1").strip()
    # bounded before conversion: an OFFSET past the store's integers is a 500, not a page
    page = max(1, int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 1
    return page, per_page
