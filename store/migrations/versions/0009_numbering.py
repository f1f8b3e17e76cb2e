"""numbering (Hunan profile, contracts/numbering.md): the register of the numbers the
province issued (unique, cancelled ones kept), presale projects with their acceptance,
and their construction permits' planned completion dates

Revision ID: 0009_numbering
Revises: 0008_pii
"""
from alembic import op
import sqlalchemy as sa


revision = "0009_numbering"
down_revision = "0008_pii"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "numbering_numbers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("project_code", sa.String(40), nullable=False),
        sa.Column("parent_number", sa.String(40)),
        sa.Column("chain_code", sa.Text(), nullable=False),
        sa.Column("request_enc", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime()),
        sa.Column("cancel_reason_enc", sa.LargeBinary()),
        sa.UniqueConstraint("number", name=op.f("uq_numbering_numbers_number")),
    )
    for column in ("county_code", "project_code", "parent_number"):
        op.create_index(op.f(f"ix_numbering_numbers_{column}"), "numbering_numbers", [column])
    op.create_table(
        "numbering_projects",
        sa.Column("project_code", sa.String(40), primary_key=True),
        sa.Column("county_code", sa.String(6), nullable=False),
        sa.Column("project_name", sa.String(200), nullable=False),
        sa.Column("developer_name", sa.String(200), nullable=False),
        sa.Column("presale_since", sa.Date()),
        sa.Column("acceptance_kind", sa.String(20)),
        sa.Column("acceptance_date", sa.Date()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index(op.f("ix_numbering_projects_county_code"), "numbering_projects",
                    ["county_code"])
    op.create_table(
        "numbering_permits",
        sa.Column("permit_no", sa.String(18), primary_key=True),
        sa.Column("project_code", sa.String(40),
                  sa.ForeignKey("numbering_projects.project_code",
                                name=op.f("fk_numbering_permits_project_code_numbering_projects")),
                  nullable=False),
        sa.Column("planned_completion", sa.Date(), nullable=False),
    )
    op.create_index(op.f("ix_numbering_permits_project_code"), "numbering_permits",
                    ["project_code"])


def downgrade() -> None:
    op.drop_table("numbering_permits")
    op.drop_table("numbering_projects")
    op.drop_table("numbering_numbers")
