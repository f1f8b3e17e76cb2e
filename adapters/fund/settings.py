"""The ``bank:`` section of config.yaml and the bank partners (``partners.<id>.bank_code``).

Adding a bank is configuration: a partner entry with ``bank_code`` (and ``wsdl``,
``amounts_in_fen``, ``wsse``) — no Python.

```yaml
bank:
  token_ttl_seconds: 1800
  reconciliation_time: "02:30"          # daily, local time (Asia/Shanghai)
  overdue_working_days: {"01": 1, "02": 5, "03": 5, "04": 5}   # on the working-day calendar
  overdue_check_minutes: 10
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.base import Partner
    from hub import Hub

DEFAULT_OVERDUE = {"01": 1, "02": 5, "03": 5, "04": 5}


@dataclass(frozen=True)
class BankSettings:
    token_ttl_seconds: float = 1800.0
    reconciliation_hour: int = 2
    reconciliation_minute: int = 30
    overdue_working_days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_OVERDUE))
    overdue_check_minutes: float = 10.0
    #: bank_code → partner app id
    banks: dict[str, str] = field(default_factory=dict)
    partners: dict[str, Partner] = field(default_factory=dict)

    def partner_of(self, bank_code: str) -> Partner | None:
        app_id = self.banks.get(bank_code)
        return self.partners.get(app_id) if app_id else None

    def in_fen(self, bank_code: str) -> bool:
        partner = self.partner_of(bank_code)
        return bool(partner and partner.options.get("amounts_in_fen"))


def load_settings(hub: Hub) -> BankSettings:
    raw: dict[str, Any] = hub.config.section("bank")
    where = f"{hub.config.path}: bank"
    hh, _, mm = str(raw.get("reconciliation_time", "02:30")).partition(":")
    try:
        hour, minute = int(hh), int(mm or 0)
        if not (0 <= hour < 24 and 0 <= minute < 60):
            raise ValueError
    except ValueError:
        raise ValueError(f"{where}.reconciliation_time: must be HH:MM") from None
    if raw.get("holidays"):
        raise ValueError(f"{where}.holidays: no longer read: holidays and make-up working "
                         "days come from the one working-day calendar (系统设置 → 工作日历, "
                         "`hub.py migrate` seeds it); remove the key")
    overdue = dict(DEFAULT_OVERDUE)
    overdue.update({str(k).zfill(2): int(v) for k, v in
                    (raw.get("overdue_working_days") or {}).items()})
    banks: dict[str, str] = {}
    partners: dict[str, Partner] = {}
    for app_id, partner in hub.partners.items():
        code = partner.options.get("bank_code")
        if code:
            banks[str(code)] = app_id
            partners[app_id] = partner
    return BankSettings(
        token_ttl_seconds=float(raw.get("token_ttl_seconds", 1800)),
        reconciliation_hour=hour,
        reconciliation_minute=minute,
        overdue_working_days=overdue,
        overdue_check_minutes=float(raw.get("overdue_check_minutes", 10)),
        banks=banks,
        partners=partners,
    )
