"""Routing tables: YAML keyed on county division codes, validated whole at start-up.

A table names its city, defaults, and for every county of that city its adapter,
partner and mode, with per-item overrides::

    city: "511700"
    defaults: {adapter: county_smart, mode: auto, timeout: 10, retry: default}
    counties:
      "511702":                       # 通川区
        partner: county_511702
        items:
          property_info_query: {timeout: 5}
      "511725":                       # 渠县
        adapter: manual_excel
        mode: manual

``retry`` is the name of a policy in config.yaml, or a mapping of its fields. Any
mistake stops start-up with one message naming the file and the key.

Operators may override a county's mode from the admin page (行政区划配置); the hub binds
those settings to its table (``routes/overrides.py``) and ``resolve`` applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from mapping.divisions import City, Divisions
from routes.policy import RetryPolicy, policy_fields

MODES = ("auto", "manual")
#: Routed items that are not business items of the catalogue (bank events, by division).
EXTRA_ITEMS = ("fund_supervision",)
_ROUTE_KEYS = {"adapter", "partner", "mode", "timeout", "retry"}


class RouteTableError(ValueError):
    """A routing table is wrong; the message names the file and the key."""


@dataclass(frozen=True)
class Route:
    county: str
    county_name: str
    item: str
    adapter: str
    partner: str | None
    mode: str
    timeout: float
    retry: RetryPolicy
    why: tuple[str, ...] = field(default=())
    #: The operator's setting that decided this route (None: the table alone).
    override: str | None = None

    @property
    def manual(self) -> bool:
        return self.mode == "manual"


class RouteOverrides(Protocol):
    """Operators' settings applied on top of the table (``routes.overrides.Overrides``)."""

    def route(self, base: Route) -> Route: ...


@dataclass(frozen=True)
class RoutingTable:
    source: str
    city: City
    routes: dict[tuple[str, str], Route]
    overrides: RouteOverrides | None = field(default=None, compare=False, repr=False)

    def resolve(self, county: str, item: str) -> Route:
        """The route of ``item`` in ``county``: the table's, unless an operator's setting
        decides it (then ``Route.override`` says which, and ``why`` ends with it)."""
        try:
            route = self.routes[(county, item)]
        except KeyError:
            if not any(c == county for c, _ in self.routes):
                raise LookupError(
                    f"county {county!r} is not a county of {self.city.name} ({self.city.code})"
                ) from None
            raise LookupError(f"item {item!r} is not routed") from None
        return route if self.overrides is None else self.overrides.route(route)

    def effective_routes(self) -> list[Route]:
        """Every route as ``resolve`` answers it now, by county and item."""
        return [self.resolve(county, item) for county, item in sorted(self.routes)]

    def counties(self) -> list[str]:
        return sorted({c for c, _ in self.routes})


def load_table(
    path: str | Path,
    divisions: Divisions,
    items: Iterable[str],
    adapter_problem: Callable[[str], str | None],
    partners: Iterable[str],
    policies: dict[str, RetryPolicy],
    city_code: str | None = None,
) -> RoutingTable:
    """Load and validate a table; raise RouteTableError naming ``file: key`` at fault."""
    path = Path(path)
    src = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RouteTableError(f"{src}: cannot read the routing table: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RouteTableError(f"{src}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RouteTableError(f"{src}: the table must be a mapping")

    def fail(key: str, why: str) -> RouteTableError:
        return RouteTableError(f"{src}: {key}: {why}")

    code = str(raw.get("city", ""))
    if code not in divisions.cities:
        raise fail("city", f"{code!r} is not a city in the division table")
    if city_code and code != city_code:
        raise fail("city", f"{code} is not the hub's city {city_code}")
    city = divisions.city(code)
    known_items = set(items) | set(EXTRA_ITEMS)
    partner_ids = set(partners)

    def retry_of(value: Any, key: str, base: RetryPolicy) -> RetryPolicy:
        if isinstance(value, str):
            if value not in policies:
                raise fail(f"{key}.retry", f"unknown retry policy {value!r}")
            return policies[value]
        if isinstance(value, dict):
            try:
                return base.merged(policy_fields(value, where=f"{key}.retry"))
            except ValueError as exc:
                raise fail(key, str(exc)) from exc
        raise fail(f"{key}.retry", "must be a policy name or a mapping")

    def settings(block: Any, key: str) -> dict[str, Any]:
        """A block's own settings, each value checked where it is written."""
        if block is None:
            return {}
        if not isinstance(block, dict):
            raise fail(key, "must be a mapping")
        unknown = set(block) - _ROUTE_KEYS - {"items"}
        if unknown:
            raise fail(f"{key}.{sorted(unknown)[0]}", "unknown setting")
        own = {k: v for k, v in block.items() if k != "items"}
        if "adapter" in own and (problem := adapter_problem(own["adapter"])):
            raise fail(f"{key}.adapter", problem)
        if "mode" in own and own["mode"] not in MODES:
            raise fail(f"{key}.mode", f"must be one of {', '.join(MODES)}")
        if own.get("partner") is not None and own["partner"] not in partner_ids:
            raise fail(f"{key}.partner",
                       f"unknown partner {own['partner']!r} (not in config partners)")
        if "timeout" in own and (not isinstance(own["timeout"], int | float)
                                 or isinstance(own["timeout"], bool) or own["timeout"] <= 0):
            raise fail(f"{key}.timeout", "must be a positive number of seconds")
        if "retry" in own:
            own["retry"] = retry_of(own["retry"], key, policies["default"])
        return own

    defaults = settings(raw.get("defaults"), "defaults")
    counties = raw.get("counties")
    if not isinstance(counties, dict) or not counties:
        raise fail("counties", "must map each county's division code to its route")

    routes: dict[tuple[str, str], Route] = {}
    for county_key, block in counties.items():
        county = str(county_key)
        key = f"counties.{county}"
        if not county.isdigit() or len(county) != 6:
            raise fail(key, "not a six-digit division code")
        if not city.is_county(county):
            owner = divisions.city_of_county(county)
            where = f"a county of {owner.name} ({owner.code})" if owner else "an unknown code"
            raise fail(key, f"{where}, not of {city.name} ({city.code})")
        county_settings = {**defaults, **settings(block, key)}
        overrides = (block or {}).get("items") or {}
        if not isinstance(overrides, dict):
            raise fail(f"{key}.items", "must map item codes to settings")
        for item in overrides:
            if item not in known_items:
                raise fail(f"{key}.items.{item}", "unknown item")
        for item in sorted(known_items):
            item_key = f"{key}.items.{item}" if item in overrides else key
            merged = {**county_settings, **settings(overrides.get(item), item_key)}
            routes[(county, item)] = _route(merged, county, city.county_name(county), item,
                                            item_key, fail, policies["default"])
    missing = sorted(set(city.counties) - {c for c, _ in routes})
    if missing:
        raise fail("counties", f"no route for {', '.join(missing)} "
                               f"({', '.join(city.county_name(c) for c in missing)})")
    return RoutingTable(source=src, city=city, routes=routes)


def _route(merged: dict[str, Any], county: str, county_name: str, item: str, key: str,
           fail: Callable[[str, str], RouteTableError], default_retry: RetryPolicy) -> Route:
    adapter = merged.get("adapter")
    if not adapter:
        raise fail(key, "no adapter")
    mode = merged.get("mode", "auto")
    partner = merged.get("partner")
    if mode == "auto" and not partner:
        raise fail(key, "an auto route needs a partner")
    why = (
        f"区县 {county} {county_name} → 适配器 {adapter}"
        + (f"，对接方 {partner}" if partner else "")
        + f"，方式 {mode}",
        f"设置来自 {key}",
    )
    return Route(county, county_name, item, adapter, partner, mode,
                 float(merged.get("timeout", 10)), merged.get("retry", default_retry), why)
