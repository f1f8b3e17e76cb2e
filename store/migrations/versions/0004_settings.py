"""admin settings: division handling modes, item settings, modules and functions
(with the built-in modules of the navigation and the built-in functions seeded)

Revision ID: 0004
Revises: 0003
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The navigation as it was hard-coded before this revision: (code, name, order).
MODULES = (
    ("dashboard", "首页统计", 10),
    ("cases", "办件查询", 20),
    ("messages", "报文与重新提交", 30),
    ("manual", "人工办理", 40),
    ("fund", "资金监管", 50),
    ("interfaces", "接口管理", 60),
    ("users", "用户及权限", 70),
    ("settings", "系统设置", 80),
    ("audit", "审计记录", 90),
)
#: The built-in functions (admin.perms.FUNCTIONS at this revision): (code, name, module).
FUNCTIONS = (
    ("view", "查看", "dashboard"),
    ("export", "导出", "dashboard"),
    ("view_personal_data", "查看个人信息", "cases"),
    ("resubmit", "重新提交", "messages"),
    ("mark_stage", "标记环节", "manual"),
    ("manage_interfaces", "接口管理", "interfaces"),
    ("manage_users", "用户及权限管理", "users"),
    ("manage_settings", "系统设置", "settings"),
    ("view_audit", "查看审计记录", "audit"),
)


def upgrade() -> None:
    op.create_table(
        "admin_division_routes",
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("county_code", "item", name="pk_admin_division_routes"),
    )
    op.create_table(
        "admin_item_settings",
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(100)),
        sa.Column("promised_days", sa.Integer()),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("item", name="pk_admin_item_settings"),
    )
    modules = op.create_table(
        "admin_modules",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_admin_modules"),
    )
    functions = op.create_table(
        "admin_functions",
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("module_code", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("url", sa.String(500)),
        sa.Column("sort_order", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["module_code"], ["admin_modules.code"],
                                name="fk_admin_functions_module_code_admin_modules"),
        sa.PrimaryKeyConstraint("code", name="pk_admin_functions"),
    )
    op.create_index("ix_admin_functions_module_code", "admin_functions", ["module_code"])
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(modules, [
        {"code": code, "name": name, "sort_order": order, "enabled": True, "builtin": True,
         "updated_by": None, "updated_at": now} for code, name, order in MODULES])
    op.bulk_insert(functions, [
        {"code": code, "name": name, "module_code": module, "kind": "builtin", "url": None,
         "sort_order": 10 * (i + 1), "updated_by": None, "updated_at": now}
        for i, (code, name, module) in enumerate(FUNCTIONS)])


def downgrade() -> None:
    for name in ("admin_functions", "admin_modules", "admin_item_settings",
                 "admin_division_routes"):
        op.drop_table(name)
