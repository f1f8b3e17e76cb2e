"""deadlines: the working-day calendar (years with data and their exceptions to
Monday–Friday), counties' promised days per item, and each sub-case's due time

Revision ID: 0005_deadlines
Revises: 0004
"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = "0005_deadlines"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_years",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
    )
    op.create_table(
        "calendar_days",
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
    )
    op.create_table(
        "admin_division_deadlines",
        sa.Column("county_code", sa.String(6), primary_key=True),
        sa.Column("item", sa.String(64), primary_key=True),
        sa.Column("promised_days", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(64)),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.add_column("cases", sa.Column("promised_days", sa.Integer()))
    op.add_column("cases", sa.Column("due_at", sa.DateTime()))
    op.create_index("ix_cases_due", "cases", ["due_at", "county_code"])
    op.add_column("stage_events", sa.Column("on_time", sa.Boolean()))
    # the built-in module of the deadline lists, after 办件查询 (sort order 20) in the nav
    modules = sa.table("admin_modules", sa.column("code"), sa.column("name"),
                       sa.column("sort_order"), sa.column("enabled"), sa.column("builtin"),
                       sa.column("updated_at"))
    op.bulk_insert(modules, [{"code": "deadlines", "name": "办件时限", "sort_order": 25,
                              "enabled": True, "builtin": True,
                              "updated_at": datetime.now(UTC).replace(tzinfo=None)}])


def downgrade() -> None:
    op.execute("DELETE FROM admin_modules WHERE code = 'deadlines'")
    with op.batch_alter_table("stage_events") as batch:
        batch.drop_column("on_time")
    op.drop_index("ix_cases_due", table_name="cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("due_at")
        batch.drop_column("promised_days")
    op.drop_table("admin_division_deadlines")
    op.drop_table("calendar_days")
    op.drop_table("calendar_years")
