"""the data-sharing gateway: shared filings and their parties, mortgages, the court's
defaulter list and seizures, the sharing audit and the per-minute rate windows

Revision ID: 0011_sharing
Revises: 0010_identity
"""
from alembic import op
import sqlalchemy as sa


revision = "0011_sharing"
down_revision = "0010_identity"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "shared_filings",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("filing_no", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("case_id", BIG, nullable=True),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("house_id", sa.String(200), nullable=False),
        sa.Column("address_enc", sa.LargeBinary(), nullable=True),
        sa.Column("price", sa.String(32), nullable=True),
        sa.Column("filed_at", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_shared_filings"),
        sa.UniqueConstraint("filing_no", name="uq_shared_filings_filing_no"),
    )
    op.create_index("ix_shared_filings_case_id", "shared_filings", ["case_id"])
    op.create_index("ix_shared_filings_house", "shared_filings", ["house_id", "status"])
    op.create_table(
        "shared_parties",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("filing_id", BIG, nullable=False),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("id_no_enc", sa.LargeBinary(), nullable=False),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["filing_id"], ["shared_filings.id"],
                                name="fk_shared_parties_filing_id_shared_filings"),
        sa.PrimaryKeyConstraint("id", name="pk_shared_parties"),
    )
    op.create_index("ix_shared_parties_filing_id", "shared_parties", ["filing_id"])
    op.create_index("ix_shared_parties_lookup", "shared_parties",
                    ["id_hash", "role", "filing_id"])
    op.create_table(
        "share_mortgages",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("mortgage_no", sa.String(64), nullable=False),
        sa.Column("house_id", sa.String(200), nullable=False),
        sa.Column("filing_no", sa.String(64), nullable=True),
        sa.Column("mortgagor_name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("mortgagor_id_no_enc", sa.LargeBinary(), nullable=False),
        sa.Column("mortgagor_hash", sa.String(64), nullable=False),
        sa.Column("mortgagee", sa.String(200), nullable=False),
        sa.Column("amount", sa.String(32), nullable=False),
        sa.Column("signed_at", sa.String(32), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_share_mortgages"),
        sa.UniqueConstraint("app_id", "mortgage_no", name="uq_share_mortgages_app_id_mortgage_no"),
    )
    op.create_index("ix_share_mortgages_house_id", "share_mortgages", ["house_id"])
    op.create_index("ix_share_mortgages_mortgagor_hash", "share_mortgages", ["mortgagor_hash"])
    op.create_table(
        "share_defaulters",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("id_hash", sa.String(64), nullable=False),
        sa.Column("id_no_enc", sa.LargeBinary(), nullable=False),
        sa.Column("name_enc", sa.LargeBinary(), nullable=False),
        sa.Column("case_no", sa.String(64), nullable=False),
        sa.Column("court", sa.String(200), nullable=False),
        sa.Column("listed_at", sa.String(32), nullable=False),
        sa.Column("removed_at", sa.String(32), nullable=True),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_share_defaulters"),
        sa.UniqueConstraint("id_hash", "case_no", name="uq_share_defaulters_id_hash_case_no"),
    )
    op.create_index("ix_share_defaulters_listed", "share_defaulters", ["id_hash", "removed_at"])
    op.create_table(
        "share_seizures",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("seizure_no", sa.String(64), nullable=False),
        sa.Column("house_id", sa.String(200), nullable=False),
        sa.Column("court", sa.String(200), nullable=False),
        sa.Column("document_no", sa.String(100), nullable=False),
        sa.Column("from_date", sa.String(32), nullable=False),
        sa.Column("to_date", sa.String(32), nullable=True),
        sa.Column("released_at", sa.String(32), nullable=True),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_share_seizures"),
        sa.UniqueConstraint("seizure_no", name="uq_share_seizures_seizure_no"),
    )
    op.create_index("ix_share_seizures_house", "share_seizures", ["house_id", "released_at"])
    op.create_table(
        "share_access",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("department", sa.String(8), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("operator_enc", sa.LargeBinary(), nullable=True),
        sa.Column("operator_hash", sa.String(64), nullable=True),
        sa.Column("purpose_enc", sa.LargeBinary(), nullable=True),
        sa.Column("asked", sa.String(240), nullable=True),
        sa.Column("asked_hash", sa.String(64), nullable=True),
        sa.Column("returned", sa.Text(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(4), nullable=False),
        sa.Column("division", sa.String(6), nullable=True),
        sa.Column("ref_id", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_share_access"),
    )
    op.create_index("ix_share_access_at", "share_access", ["at"])
    op.create_index("ix_share_access_app_at", "share_access", ["app_id", "at"])
    op.create_index("ix_share_access_operator_hash", "share_access", ["operator_hash"])
    op.create_index("ix_share_access_asked_hash", "share_access", ["asked_hash"])
    op.create_index("ix_share_access_division", "share_access", ["division"])
    op.create_table(
        "share_rate",
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "minute", name="pk_share_rate"),
    )


def downgrade() -> None:
    for table in ("share_rate", "share_access", "share_seizures", "share_defaulters",
                  "share_mortgages", "shared_parties", "shared_filings"):
        op.drop_table(table)
