"""Units, users, roles and their permissions (functions by role, data by division)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from admin import grants, people
from admin.auth import requires
from admin.flashes import flashes_at
from admin.modules import grouped
from admin.people import (
    PeopleError,
    create_user,
    role_functions,
    set_password,
    set_role_functions,
    set_user_access,
)
from admin.perms import load_principal
from admin.web import audit, bp, hub, me, render
from store.admin_models import (
    AdminRole,
    AdminUnit,
    AdminUser,
    AdminUserDivision,
    AdminUserRole,
)


@bp.get("/users")
@requires("manage_users")
def users():  # type: ignore[no-untyped-def]
    with hub().transaction() as s:
        rows = list(s.scalars(select(AdminUser).order_by(AdminUser.username)))
        roles = list(s.scalars(select(AdminRole).order_by(AdminRole.name)))
        units = list(s.scalars(select(AdminUnit).order_by(AdminUnit.name)))
        # only what the operator may act on or grant (admin.grants), themselves included
        rows = [u for u in rows if grants.may_act_on(s, me(), load_principal(s, u))]
        allowed = grants.grantable_functions(s, me())
        roles = [r for r in roles if role_functions(s, r.id) <= allowed]
        counties = {c: n for c, n in hub().city.counties.items() if me().sees(c)}
        if not grants.city_wide(me()):
            units = [u for u in units if u.division is not None and me().sees(u.division)]
        user_roles: dict[int, set[int]] = {}
        for ur in s.scalars(select(AdminUserRole)):
            user_roles.setdefault(ur.user_id, set()).add(ur.role_id)
        user_divs: dict[int, set[str]] = {}
        for ud in s.scalars(select(AdminUserDivision)):
            user_divs.setdefault(ud.user_id, set()).add(ud.division)
        functions = {r.id: role_functions(s, r.id) for r in roles}
        groups = [(module, [(code, label) for code, label in fns if code in allowed])
                  for module, fns in grouped(s)]
        groups = [(module, fns) for module, fns in groups if fns]
    return render("users.html", rows=rows, roles=roles, units=units, user_roles=user_roles,
                  user_divs=user_divs, role_fns=functions, counties=counties,
                  function_groups=groups, city_wide=grants.city_wide(me()))


_CONFLICT = "保存失败：数据已被他人修改，请刷新页面后重试"
#: admin_users.province_user_id is unique: single sign-on maps a province user to one operator.
PROVINCE_USER_TAKEN = "省平台用户ID {} 已关联其他操作员，一个省平台用户只能关联一名操作员"


def _conflict(column: Any, name: str, exclude_id: int | None, taken: str) -> str:
    """The message for a write refused by a constraint (nothing was changed): ``taken``
    if the name is now in use (another operator got there first), else a generic one."""
    with hub().transaction() as s:
        return taken if name and people.name_taken(s, column, name, exclude_id) else _CONFLICT


def _id(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _user_form(s, user: AdminUser) -> dict:  # type: ignore[no-untyped-def]
    """Apply the user form, after checking it grants nothing beyond the operator's own
    rights (``admin.grants``): roles, divisions, city-wide, unit."""
    f = request.form
    unit = f.get("unit_id", "").strip()
    if unit and not unit.isdigit() or any(not x.isdigit() for x in f.getlist("role")):
        raise PeopleError("表单内容不正确，请刷新页面后重试")
    unit_id = int(unit) if unit else None
    all_divisions = f.get("all_divisions") == "1"
    roles = [int(x) for x in f.getlist("role")]
    divisions = f.getlist("division")
    grants.check_divisions(me(), all_divisions, divisions)
    grants.check_roles(s, me(), roles)
    grants.check_unit(s, me(), unit_id)
    user.unit_id = unit_id
    user.display_name = (f.get("display_name") or user.username).strip()[:64]
    province_user_id = (f.get("province_user_id") or "").strip()[:64] or None
    if province_user_id and people.name_taken(s, AdminUser.province_user_id,
                                              province_user_id, user.id):
        raise PeopleError(PROVINCE_USER_TAKEN.format(province_user_id))
    user.province_user_id = province_user_id
    user.all_divisions = all_divisions
    set_user_access(s, user, roles, divisions, hub().city.counties)
    return {"roles": roles, "divisions": divisions, "all_divisions": user.all_divisions,
            "unit_id": user.unit_id, "province_user_id": user.province_user_id}


@bp.post("/users/new")
@requires("manage_users")
def user_new():  # type: ignore[no-untyped-def]
    f = request.form
    try:
        with hub().transaction() as s:
            user = create_user(s, f.get("username", ""), f.get("display_name", ""),
                               f.get("password", ""))
            detail = _user_form(s, user)
            audit(s, "create_user", user.username, detail)
        flash(f"已创建用户 {user.username}", "ok")
    except PeopleError as exc:
        flash(str(exc), "error")
    except IntegrityError:
        username = f.get("username", "").strip()
        flash(_conflict(AdminUser.username, username, None, f"用户名 {username} 已存在"),
              "error")
    flashes_at("users")
    return redirect(url_for("admin.users") + "#users")


@bp.post("/users/<int:user_id>")
@requires("manage_users")
def user_edit(user_id: int):  # type: ignore[no-untyped-def]
    f = request.form
    action = f.get("action", "save")
    try:
        with hub().transaction() as s:
            people.lock_people(s)  # before any other lock (the last administrator)
            had_admins = people.administrators(s) > 0
            user = grants.check_user(s, me(), user_id)
            if user is None:
                abort(404)
            if action == "save":
                detail = _user_form(s, user)
            elif action == "password":
                set_password(user, f.get("password", ""))
                detail = {"password": "reset"}
            elif action == "unlock":
                user.failed_logins, user.locked_until = 0, None
                detail = {}
            elif action in ("disable", "enable"):
                if user.id == me().user_id:
                    raise PeopleError("不能停用自己的账户")
                user.active = action == "enable"
                user.session_epoch += 1
                detail = {}
            elif action == "delete":
                if user.id == me().user_id:
                    raise PeopleError("不能删除自己的账户")
                s.delete(user)
                detail = {}
            else:
                raise PeopleError("操作不正确")
            people.check_administrators_remain(s, had_admins)
            audit(s, f"user_{action}", user.username, detail)
        flash("已保存", "ok")
    except PeopleError as exc:
        flash(str(exc), "error")
    except IntegrityError:
        pid = (f.get("province_user_id") or "").strip()[:64]
        flash(_conflict(AdminUser.province_user_id, pid, user_id,
                        PROVINCE_USER_TAKEN.format(pid)), "error")
    flashes_at("users")
    return redirect(url_for("admin.users") + "#users")


@bp.post("/roles")
@requires("manage_users")
def role_save():  # type: ignore[no-untyped-def]
    f = request.form
    role_id = f.get("role_id", "")
    try:
        with hub().transaction() as s:
            people.lock_people(s)  # before any other lock (the last administrator)
            had_admins = people.administrators(s) > 0
            if f.get("action") == "delete" and role_id.isdigit():
                role = s.get(AdminRole, int(role_id), with_for_update=True)
                if role is None:
                    abort(404)
                grants.check_role_editable(s, me(), role)
                s.delete(role)
                people.check_administrators_remain(s, had_admins)
                audit(s, "delete_role", role.name)
            else:
                name = f.get("name", "").strip()
                if not name or len(name) > 64:
                    raise PeopleError("请填写角色名称（最多 64 个字符）")
                if role_id and not role_id.isdigit():
                    raise PeopleError("表单内容不正确，请刷新页面后重试")
                role = s.get(AdminRole, int(role_id), with_for_update=True) \
                    if role_id else None
                if role_id and role is None:
                    abort(404)
                if role is not None:
                    grants.check_role_editable(s, me(), role)
                grants.check_functions(s, me(), f.getlist("function"))
                if people.name_taken(s, AdminRole.name, name,
                                     role.id if role is not None else None):
                    raise PeopleError(f"角色名称 {name} 已存在，请换一个名称")
                if role is None:
                    role = AdminRole(name=name)
                    s.add(role)
                    s.flush()
                role.name, role.description = name, f.get("description") or None
                set_role_functions(s, role, f.getlist("function"))
                people.check_administrators_remain(s, had_admins)
                audit(s, "save_role", name, {"functions": f.getlist("function")})
        flash("已保存角色", "ok")
    except PeopleError as exc:
        flash(str(exc), "error")
    except IntegrityError:
        name = f.get("name", "").strip()
        flash(_conflict(AdminRole.name, name, _id(role_id),
                        f"角色名称 {name} 已存在，请换一个名称"), "error")
    flashes_at("roles")
    return redirect(url_for("admin.users") + "#roles")


@bp.post("/units")
@requires("manage_users")
def unit_save():  # type: ignore[no-untyped-def]
    f = request.form
    unit_id = f.get("unit_id", "")
    try:
        with hub().transaction() as s:
            if f.get("action") == "delete" and unit_id.isdigit():
                unit = s.get(AdminUnit, int(unit_id), with_for_update=True)
                if unit is None:
                    abort(404)
                grants.check_unit_division(me(), unit.division)
                if s.scalars(select(AdminUser.id).where(AdminUser.unit_id == unit.id)).first():
                    raise PeopleError("该单位下还有用户，不能删除")
                s.delete(unit)
                audit(s, "delete_unit", unit.name)
            else:
                name = f.get("name", "").strip()
                division = f.get("division") or None
                if not name or len(name) > 100:
                    raise PeopleError("请填写单位名称")
                if division and division not in hub().city.counties:
                    raise PeopleError("区县代码不正确")
                if unit_id and not unit_id.isdigit():
                    raise PeopleError("表单内容不正确，请刷新页面后重试")
                unit = s.get(AdminUnit, int(unit_id), with_for_update=True) \
                    if unit_id else None
                if unit_id and unit is None:
                    abort(404)
                if unit is not None:
                    grants.check_unit_division(me(), unit.division)
                grants.check_unit_division(me(), division)
                if people.name_taken(s, AdminUnit.name, name,
                                     unit.id if unit is not None else None):
                    raise PeopleError(f"单位名称 {name} 已存在，请换一个名称")
                if unit is None:
                    unit = AdminUnit(name=name)
                    s.add(unit)
                unit.name, unit.division = name, division
                unit.province_unit_id = (f.get("province_unit_id") or "").strip()[:64] or None
                audit(s, "save_unit", name, {"province_unit_id": unit.province_unit_id,
                                             "division": division})
        flash("已保存单位", "ok")
    except PeopleError as exc:
        flash(str(exc), "error")
    except IntegrityError:
        name = f.get("name", "").strip()
        flash(_conflict(AdminUnit.name, name, _id(unit_id),
                        f"单位名称 {name} 已存在，请换一个名称"), "error")
    flashes_at("units")
    return redirect(url_for("admin.users") + "#units")
