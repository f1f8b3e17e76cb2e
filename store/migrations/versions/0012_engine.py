"""engine: the retry policy's jitter kept on each outbox row (existing rows: 0.2, the
value that applied to them), and ``outbox_archive`` for delivered rows past
``scheduler.outbox_archive_days`` (store/retention.py)

Revision ID: 0012_engine
Revises: 0011_sharing
"""
from alembic import op
import sqlalchemy as sa


revision = "0012_engine"
down_revision = "0011_sharing"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jitter", sa.Float(), server_default="0.2",
                                      nullable=False))
    op.create_table(
        "outbox_archive",
        sa.Column("id", BIG, autoincrement=False, nullable=False),
        sa.Column("interface", sa.String(length=64), nullable=False),
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("division", sa.String(length=6), nullable=True),
        sa.Column("item", sa.String(length=64), nullable=True),
        sa.Column("case_id", BIG, nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("resubmitted_by_enc", sa.LargeBinary(), nullable=True),
        sa.Column("resubmitted_at", sa.DateTime(), nullable=True),
        sa.Column("resubmit_count", sa.Integer(), nullable=False),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_archive")),
    )
    with op.batch_alter_table("outbox_archive", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_archive_created", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_archive_case_id"), ["case_id"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("outbox_archive")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("jitter")
