"""System parameters (系统参数): a registry of typed, validated keys stored as JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.admin_models import AdminItemSetting, AdminSetting
from store.models import utcnow


@dataclass(frozen=True)
class Param:
    key: str
    label: str
    default: Any
    parse: Callable[[str], Any]
    check: Callable[[Any], bool]
    rule: str


def _int(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9):  # bounded first
        raise ValueError(text[:20])
    return int(text)


PARAMS: dict[str, Param] = {p.key: p for p in (
    Param("lockout_threshold", "连续登录失败锁定次数", 5, _int, lambda v: 3 <= v <= 20, "3–20"),
    Param("lockout_minutes", "锁定时长（分钟）", 15, _int, lambda v: 1 <= v <= 1440, "1–1440"),
    Param("session_idle_minutes", "会话空闲超时（分钟）", 30, _int, lambda v: 5 <= v <= 720,
          "5–720"),
    Param("dashboard_days", "首页统计默认天数", 30, _int, lambda v: 1 <= v <= 366, "1–366"),
    Param("manual_overdue_hours", "人工办件超时提醒（小时）", 48, _int,
          lambda v: 1 <= v <= 720, "1–720"),
    Param("deadline_warning_days", "即将到期提醒（工作日）", 2, _int,
          lambda v: 0 <= v <= 30, "0–30"),
    Param("city_display_name", "平台名称", "市级一体化对接平台", str.strip,
          lambda v: 1 <= len(v) <= 50, "1–50 个字符"),
)}


class SettingError(ValueError):
    pass


def get_setting(session: Session, key: str) -> Any:
    row = session.get(AdminSetting, key)
    return json.loads(row.value) if row is not None else PARAMS[key].default


def all_settings(session: Session) -> dict[str, Any]:
    return {key: get_setting(session, key) for key in PARAMS}


def set_setting(session: Session, key: str, text: str, actor: str) -> tuple[Any, Any]:
    """Validate and store; returns (old, new). Raises SettingError with the rule."""
    param = PARAMS.get(key)
    if param is None:
        raise SettingError(f"未知参数 {key}")
    try:
        value = param.parse(text)
    except ValueError:
        raise SettingError(f"{param.label}：格式不正确（{param.rule}）") from None
    if not param.check(value):
        raise SettingError(f"{param.label}：取值范围 {param.rule}")
    old = get_setting(session, key)
    row = session.get(AdminSetting, key)
    if row is None:
        row = AdminSetting(key=key, value="null")
        session.add(row)
    row.value = json.dumps(value, ensure_ascii=False)
    row.updated_by, row.updated_at = actor, utcnow()
    return old, value


def item_names(session: Session) -> dict[str, str]:
    """Operators' display names of business items (only those renamed)."""
    return dict(session.execute(select(AdminItemSetting.item, AdminItemSetting.display_name)
                                .where(AdminItemSetting.display_name.is_not(None))).all())


def promised_days(session: Session, item: str) -> int | None:
    """An item's promised working days (承诺办结时限), if an operator set them."""
    row = session.get(AdminItemSetting, item)
    return row.promised_days if row is not None else None
