"""The Chinese name of every code an operator sees (issue: operators read Chinese).

One catalogue for pages, Excel, CSV, alerts and CLI output: ``mapping/data/names.yaml``
for statuses, alert kinds, audit actions, interfaces, partners, banks and result codes,
with item and stage names from ``mapping/items.py``, the fund's operations from
``mapping/fund.py`` and county names from the division table. ``name(kind, code)``
falls back to the code itself, so a new code is visible (and a test can catch it).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from mapping.divisions import Divisions
from mapping.fund import OPERATION_NAMES
from mapping.items import ITEMS, STAGES

CATALOGUE = Path(__file__).with_name("data") / "names.yaml"
KINDS = ("message_statuses", "alert_kinds", "audit_actions", "directions", "outcomes",
         "interfaces", "partners", "adapters", "banks", "result_codes", "items", "stages",
         "operations", "fields", "id_types", "co_ownerships", "share_actions",
         "job_states", "job_kinds", "fund_account_statuses", "house_statuses")


@functools.cache
def _catalogue() -> dict[str, Any]:
    return yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))


@functools.cache
def _county_names() -> dict[str, str]:
    divisions = Divisions.load()
    return {code: name for city in divisions.cities.values()
            for code, name in city.counties.items()}


def item_name(code: str) -> str:
    item = ITEMS.get(code)
    return item.name_zh if item is not None else OPERATION_NAMES.get(code, code)


def interface_name(code: str) -> str:
    """``county.rental_filing`` → 房屋租赁备案 · 推送区县 (longest matching prefix)."""
    cat = _catalogue()
    if code in cat["interfaces"]:
        return cat["interfaces"][code]
    prefixes = cat["interface_prefixes"]
    for prefix in sorted(prefixes, key=len, reverse=True):
        if code.startswith(prefix + "."):
            return f"{item_name(code[len(prefix) + 1:])} · {prefixes[prefix]}"
    return code


def partner_name(app_id: str) -> str:
    """``county_511702`` → 通川区智慧平台; a bank's code → its name; else the app id."""
    cat = _catalogue()
    if app_id in cat["partners"]:
        return cat["partners"][app_id]
    if app_id.startswith("county_") and app_id[7:] in _county_names():
        return f"{_county_names()[app_id[7:]]}智慧平台"
    if app_id.startswith("cityhub_"):
        return "本平台"
    return cat["banks"].get(app_id.upper(), app_id)


def name(kind: str, code: str | None) -> str:
    """The Chinese name of ``code`` of ``kind`` (one of ``KINDS``); the code if unknown."""
    if code is None or code == "":
        return ""
    if kind == "interfaces":
        return interface_name(code)
    if kind == "partners":
        return partner_name(code)
    if kind == "items":
        return item_name(code)
    if kind == "stages":
        return STAGES.get(code, code)
    if kind == "operations":
        return OPERATION_NAMES.get(code, code)
    if kind not in KINDS:
        raise KeyError(f"no such kind of code: {kind}")
    return _catalogue()[kind].get(code, code)


def known(kind: str) -> dict[str, str]:
    """Every code of ``kind`` the catalogue names, with its name (for tests and filters)."""
    if kind == "items":
        return {c: i.name_zh for c, i in ITEMS.items()}
    if kind == "stages":
        return dict(STAGES)
    if kind == "operations":
        return dict(OPERATION_NAMES)
    return dict(_catalogue()[kind])
