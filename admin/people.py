"""Units, users and roles: the store operations behind the people pages and the CLI."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, distinct, func, select
from sqlalchemy.orm import Session

from admin.auth import check_password_policy, hash_password
from admin.modules import function_codes
from admin.perms import FUNCTIONS
from store.admin_models import (
    AdminRole,
    AdminRoleFunction,
    AdminUser,
    AdminUserDivision,
    AdminUserRole,
)

ADMIN_ROLE = "系统管理员"
#: The function that makes someone an administrator of people (users and roles).
USER_ADMIN_FUNCTION = "manage_users"


class PeopleError(ValueError):
    pass


def name_taken(s: Session, column: Any, name: str, exclude_id: int | None = None) -> bool:
    """Whether a row other than ``exclude_id`` already has ``name`` in the unique
    ``column`` (e.g. ``AdminRole.name``). A check before writing, for a clear message;
    callers still catch the unique violation for the race with another operator."""
    model = column.class_
    query = select(model.id).where(column == name)
    if exclude_id is not None:
        query = query.where(model.id != exclude_id)
    return s.scalars(query.limit(1)).first() is not None


def set_role_functions(s: Session, role: AdminRole, functions: Iterable[str]) -> None:
    wanted = set(functions)
    unknown = wanted - function_codes(s)
    if unknown:
        raise PeopleError(f"未知权限项 {sorted(unknown)[0]}")
    s.execute(delete(AdminRoleFunction).where(AdminRoleFunction.role_id == role.id))
    s.add_all(AdminRoleFunction(role_id=role.id, function=f) for f in sorted(wanted))


def role_functions(s: Session, role_id: int) -> set[str]:
    return set(s.scalars(select(AdminRoleFunction.function)
                         .where(AdminRoleFunction.role_id == role_id)))


def ensure_admin_role(s: Session) -> AdminRole:
    role = s.scalars(select(AdminRole).where(AdminRole.name == ADMIN_ROLE)).first()
    if role is None:
        role = AdminRole(name=ADMIN_ROLE, description="全部功能")
        s.add(role)
        s.flush()
    # every built-in function; link functions it was granted stay
    set_role_functions(s, role, set(FUNCTIONS) | (role_functions(s, role.id) & function_codes(s)))
    return role


def set_user_access(s: Session, user: AdminUser, role_ids: Iterable[int],
                    divisions: Iterable[str], counties: Iterable[str]) -> None:
    divisions = set(divisions)
    unknown = divisions - set(counties)
    if unknown:
        raise PeopleError(f"{sorted(unknown)[0]} 不是本市区县")
    s.execute(delete(AdminUserRole).where(AdminUserRole.user_id == user.id))
    s.execute(delete(AdminUserDivision).where(AdminUserDivision.user_id == user.id))
    s.add_all(AdminUserRole(user_id=user.id, role_id=r) for r in sorted(set(role_ids)))
    s.add_all(AdminUserDivision(user_id=user.id, division=d) for d in sorted(divisions))


def create_user(s: Session, username: str, display_name: str, password: str,
                all_divisions: bool = False, unit_id: int | None = None,
                province_user_id: str | None = None) -> AdminUser:
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("_", "").replace(
            ".", "").replace("-", "").isalnum():
        raise PeopleError("用户名只能包含字母、数字、下划线、点和横线（最多 64 个字符）")
    if name_taken(s, AdminUser.username, username):
        raise PeopleError(f"用户名 {username} 已存在")
    reason = check_password_policy(password)
    if reason:
        raise PeopleError(reason)
    user = AdminUser(username=username, display_name=display_name.strip() or username,
                     password_hash=hash_password(password), all_divisions=all_divisions,
                     unit_id=unit_id, province_user_id=province_user_id or None,
                     active=True, failed_logins=0, session_epoch=0)
    s.add(user)
    s.flush()
    return user


def set_password(user: AdminUser, password: str) -> None:
    reason = check_password_policy(password)
    if reason:
        raise PeopleError(reason)
    user.password_hash = hash_password(password)
    user.session_epoch += 1
    user.failed_logins, user.locked_until = 0, None


# --------------------------------------------------------------------------- last admin


def lock_people(s: Session) -> None:
    """Serialise every change that could remove the last administrator: each takes the
    row locks of all roles first (``FOR UPDATE``, in id order; on SQLite the write
    transaction is already exclusive). Two operators disabling the last two
    administrators at once: the second waits, then sees the first's change and is
    refused by ``check_administrators_remain``. Call it before any other lock."""
    s.execute(select(AdminRole.id).order_by(AdminRole.id).with_for_update()).all()


def administrators(s: Session) -> int:
    """Active city-wide users holding ``manage_users`` through a role."""
    return s.scalar(
        select(func.count(distinct(AdminUser.id)))
        .join(AdminUserRole, AdminUserRole.user_id == AdminUser.id)
        .join(AdminRoleFunction, AdminRoleFunction.role_id == AdminUserRole.role_id)
        .where(AdminUser.active.is_(True), AdminUser.all_divisions.is_(True),
               AdminRoleFunction.function == USER_ADMIN_FUNCTION)) or 0


def user_admin_roles(s: Session) -> int:
    return s.scalar(select(func.count(distinct(AdminRoleFunction.role_id))).where(
        AdminRoleFunction.function == USER_ADMIN_FUNCTION)) or 0


def check_administrators_remain(s: Session, had_admins: bool = True) -> None:
    """After a change (in its transaction, under ``lock_people``): at least one active
    city-wide administrator and one role granting user management remain, or
    ``PeopleError`` (the transaction rolls back, the change with it). A store that had
    none before (``had_admins`` False) is not held to it."""
    if not had_admins:
        return
    s.flush()
    if user_admin_roles(s) == 0:
        raise PeopleError("这是最后一个含“用户管理”权限的角色，不能删除或去掉该权限"
                          "（否则没有人能再管理用户）")
    if administrators(s) == 0:
        raise PeopleError("这是最后一个可用的全市系统管理员，不能停用、删除或取消其权限；"
                          "请先为另一位用户授予管理员角色")
