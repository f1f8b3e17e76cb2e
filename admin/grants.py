"""What an operator may grant and on whom they may act (users, roles, units).

The rule: nobody hands out more than they hold. An operator grants only functions they
hold themselves and only divisions inside their own scope; only a city-wide operator
(``all_divisions``) makes anyone city-wide. They act (create, edit, reset a password,
unlock, disable, delete, assign roles) only on users whose scope lies inside theirs and
whose functions they hold — resetting the password of someone holding more would be a
way to take those rights. They edit or delete a role only if they could grant it and
every holder of it is a user they may act on (a role change changes its holders).

Every check raises ``GrantRefused`` (a ``PeopleError``: the view flashes the Chinese
message and its transaction rolls back, audit row included). The rows checked are read
``FOR UPDATE`` (a row lock on PostgreSQL; SQLite writers are serialised anyway), so a
concurrent change of the target cannot slip between the check and the write.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.modules import function_codes
from admin.people import PeopleError
from admin.perms import Principal, load_principal
from store.admin_models import (
    AdminFunction,
    AdminRole,
    AdminRoleFunction,
    AdminUnit,
    AdminUser,
    AdminUserRole,
)

#: Link functions (a navigation entry) are defined by the holders of this function, so
#: they may grant them too; a built-in function is granted only by someone who holds it.
CATALOGUE_FUNCTION = "manage_settings"


class GrantRefused(PeopleError):
    """A change beyond the operator's own rights; nothing was changed."""


def city_wide(actor: Principal) -> bool:
    return actor.divisions is None


def grantable_functions(s: Session, actor: Principal) -> set[str]:
    """The function codes ``actor`` may put into a role."""
    mine = set(actor.functions)
    if actor.can(CATALOGUE_FUNCTION):
        mine |= set(s.scalars(select(AdminFunction.code).where(AdminFunction.kind == "link")))
    return mine


def _some(values: Iterable[str]) -> str:
    """A few of ``values`` for a message (they may be a hostile form's, and the message
    travels in the session cookie)."""
    listed = sorted(values)
    text = "、".join(v[:32] for v in listed[:3])
    return text + (" 等" if len(listed) > 3 else "")


def check_functions(s: Session, actor: Principal, functions: Iterable[str]) -> None:
    wanted = set(functions)
    unknown = wanted - function_codes(s)
    if unknown:
        raise GrantRefused(f"未知权限项：{_some(unknown)}")
    beyond = wanted - grantable_functions(s, actor)
    if beyond:
        raise GrantRefused(f"不能授予您自己没有的权限：{_some(beyond)}")


def check_divisions(actor: Principal, all_divisions: bool, divisions: Iterable[str]) -> None:
    """The scope to be given lies inside the actor's own."""
    if city_wide(actor):
        return
    if all_divisions:
        raise GrantRefused("只有全市范围的管理员才能授予全市数据权限")
    beyond = set(divisions) - set(actor.divisions or ())
    if beyond:
        raise GrantRefused(f"不能授予您数据权限以外的区县：{_some(beyond)}")


def _locked_user(s: Session, user_id: int) -> AdminUser | None:
    return s.scalars(select(AdminUser).where(AdminUser.id == user_id)
                     .with_for_update()).first()


def may_act_on(s: Session, actor: Principal, target: Principal) -> bool:
    """Whether ``target``'s scope and functions lie inside what ``actor`` may grant."""
    return (target.functions <= grantable_functions(s, actor)
            and _scope_inside(actor, target))


def check_user(s: Session, actor: Principal, user_id: int) -> AdminUser | None:
    """The user (row-locked) if ``actor`` may act on them; None if there is none."""
    user = _locked_user(s, user_id)
    if user is None:
        return None
    if not may_act_on(s, actor, load_principal(s, user)):
        raise GrantRefused("该用户的数据权限或功能权限超出您的权限范围，不能对其操作")
    return user


def role_functions(s: Session, role_id: int) -> set[str]:
    return set(s.scalars(select(AdminRoleFunction.function)
                         .where(AdminRoleFunction.role_id == role_id)))


def check_roles(s: Session, actor: Principal, role_ids: Iterable[int]) -> None:
    """Every role exists and grants only functions ``actor`` may grant."""
    wanted = sorted(set(role_ids))
    roles = {r.id: r for r in s.scalars(select(AdminRole).where(AdminRole.id.in_(wanted))
                                        .with_for_update())} if wanted else {}
    missing = [r for r in wanted if r not in roles]
    if missing:
        raise GrantRefused(f"角色 {missing[0]} 不存在")
    allowed = grantable_functions(s, actor)
    for role_id in wanted:
        if not role_functions(s, role_id) <= allowed:
            raise GrantRefused(f"角色 {roles[role_id].name} 含有您自己没有的权限，不能授予")


def check_role_editable(s: Session, actor: Principal, role: AdminRole) -> None:
    """``actor`` could grant the role as it is, and may act on each of its holders."""
    if not role_functions(s, role.id) <= grantable_functions(s, actor):
        raise GrantRefused(f"角色 {role.name} 含有您自己没有的权限，不能修改或删除")
    holders = s.scalars(select(AdminUser).join(AdminUserRole,
                                               AdminUserRole.user_id == AdminUser.id)
                        .where(AdminUserRole.role_id == role.id))
    for user in holders:  # their scope and their other roles' functions (``may_act_on``):
        # a county manager had added manage_users to a role a stronger clerk also held
        if not may_act_on(s, actor, load_principal(s, user)):
            raise GrantRefused(f"角色 {role.name} 也授予了您权限范围以外的用户，不能修改或删除")


def _scope_inside(actor: Principal, target: Principal) -> bool:
    if city_wide(actor):
        return True
    return target.divisions is not None and target.divisions <= (actor.divisions or set())


def check_unit(s: Session, actor: Principal, unit_id: int | None) -> None:
    """The unit exists and lies inside the actor's scope (a city-level unit: city-wide
    operators only)."""
    if unit_id is None:
        return
    unit = s.get(AdminUnit, unit_id)
    if unit is None:
        raise GrantRefused("单位不存在")
    check_unit_division(actor, unit.division)


def check_unit_division(actor: Principal, division: str | None) -> None:
    if city_wide(actor):
        return
    if division is None or division not in (actor.divisions or set()):
        raise GrantRefused("该单位不在您的数据权限范围内")
