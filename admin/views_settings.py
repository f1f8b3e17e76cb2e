"""System settings: parameters, business items' county mapping, division names."""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from sqlalchemy import select

from admin.auth import requires
from admin.settings import PARAMS, SettingError, all_settings, set_setting
from admin.web import audit, bp, hub, me, render
from mapping.items import ITEMS
from store.admin_models import AdminDivisionName, AdminItemMapping
from store.models import utcnow


@bp.get("/settings")
@requires("manage_settings")
def settings():  # type: ignore[no-untyped-def]
    with hub().transaction() as s:
        values = all_settings(s)
        mappings = list(s.scalars(select(AdminItemMapping).order_by(
            AdminItemMapping.item, AdminItemMapping.county_code)))
        divisions = {d.code: d for d in s.scalars(select(AdminDivisionName))}
    return render("settings.html", params=PARAMS, values=values, mappings=mappings,
                  divisions=divisions, items=ITEMS, counties=hub().city.counties)


@bp.post("/settings/params")
@requires("manage_settings")
def settings_params():  # type: ignore[no-untyped-def]
    changed = {}
    try:
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
    return redirect(url_for("admin.settings"))


@bp.post("/settings/mapping")
@requires("manage_settings")
def settings_mapping():  # type: ignore[no-untyped-def]
    f = request.form
    item, county = f.get("item", ""), f.get("county_code", "")
    code = f.get("county_item_code", "").strip()
    if item not in ITEMS or county not in hub().city.counties:
        flash("事项或区县不正确", "error")
        return redirect(url_for("admin.settings"))
    with hub().transaction() as s:
        row = s.scalars(select(AdminItemMapping).where(
            AdminItemMapping.item == item, AdminItemMapping.county_code == county)).first()
        if f.get("action") == "delete" or not code:
            if row is not None:
                s.delete(row)
                audit(s, "delete_item_mapping", f"{item}@{county}")
        else:
            if len(code) > 64:
                flash("区县事项编码过长", "error")
                return redirect(url_for("admin.settings"))
            if row is None:
                row = AdminItemMapping(item=item, county_code=county, county_item_code=code)
                s.add(row)
            row.county_item_code = code
            row.county_item_name = (f.get("county_item_name") or "").strip()[:100] or None
            row.updated_by, row.updated_at = me().username, utcnow()
            audit(s, "save_item_mapping", f"{item}@{county}",
                  {"code": code, "name": row.county_item_name})
    flash("已保存事项对应", "ok")
    return redirect(url_for("admin.settings") + "#mapping")


@bp.post("/settings/division")
@requires("manage_settings")
def settings_division():  # type: ignore[no-untyped-def]
    f = request.form
    code, name = f.get("code", ""), f.get("name", "").strip()
    if code not in hub().city.counties or not (1 <= len(name) <= 64):
        flash("区划代码或名称不正确", "error")
        return redirect(url_for("admin.settings"))
    with hub().transaction() as s:
        row = s.get(AdminDivisionName, code)
        if row is None:
            row = AdminDivisionName(code=code, name=name)
            s.add(row)
        row.name, row.active = name, f.get("active") == "1"
        row.updated_by, row.updated_at = me().username, utcnow()
        audit(s, "save_division", code, {"name": name, "active": row.active})
    flash("已保存区划", "ok")
    return redirect(url_for("admin.settings") + "#divisions")
