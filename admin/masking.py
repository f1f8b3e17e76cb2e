"""Masking personal data for display: names, ID numbers, phones, accounts."""

from __future__ import annotations

from typing import Any

#: Keys (or key suffixes) whose string values are personal data.
_PERSONAL_SUFFIXES = ("name", "id_no", "phone", "uscc", "account", "card_no", "address")
#: Keys that end like the above but are not personal (items, files, projects).
_NOT_PERSONAL = {"file_name", "project_name", "item_name", "county_name", "branch_name",
                 "enterprise_name", "developer_name", "account_no_masked", "interface_name"}


def is_personal(key: str) -> bool:
    key = key.lower()
    return key not in _NOT_PERSONAL and key.endswith(_PERSONAL_SUFFIXES)


def mask_text(value: str) -> str:
    """Keep a little of each end: 张三 → 张*, 11010519491231002X → 110***********002X."""
    n = len(value)
    if n <= 1:
        return "*"
    if n <= 3:
        return value[0] + "*" * (n - 1)
    if n <= 8:
        return value[0] + "*" * (n - 2) + value[-1]
    return value[:3] + "*" * (n - 7) + value[-4:]


def mask(value: Any, key: str = "") -> Any:
    """A copy of a JSON value with personal strings masked (recursively)."""
    if isinstance(value, dict):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key) for v in value]
    if isinstance(value, str) and key and is_personal(key):
        return mask_text(value)
    return value


def mask_if(value: Any, reveal: bool) -> Any:
    return value if reveal else mask(value)
