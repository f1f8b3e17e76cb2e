"""Operators' interface and partner switches (``interface_switches``), shared by the
interfaces page and the business items' settings: an item is taken from the province
exactly when its interface ``province.in.<item>`` is switched on (``adapters.auth``
answers 3001 otherwise), so the item's 启用 flag is that switch, not a copy of it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from admin.web import audit, me
from store.models import InterfaceSwitch, utcnow


def province_interface(item: str) -> str:
    """The inbound interface of a province item (``adapters.province``'s names)."""
    return f"province.in.{item}"


def is_enabled(s: Session, kind: str, name: str) -> bool:
    row = s.get(InterfaceSwitch, (kind, name))
    return row is None or row.enabled


def set_switch(s: Session, kind: str, name: str, enabled: bool, reason: str | None) -> bool:
    """Switch ``kind``/``name`` on or off in ``s``'s transaction and audit it (as
    ``enable_interface``/``disable_interface``); returns whether it was on before."""
    row = s.get(InterfaceSwitch, (kind, name))
    was = row is None or row.enabled
    if row is None:
        row = InterfaceSwitch(kind=kind, name=name)
        s.add(row)
    row.enabled, row.reason, row.changed_by, row.changed_at = (
        enabled, reason, me().username, utcnow())
    audit(s, "enable_interface" if enabled else "disable_interface", f"{kind}:{name}",
          {"reason": reason, "old": {"enabled": was}, "new": {"enabled": enabled}})
    return was
