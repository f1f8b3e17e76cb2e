"""admin: units, users, roles, permissions, settings, call-log rollup

Revision ID: 0003
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = ("admin",)
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "admin_units",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("province_unit_id", sa.String(64)),
        sa.Column("division", sa.String(6)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_units"),
        sa.UniqueConstraint("name", name="uq_admin_units_name"),
    )
    op.create_table(
        "admin_roles",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_admin_roles"),
        sa.UniqueConstraint("name", name="uq_admin_roles_name"),
    )
    op.create_table(
        "admin_role_functions",
        sa.Column("role_id", BigId, nullable=False),
        sa.Column("function", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["role_id"], ["admin_roles.id"], ondelete="CASCADE",
                                name="fk_admin_role_functions_role_id_admin_roles"),
        sa.PrimaryKeyConstraint("role_id", "function", name="pk_admin_role_functions"),
    )
    op.create_table(
        "admin_users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("unit_id", BigId),
        sa.Column("province_user_id", sa.String(64)),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("all_divisions", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime()),
        sa.Column("session_epoch", sa.Integer(), nullable=False),
        sa.Column("last_login_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["unit_id"], ["admin_units.id"],
                                name="fk_admin_users_unit_id_admin_units"),
        sa.PrimaryKeyConstraint("id", name="pk_admin_users"),
        sa.UniqueConstraint("username", name="uq_admin_users_username"),
    )
    op.create_index("ix_admin_users_unit_id", "admin_users", ["unit_id"])
    op.create_table(
        "admin_user_roles",
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("role_id", BigId, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["admin_users.id"], ondelete="CASCADE",
                                name="fk_admin_user_roles_user_id_admin_users"),
        sa.ForeignKeyConstraint(["role_id"], ["admin_roles.id"], ondelete="CASCADE",
                                name="fk_admin_user_roles_role_id_admin_roles"),
        sa.PrimaryKeyConstraint("user_id", "role_id", name="pk_admin_user_roles"),
    )
    op.create_table(
        "admin_user_divisions",
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("division", sa.String(6), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["admin_users.id"], ondelete="CASCADE",
                                name="fk_admin_user_divisions_user_id_admin_users"),
        sa.PrimaryKeyConstraint("user_id", "division", name="pk_admin_user_divisions"),
    )
    op.create_table(
        "admin_login_failures",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("remote_addr", sa.String(64)),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_login_failures"),
    )
    op.create_index("ix_admin_login_failures_username", "admin_login_failures", ["username"])
    op.create_index("ix_admin_login_failures_at", "admin_login_failures", ["at"])
    op.create_table(
        "admin_settings",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_admin_settings"),
    )
    op.create_table(
        "admin_item_mappings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("county_item_code", sa.String(64), nullable=False),
        sa.Column("county_item_name", sa.String(100)),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_item_mappings"),
        sa.UniqueConstraint("item", "county_code", name="uq_admin_item_mappings_item_county_code"),
    )
    op.create_table(
        "admin_division_names",
        sa.Column("code", sa.String(6), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_admin_division_names"),
    )
    op.create_table(
        "admin_call_daily",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("interface", sa.String(64), nullable=False),
        sa.Column("division", sa.String(6)),
        sa.Column("outcome", sa.String(12), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("max_ms", sa.Float(), nullable=False),
        *[sa.Column(f"h{i}", sa.Integer(), nullable=False) for i in range(12)],
        sa.PrimaryKeyConstraint("id", name="pk_admin_call_daily"),
    )
    op.create_index("ix_admin_call_daily_day", "admin_call_daily",
                    ["day", "interface", "division"])
    op.create_table(
        "admin_call_daily_done",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_admin_call_daily_done"),
    )


def downgrade() -> None:
    for name in ("admin_call_daily_done", "admin_call_daily", "admin_division_names",
                 "admin_item_mappings", "admin_settings", "admin_login_failures",
                 "admin_user_divisions", "admin_user_roles", "admin_users",
                 "admin_role_functions", "admin_roles", "admin_units"):
        op.drop_table(name)
