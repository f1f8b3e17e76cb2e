"""Permissions in one place: the functions a role may grant, the signed-in principal,
and the data scope (divisions) applied to every query, page and export.

Roles grant functions of the functions table (``admin_functions``, ``admin.modules``):
the built-in ones below, whose codes the views check, and operators' link functions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, or_, select, true
from sqlalchemy.orm import Session

from store.admin_models import (
    AdminFunction,
    AdminRoleFunction,
    AdminUser,
    AdminUserDivision,
    AdminUserRole,
)

#: The built-in functions (权限项) with their default labels: the seed of the functions
#: table (migration 0004), each checked by code (``@requires``); never deleted.
FUNCTIONS: dict[str, str] = {
    "view": "查看",
    "resubmit": "重新提交",
    "mark_stage": "标记环节",
    "export": "导出",
    "manage_interfaces": "接口管理",
    "manage_users": "用户及权限管理",
    "manage_settings": "系统设置",
    "view_personal_data": "查看个人信息",
    "view_audit": "查看审计记录",
}


class Forbidden(Exception):
    """The principal lacks a function, or the object is outside its divisions."""


@dataclass(frozen=True)
class Principal:
    """Who is signed in: functions granted by roles, and divisions (None = all)."""

    user_id: int
    username: str
    display_name: str
    functions: frozenset[str]
    divisions: frozenset[str] | None

    def can(self, function: str) -> bool:
        return function in self.functions

    def require(self, function: str) -> None:
        if not self.can(function):
            raise Forbidden(function)

    def sees(self, division: str | None) -> bool:
        """Whether one object of this division is visible (None: city-wide objects)."""
        if self.divisions is None:
            return True
        return division is not None and division in self.divisions

    def scope(self, column: Any):  # type: ignore[no-untyped-def]
        """A WHERE clause limiting ``column`` (a division code column) to the scope."""
        if self.divisions is None:
            return true()
        if not self.divisions:
            return false()
        return column.in_(sorted(self.divisions))

    def visible_counties(self, counties: Iterable[str]) -> list[str]:
        return [c for c in counties if self.sees(c)]


def grantable(column: Any):  # type: ignore[no-untyped-def]
    """A WHERE clause keeping the function codes of ``column`` that exist: rows of the
    functions table, and the built-in ones in any case."""
    return or_(column.in_(select(AdminFunction.code).scalar_subquery()),
               column.in_(sorted(FUNCTIONS)))


def load_principal(session: Session, user: AdminUser) -> Principal:
    functions = set(session.scalars(
        select(AdminRoleFunction.function)
        .join(AdminUserRole, AdminUserRole.role_id == AdminRoleFunction.role_id)
        .where(AdminUserRole.user_id == user.id, grantable(AdminRoleFunction.function))
    ))
    divisions = None if user.all_divisions else frozenset(session.scalars(
        select(AdminUserDivision.division).where(AdminUserDivision.user_id == user.id)))
    return Principal(user.id, user.username, user.display_name, frozenset(functions),
                     divisions)
