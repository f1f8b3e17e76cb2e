"""cases: the namespace of apply_no ("" the province's, else the county that opened the
case itself), part of the unique key, so a county's own numbers never collide with the
province's (item, apply_no) idempotency key

Revision ID: 0007_county
Revises: 0006_bank
"""
from alembic import op
import sqlalchemy as sa


revision = "0007_county"
down_revision = "0006_bank"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("namespace", sa.String(6), nullable=False,
                                      server_default=""))
    # cases a county opened itself (申请并受理) move into that county's namespace
    op.execute("UPDATE cases SET namespace = (SELECT c.county_code FROM cases AS c "
               "WHERE c.parent_id = cases.id ORDER BY c.id LIMIT 1) "
               "WHERE source = 'county' AND county_code = ''")
    op.execute("UPDATE cases SET namespace = county_code "
               "WHERE source = 'county' AND county_code <> ''")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cases_item_apply_county", type_="unique")
        batch_op.create_unique_constraint(
            "uq_cases_namespace_item_apply_county",
            ["namespace", "item", "apply_no", "county_code"])


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint("uq_cases_namespace_item_apply_county", type_="unique")
        batch_op.create_unique_constraint("uq_cases_item_apply_county",
                                          ["item", "apply_no", "county_code"])
        batch_op.drop_column("namespace")
