"""一网通办 entry: the province's handover tokens (jti used once) and applicant sessions

Revision ID: 0010_identity
Revises: 0009_numbering
"""
from alembic import op
import sqlalchemy as sa


revision = "0010_identity"
down_revision = "0009_numbering"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "entry_handovers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("jti", sa.String(length=128), nullable=False),
        sa.Column("handle_hash", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=64), nullable=False),
        sa.Column("apply_no", sa.String(length=64), nullable=False),
        sa.Column("county_code", sa.String(length=6), nullable=False),
        sa.Column("claims_enc", sa.LargeBinary(), nullable=False),
        sa.Column("files_enc", sa.LargeBinary(), nullable=True),
        sa.Column("token_exp", sa.DateTime(), nullable=False),
        sa.Column("session_expires_at", sa.DateTime(), nullable=False),
        sa.Column("case_no", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_handovers")),
        sa.UniqueConstraint("jti", name=op.f("uq_entry_handovers_jti")),
        sa.UniqueConstraint("handle_hash", name=op.f("uq_entry_handovers_handle_hash")),
    )
    op.create_index(op.f("ix_entry_handovers_session_expires_at"), "entry_handovers",
                    ["session_expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_entry_handovers_session_expires_at"), table_name="entry_handovers")
    op.drop_table("entry_handovers")
