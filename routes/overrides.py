"""Operators' division settings (行政区划配置) applied on top of the routing table.

The YAML table (``routes/table.py``) routes every county of the city. From the admin
page an operator may set a county — or one item in a county — to

* ``manual`` (人工): the route becomes the manual Excel fallback (adapter
  ``manual_excel``, mode ``manual``): sub-cases wait in the operators' queue;
* ``auto`` (自动): the county's API as the table names it. For an item the table routes
  manually, that is the adapter and partner of the county's auto route in the table
  (``auto_source``); a county without one cannot be set to auto.

and retire (停用) a county: the province intake then refuses new applications naming
it (2004, ``mapping/province_in.py`` through ``City.retired``); existing cases are
untouched. No setting means: follow the table.

The same snapshot carries what deadlines need on the intake's hot path: promised working
days (承诺办结时限) per item and per county, and the working-day calendar
(``store/calendar.py``), so a sub-case's due time is computed without SQL (``due``).

The settings live in the database (``admin_division_routes``, ``admin_division_names``).
Each process keeps them as an immutable in-memory ``Snapshot`` holding the overridden
routes themselves, so ``resolve`` and the county check are dict lookups and never SQL.
A snapshot older than ``refresh_seconds`` (config ``settings_refresh_seconds``, default
5) is reloaded in a background thread: the request that notices keeps the old one and
never waits (nor reads while it holds its own write transaction). The process that saves
a change calls ``reload()`` after its commit and sees it at once.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from mapping.items import ITEMS, ItemKind
from mapping.workdays import CalendarMissing, WorkCalendar, due_at
from routes.table import Route, RouteTableError, RoutingTable
from store.admin_models import AdminDivisionName, AdminDivisionRoute, AdminItemSetting
from store.calendar import load as load_calendar
from store.calendar_models import DivisionDeadline

if TYPE_CHECKING:
    from mapping.divisions import City
    from store.db import Database

log = logging.getLogger("cityhub.routes")

MANUAL_ADAPTER = "manual_excel"
#: ``AdminDivisionRoute.item`` of a county-wide setting.
ALL_ITEMS = "*"
MODES = ("auto", "manual")
DEFAULT_REFRESH_SECONDS = 5.0


@dataclass(frozen=True)
class Setting:
    """One operator setting: the mode for (county, item or ``*``), and who set it."""

    county: str
    item: str
    mode: str
    by: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The settings as loaded at ``loaded_at`` (``time.monotonic``)."""

    settings: dict[tuple[str, str], Setting] = field(default_factory=dict)
    retired: frozenset[str] = frozenset()
    names: dict[str, str] = field(default_factory=dict)
    #: The routes an operator's setting decides, by (county, item).
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    loaded_at: float = 0.0
    #: Promised working days (承诺办结时限) by (county, item); (``*``, item) for the item's.
    promised: dict[tuple[str, str], int] = field(default_factory=dict)
    #: The working-day calendar (None until loaded).
    calendar: WorkCalendar | None = None


def auto_source(table: RoutingTable, county: str, item: str | None = None) -> Route | None:
    """The table's auto route an ``auto`` setting uses for ``county``: the item's own if
    the table routes it automatically, else the county's first auto route with a partner
    (by item code); None if the table gives the county no partner at all."""
    if item is not None:
        own = table.routes.get((county, item))
        if own is not None and not own.manual and own.partner:
            return own
    for (c, _), route in sorted(table.routes.items()):
        if c == county and not route.manual and route.partner:
            return route
    return None


#: A setting's mode as the settings page names it.
MODE_NAMES = {"auto": "自动", "manual": "人工"}


def setting_label(setting: Setting, county_name: str = "") -> str:
    """The setting in the operators' words (shown on the route page and by hub.py route),
    each code beside its name."""
    from mapping.names import name

    scope = ("全部事项" if setting.item == ALL_ITEMS
             else f"事项“{name('items', setting.item)}”（{setting.item}）")
    by = f"，由 {setting.by} 设置" if setting.by else ""
    county = county_name or setting.county
    return (f"行政区划配置：{county}（{setting.county}）{scope} → "
            f"{MODE_NAMES.get(setting.mode, setting.mode)}（{setting.mode}）{by}")


def overridden(table: RoutingTable, base: Route, setting: Setting) -> Route:
    """``base`` (the table's route) as ``setting`` decides it."""
    label = setting_label(setting, base.county_name)
    if setting.mode == "manual":
        return replace(base, adapter=MANUAL_ADAPTER, partner=None, mode="manual",
                       why=(*base.why, f"按{label}：改为人工办理（Excel）"),
                       override=label)
    source = auto_source(table, base.county, base.item)
    if source is None:  # refused when saved; the table may have changed since
        return replace(base, why=(*base.why, f"{label} 未生效：路由表没有给区县 "
                                             f"{base.county} 配置对接方"))
    if source is table.routes.get((base.county, base.item)):
        return replace(base, why=(*base.why, f"{label}（与路由表一致）"),
                       override=label)
    return replace(base, adapter=source.adapter, partner=source.partner, mode="auto",
                   why=(*base.why, f"按{label}：适配器 {source.adapter}，"
                                   f"对接方 {source.partner}（沿用路由表中事项 "
                                   f"{source.item} 的路由）"),
                   override=label)


def build_snapshot(table: RoutingTable, settings: dict[tuple[str, str], Setting],
                   retired: frozenset[str], names: dict[str, str],
                   loaded_at: float) -> Snapshot:
    """The routes the settings decide, computed once per load (an item's own setting
    wins over the county's ``*``)."""
    routes: dict[tuple[str, str], Route] = {}
    for (county, item), base in table.routes.items():
        setting = settings.get((county, item)) or settings.get((county, ALL_ITEMS))
        if setting is not None and setting.mode in MODES:
            routes[(county, item)] = overridden(table, base, setting)
    return Snapshot(settings, retired, names, routes, loaded_at)


def refresh_seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise RouteTableError(f"{where}: must be a number of seconds above 0 and at most 3600")
    return float(value)


class Overrides:
    """The settings of one process: ``bind`` a table to them, then ``route``/``retired``
    read the current snapshot."""

    def __init__(self, db: Database, refresh: Any = DEFAULT_REFRESH_SECONDS,
                 where: str = "settings_refresh_seconds",
                 default_promised_days: int | None = None, tz: str = "Asia/Shanghai") -> None:
        self.db = db
        self.default_promised_days = default_promised_days
        self.tz = ZoneInfo(tz)
        self.refresh_seconds = refresh_seconds(refresh, where)
        self.table: RoutingTable | None = None
        self._snapshot = Snapshot()
        self._generation = 0  # of the load that made ``_snapshot``
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._refreshing = False

    def bind(self, table: RoutingTable) -> RoutingTable:
        """``table`` with these settings applied by ``resolve``; loads them now."""
        self.table = replace(table, overrides=None)
        self.reload()
        return replace(table, overrides=self)

    def city(self, city: City) -> City:
        """``city`` whose ``retired(code)`` answers from these settings."""
        return replace(city, retired=self.retired)

    # -- the hot path: lookups in the current snapshot

    def current(self) -> Snapshot:
        snapshot = self._snapshot
        if time.monotonic() - snapshot.loaded_at > self.refresh_seconds:
            self._refresh_in_background()
        return snapshot

    def route(self, base: Route) -> Route:
        return self.current().routes.get((base.county, base.item), base)

    def retired(self, county: str) -> bool:
        return county in self.current().retired

    def names(self) -> dict[str, str]:
        """Operators' display names of counties (only those that were renamed)."""
        return self.current().names

    def promised_days(self, county: str, item: str) -> int | None:
        """The county's promised working days for ``item``, else the item's, else the
        configured default; None for a sync query (answered at once, no deadline)."""
        known = ITEMS.get(item)
        if known is not None and known.kind == ItemKind.SYNC_QUERY:
            return None
        promised = self.current().promised
        return promised.get((county, item), promised.get((ALL_ITEMS, item),
                                                         self.default_promised_days))

    def due(self, county: str, item: str, received_at: datetime) -> tuple[int | None,
                                                                          datetime | None]:
        """(promised days, due time as naive UTC) of a sub-case received at
        ``received_at`` (naive UTC); (days, None) when the calendar cannot count them
        (a year without data: the calendar watch alerts the operators)."""
        days = self.promised_days(county, item)
        if days is None:
            return None, None
        return days, self.working_deadline(received_at, days, f"a {item} case of {county}")

    def working_deadline(self, start: datetime, days: int, what: str) -> datetime | None:
        """The end (24:00 Beijing time) of the ``days``-th working day after the day of
        ``start`` (naive UTC), as naive UTC; None when the calendar cannot count them."""
        calendar = self.current().calendar
        if calendar is None:
            return None
        try:
            return due_at(calendar, start, days, self.tz)
        except CalendarMissing as exc:
            log.warning("no due time for %s: %s", what, exc)
            return None

    # -- loading

    def reload(self) -> Snapshot:
        """Load the settings now (after a change this process saved, or when stale)."""
        generation = next(self._counter)
        started = time.monotonic()
        try:
            with self.db.session() as s:
                settings = {
                    (r.county_code, r.item): Setting(r.county_code, r.item, r.mode, r.updated_by)
                    for r in s.scalars(select(AdminDivisionRoute))}
                divisions = s.execute(select(AdminDivisionName.code, AdminDivisionName.name,
                                             AdminDivisionName.active)).all()
                promised = {(ALL_ITEMS, item): days for item, days in s.execute(
                    select(AdminItemSetting.item, AdminItemSetting.promised_days)
                    .where(AdminItemSetting.promised_days.is_not(None)))}
                promised.update({(county, item): days for county, item, days in s.execute(
                    select(DivisionDeadline.county_code, DivisionDeadline.item,
                           DivisionDeadline.promised_days))})
                calendar = load_calendar(s)
        except SQLAlchemyError as exc:  # e.g. not migrated yet: keep what we have, retry later
            log.warning("division settings not loaded (retrying in %gs; is the store "
                        "migrated? `hub.py migrate`): %s", self.refresh_seconds,
                        getattr(exc, "orig", None) or type(exc).__name__)
            snapshot = replace(self._snapshot, loaded_at=started)
        else:
            table = self.table
            assert table is not None, "bind() a routing table first"
            counties = table.city.counties
            snapshot = build_snapshot(
                table, settings,
                frozenset(code for code, _, active in divisions if not active),
                {code: name for code, name, _ in divisions if name and name != counties.get(code)},
                started)
            snapshot = replace(snapshot, promised=promised, calendar=calendar)
        with self._lock:
            if generation > self._generation:  # an older load finishing late loses
                self._snapshot, self._generation = snapshot, generation
            return self._snapshot

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._background, daemon=True,
                         name="division-settings-refresh").start()

    def _background(self) -> None:
        try:
            self.reload()
        except Exception:  # never let the refresher die silently
            log.exception("division settings refresh failed")
        finally:
            with self._lock:
                self._refreshing = False
