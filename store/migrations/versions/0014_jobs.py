"""jobs: the manual queue's exports and imports run in the background (admin/jobs.py)

Revision ID: 0014_jobs
Revises: 0012_engine
"""
from alembic import op
import sqlalchemy as sa


revision = "0014_jobs"
down_revision = "0013_rollup_outcomes"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "admin_jobs",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("county", sa.String(length=6), nullable=True),
        sa.Column("item", sa.String(length=64), nullable=True),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("divisions", sa.Text(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("file", sa.String(length=100), nullable=True),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("result_enc", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_admin_jobs_state", "admin_jobs", ["state"])
    op.create_index("ix_admin_jobs_user_state", "admin_jobs", ["username", "state"])


def downgrade() -> None:
    op.drop_index("ix_admin_jobs_user_state", table_name="admin_jobs")
    op.drop_index("ix_admin_jobs_state", table_name="admin_jobs")
    op.drop_table("admin_jobs")
