"""System settings (系统设置): parameters; divisions (name, active, handling mode, also per
item); business items (name, promised days, enabled) and their county item codes;
modules and functions. Every change is validated — a refused one changes nothing and
says why — and audited with its old and new values."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from sqlalchemy import delete, select

from admin import grants
from admin.auth import requires
from admin.flashes import flashes_at
from admin.modules import (
    BUILTIN_MODULES,
    LOCKED_MODULE,
    CatalogueError,
    check_code,
    check_name,
    check_order,
    check_url,
    functions,
    modules,
)
from admin.perms import FUNCTIONS
from admin.settings import PARAMS, SettingError, all_settings, set_setting
from admin.switches import is_enabled, province_interface, set_switch
from admin.web import audit, bp, hub, me, render
from mapping.items import ITEMS
from routes.overrides import ALL_ITEMS, auto_source
from routes.table import EXTRA_ITEMS
from store.admin_models import (
    AdminDivisionName,
    AdminDivisionRoute,
    AdminFunction,
    AdminItemMapping,
    AdminItemSetting,
    AdminModule,
    AdminRoleFunction,
)
from store.models import InterfaceSwitch, utcnow

#: The handling modes an operator can choose: follow the routing table, auto, manual.
FOLLOW = "table"
MODE_LABELS = {FOLLOW: "跟随路由表", "auto": "自动", "manual": "人工"}
#: Items that can be set per county: the catalogue's and the routed extras.
EXTRA_ITEM_NAMES = {"fund_supervision": "资金监管事件"}


def _back(anchor: str):  # type: ignore[no-untyped-def]
    """Back to the form's section; this request's messages are shown there (the operator
    is looking at the form, not at the top of a long page)."""
    flashes_at(anchor)
    return redirect(url_for("admin.settings") + "#" + anchor)


def city_wide_only(what: str) -> None:
    """Settings that hold for every county (parameters, items, modules, functions, the
    calendar, interfaces) are changed only by a city-wide operator; a county operator
    holding ``manage_settings`` changes only its own divisions' settings."""
    if not grants.city_wide(me()):
        raise SettingError(f"{what}对全市所有区县生效，只有全市范围的管理员才能修改")


def _table_summary() -> dict[str, dict[str, Any]]:
    """Per county, what the YAML routing table says: its modes and partners."""
    table = hub().routes
    out: dict[str, dict[str, Any]] = {}
    for (county, _), r in sorted(table.routes.items()):
        entry = out.setdefault(county, {"modes": set(), "partners": set()})
        entry["modes"].add(r.mode)
        if r.partner:
            entry["partners"].add(r.partner)
    for county, entry in out.items():
        modes = entry["modes"]
        entry["mode"] = ("按事项（自动/人工）" if len(modes) > 1
                         else MODE_LABELS.get(next(iter(modes)), "")) if modes else ""
        entry["can_auto"] = auto_source(table, county) is not None
    return out


@bp.get("/settings")
@requires("manage_settings")
def settings():  # type: ignore[no-untyped-def]
    h = hub()
    with h.transaction() as s:
        values = all_settings(s)
        mappings = list(s.scalars(select(AdminItemMapping).order_by(
            AdminItemMapping.item, AdminItemMapping.county_code)))
        divisions = {d.code: d for d in s.scalars(select(AdminDivisionName))}
        modes = {(r.county_code, r.item): r for r in s.scalars(select(AdminDivisionRoute)
                                                               .order_by(AdminDivisionRoute.county_code,
                                                                         AdminDivisionRoute.item))}
        item_rows = {r.item: r for r in s.scalars(select(AdminItemSetting))}
        switches = {w.name: w for w in s.scalars(select(InterfaceSwitch).where(
            InterfaceSwitch.kind == "interface"))}
        mods = modules(s)
        fns = functions(s)
    routed_items = {**{code: it.name_zh for code, it in ITEMS.items()},
                    **{code: EXTRA_ITEM_NAMES.get(code, code) for code in EXTRA_ITEMS}}
    return render(
        "settings.html", params=PARAMS, values=values, mappings=mappings,
        divisions=divisions, items=ITEMS, counties=h.city.counties, modes=modes,
        item_modes=[r for (_, item), r in modes.items() if item != ALL_ITEMS],
        mode_labels=MODE_LABELS, table=_table_summary(), source=h.routes.source,
        table_counties=h.routes.counties(), routed_items=routed_items, item_rows=item_rows,
        switches=switches, province_interface=province_interface, modules=mods,
        functions=fns, builtin_modules=BUILTIN_MODULES, locked_module=LOCKED_MODULE)


@bp.post("/settings/params")
@requires("manage_settings")
def settings_params():  # type: ignore[no-untyped-def]
    changed = {}
    try:
        city_wide_only("系统参数")
        with hub().transaction() as s:
            for key in PARAMS:
                if key in request.form:
                    old, new = set_setting(s, key, request.form[key], me().username)
                    if old != new:
                        changed[key] = {"old": old, "new": new}
            if changed:
                audit(s, "change_settings", ",".join(changed)[:128], changed)
        flash("已保存参数" if changed else "没有变化", "ok")
    except SettingError as exc:
        flash(str(exc), "error")
    return _back("params")


# --------------------------------------------------------------------------- items


@bp.post("/settings/mapping")
@requires("manage_settings")
def settings_mapping():  # type: ignore[no-untyped-def]
    f = request.form
    item, county = f.get("item", ""), f.get("county_code", "")
    code = f.get("county_item_code", "").strip()
    name = (f.get("county_item_name") or "").strip()
    if item not in ITEMS or county not in hub().city.counties or not me().sees(county):
        flash("事项或区县不正确", "error")
        return _back("mapping")
    if len(code) > 64 or len(name) > 100:
        flash("区县事项编码（最多 64 个字符）或名称（最多 100 个字符）过长", "error")
        return _back("mapping")
    with hub().transaction() as s:
        row = s.scalars(select(AdminItemMapping).where(
            AdminItemMapping.item == item, AdminItemMapping.county_code == county)).first()
        old = None if row is None else {"code": row.county_item_code,
                                        "name": row.county_item_name}
        if f.get("action") == "delete" or not code:
            if row is not None:
                s.delete(row)
                audit(s, "delete_item_mapping", f"{item}@{county}", {"old": old, "new": None})
        else:
            if row is None:
                row = AdminItemMapping(item=item, county_code=county, county_item_code=code)
                s.add(row)
            row.county_item_code = code
            row.county_item_name = name or None
            row.updated_by, row.updated_at = me().username, utcnow()
            new = {"code": code, "name": row.county_item_name}
            audit(s, "save_item_mapping", f"{item}@{county}", {"old": old, "new": new})
    flash("已保存事项对应", "ok")
    return _back("mapping")


@bp.post("/settings/item")
@requires("manage_settings")
def settings_item():  # type: ignore[no-untyped-def]
    """An item's display name, promised working days and (province items) 启用: the
    switch of its interface ``province.in.<item>`` (off: the province gets 3001)."""
    f = request.form
    code = f.get("item", "")
    item = ITEMS.get(code)
    try:
        if item is None:
            raise SettingError("事项不正确")
        city_wide_only("业务事项的名称、承诺时限和启用")
        name = f.get("display_name", "").strip()
        if len(name) > 100:
            raise SettingError(f"{item.name_zh}：名称最多 100 个字符")
        days_text = f.get("promised_days", "").strip()
        days = None
        if days_text:
            try:
                days = int(days_text)
            except ValueError:
                days = 0
            if not 1 <= days <= 365:
                raise SettingError(
                    f"{item.name_zh}：承诺办结时限须为 1–365 的整数（工作日），或留空")
        with hub().transaction() as s:
            row = s.get(AdminItemSetting, code)
            interface = province_interface(code)
            old = {"name": (row.display_name if row else None) or item.name_zh,
                   "promised_days": row.promised_days if row else None}
            new = {"name": name or item.name_zh, "promised_days": days}
            if item.from_province:
                old["enabled"] = is_enabled(s, "interface", interface)
                new["enabled"] = f.get("enabled") == "1"
            if old == new:
                flash("没有变化", "ok")
                return _back("items")
            if row is None:
                row = AdminItemSetting(item=code)
                s.add(row)
            row.display_name = name if name and name != item.name_zh else None
            row.promised_days = days
            row.updated_by, row.updated_at = me().username, utcnow()
            if item.from_province and old["enabled"] != new["enabled"]:
                set_switch(s, "interface", interface, new["enabled"],
                           None if new["enabled"] else f"业务事项停用（系统设置，{me().username}）")
            audit(s, "save_item", code, {"old": old, "new": new})
        flash(f"已保存事项 {new['name']}", "ok")
    except SettingError as exc:
        flash(str(exc), "error")
    return _back("items")


# --------------------------------------------------------------------------- divisions


def _county(code: str) -> str:
    counties = hub().city.counties
    if code not in counties or not me().sees(code):
        raise SettingError("区划代码不正确，或不在您的数据权限范围内")
    return code


def _mode(text: str, county: str, item: str | None) -> str:
    if text not in MODE_LABELS:
        raise SettingError("办理方式不正确")
    if text == "auto" and auto_source(hub().routes, county, item) is None:
        name = hub().city.counties[county]
        raise SettingError(
            f"{name}（{county}）在路由表中没有区县接口（partner），不能设为自动办理；"
            f"请先在路由表 {hub().routes.source} 中为它配置对接方")
    return text


def _set_mode(s, county: str, item: str, mode: str) -> str:  # type: ignore[no-untyped-def]
    """Store ``mode`` for (county, item); returns the old one (``table``: no row)."""
    row = s.get(AdminDivisionRoute, (county, item))
    old = row.mode if row is not None else FOLLOW
    if mode == FOLLOW:
        if row is not None:
            s.delete(row)
    else:
        if row is None:
            row = AdminDivisionRoute(county_code=county, item=item, mode=mode)
            s.add(row)
        row.mode = mode
        row.updated_by, row.updated_at = me().username, utcnow()
    return old


@bp.post("/settings/division")
@requires("manage_settings")
def settings_division():  # type: ignore[no-untyped-def]
    """A county's display name, active flag and handling mode for all its items."""
    f = request.form
    try:
        code = _county(f.get("code", ""))
        name = f.get("name", "").strip()
        if not 1 <= len(name) <= 64:
            raise SettingError("区划名称须为 1–64 个字符")
        active = f.get("active") == "1"
        mode = _mode(f.get("mode", FOLLOW), code, None)
        with hub().transaction() as s:
            row = s.get(AdminDivisionName, code)
            default = hub().city.counties[code]
            route = s.get(AdminDivisionRoute, (code, ALL_ITEMS))
            old = {"name": row.name if row else default, "active": row.active if row else True,
                   "mode": route.mode if route else FOLLOW}
            new = {"name": name, "active": active, "mode": mode}
            if old == new:
                flash("没有变化", "ok")
                return _back("divisions")
            if row is None:
                row = AdminDivisionName(code=code, name=name)
                s.add(row)
            row.name, row.active = name, active
            row.updated_by, row.updated_at = me().username, utcnow()
            _set_mode(s, code, ALL_ITEMS, mode)
            audit(s, "save_division", code, {"old": old, "new": new})
        hub().overrides.reload()
        flash(f"已保存区划 {name}（{code}）", "ok")
    except SettingError as exc:
        flash(str(exc), "error")
    return _back("divisions")


@bp.post("/settings/division-item")
@requires("manage_settings")
def settings_division_item():  # type: ignore[no-untyped-def]
    """A county's handling mode for one item (wins over the county's own)."""
    f = request.form
    try:
        county = _county(f.get("county_code", ""))
        item = f.get("item", "")
        if item not in ITEMS and item not in EXTRA_ITEMS:
            raise SettingError("事项不正确")
        mode = _mode(f.get("mode", FOLLOW), county, item)
        with hub().transaction() as s:
            row = s.get(AdminDivisionRoute, (county, item))
            if (row.mode if row is not None else FOLLOW) == mode:
                flash("没有变化", "ok")
                return _back("division-items")
            old = _set_mode(s, county, item, mode)
            audit(s, "save_division_item", f"{item}@{county}",
                  {"old": {"mode": old}, "new": {"mode": mode}})
        hub().overrides.reload()
        flash("已保存区县事项办理方式", "ok")
    except SettingError as exc:
        flash(str(exc), "error")
    return _back("division-items")


# --------------------------------------------------------------------------- modules


def _module_state(m: AdminModule) -> dict[str, Any]:
    return {"name": m.name, "sort_order": m.sort_order, "enabled": m.enabled}


@bp.post("/settings/module")
@requires("manage_settings")
def settings_module():  # type: ignore[no-untyped-def]
    """Add, modify (name, order, enabled) or delete a module."""
    f = request.form
    action = f.get("action", "save")
    try:
        if not grants.city_wide(me()):
            raise CatalogueError("系统模块对全市生效，只有全市范围的管理员才能修改")
        with hub().transaction() as s:
            if action == "add":
                code = check_code(f.get("code", ""), "模块")
                if s.get(AdminModule, code) is not None:
                    raise CatalogueError(f"模块编码 {code} 已存在")
                m = AdminModule(code=code, name=check_name(f.get("name", ""), "模块"),
                                sort_order=check_order(f.get("sort_order", "0") or "0"),
                                enabled=True, builtin=False, updated_by=me().username,
                                updated_at=utcnow())
                s.add(m)
                audit(s, "add_module", code, {"old": None, "new": _module_state(m)})
                message = f"已新增模块 {m.name}"
            else:
                m = s.get(AdminModule, f.get("code", ""))
                if m is None:
                    raise CatalogueError("模块不存在")
                old = _module_state(m)
                if action == "delete":
                    if m.builtin:
                        raise CatalogueError(f"{m.name} 是内置模块，不能删除（可以停用）")
                    if s.scalars(select(AdminFunction.code)
                                 .where(AdminFunction.module_code == m.code)).first():
                        raise CatalogueError(f"模块 {m.name} 下还有功能，请先移到其他模块或删除")
                    s.delete(m)
                    audit(s, "delete_module", m.code, {"old": old, "new": None})
                    message = f"已删除模块 {m.name}"
                elif action == "save":
                    new = {"name": check_name(f.get("name", ""), "模块"),
                           "sort_order": check_order(f.get("sort_order", "0") or "0"),
                           "enabled": f.get("enabled") == "1"}
                    if m.code == LOCKED_MODULE and not new["enabled"]:
                        raise CatalogueError("系统设置模块不能停用（否则无法再修改设置）")
                    if new == old:
                        flash("没有变化", "ok")
                        return _back("modules")
                    m.name, m.sort_order, m.enabled = new["name"], new["sort_order"], new["enabled"]
                    m.updated_by, m.updated_at = me().username, utcnow()
                    audit(s, "save_module", m.code, {"old": old, "new": new})
                    message = f"已保存模块 {m.name}"
                else:
                    raise CatalogueError("操作不正确")
        flash(message, "ok")
    except CatalogueError as exc:
        flash(str(exc), "error")
    return _back("modules")


# --------------------------------------------------------------------------- functions


def _function_state(fn: AdminFunction) -> dict[str, Any]:
    return {"name": fn.name, "module": fn.module_code, "url": fn.url,
            "sort_order": fn.sort_order}


def _module_code(s, code: str) -> str:  # type: ignore[no-untyped-def]
    if s.get(AdminModule, code) is None:
        raise CatalogueError("所属模块不存在")
    return code


@bp.post("/settings/function")
@requires("manage_settings")
def settings_function():  # type: ignore[no-untyped-def]
    """Add a link function, modify a function (name, module, order; a link's URL), or
    delete a link function (and its grants). Built-in functions are never deleted."""
    f = request.form
    action = f.get("action", "save")
    try:
        if not grants.city_wide(me()):
            raise CatalogueError("系统功能对全市生效，只有全市范围的管理员才能修改")
        with hub().transaction() as s:
            if action == "add":
                code = check_code(f.get("code", ""), "功能")
                if s.get(AdminFunction, code) is not None or code in FUNCTIONS:
                    raise CatalogueError(f"功能编码 {code} 已存在")
                fn = AdminFunction(code=code, name=check_name(f.get("name", ""), "功能"),
                                   module_code=_module_code(s, f.get("module_code", "")),
                                   kind="link", url=check_url(f.get("url", "")),
                                   sort_order=check_order(f.get("sort_order", "0") or "0"),
                                   updated_by=me().username, updated_at=utcnow())
                s.add(fn)
                audit(s, "add_function", code, {"old": None, "new": _function_state(fn)})
                message = f"已新增功能 {fn.name}"
            else:
                fn = s.get(AdminFunction, f.get("code", ""))
                if fn is None:
                    raise CatalogueError("功能不存在")
                old = _function_state(fn)
                if action == "delete":
                    if fn.kind == "builtin" or fn.code in FUNCTIONS:
                        raise CatalogueError(f"{fn.name} 是内置功能，程序按编码检查它，不能删除"
                                             "（可以改名或移到其他模块）")
                    roles = sorted(s.scalars(select(AdminRoleFunction.role_id).where(
                        AdminRoleFunction.function == fn.code)))
                    s.execute(delete(AdminRoleFunction).where(
                        AdminRoleFunction.function == fn.code))
                    s.delete(fn)
                    audit(s, "delete_function", fn.code,
                          {"old": old, "new": None, "revoked_from_roles": roles})
                    message = f"已删除功能 {fn.name}"
                elif action == "save":
                    new = {"name": check_name(f.get("name", ""), "功能"),
                           "module": _module_code(s, f.get("module_code", "")),
                           "url": check_url(f.get("url", "")) if fn.kind == "link" else None,
                           "sort_order": check_order(f.get("sort_order", "0") or "0")}
                    if new == old:
                        flash("没有变化", "ok")
                        return _back("functions")
                    fn.name, fn.module_code, fn.url, fn.sort_order = (
                        new["name"], new["module"], new["url"], new["sort_order"])
                    fn.updated_by, fn.updated_at = me().username, utcnow()
                    audit(s, "save_function", fn.code, {"old": old, "new": new})
                    message = f"已保存功能 {fn.name}"
                else:
                    raise CatalogueError("操作不正确")
        flash(message, "ok")
    except CatalogueError as exc:
        flash(str(exc), "error")
    return _back("functions")
