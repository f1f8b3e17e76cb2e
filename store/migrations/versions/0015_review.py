"""review: one unified number closes one case (``numbering_numbers.case_id``, unique),
one operator per province user (``admin_users.province_user_id``, unique), the 一网通办
handover confirmed in the applicant's browser (``entry_handovers.confirmed_at``) and the
per-address throttle of refused handovers (``entry_refusals``)

Existing data: the numbers that already closed cases are bound to the case of their
first 办结 (the lowest stage-event id; a later case with the same number stays closed
but unbound — resolved deterministically). Two operators mapped to one province user
cannot be resolved by a machine: the upgrade stops with a message naming them.

Revision ID: 0015_review
Revises: 0012_engine
"""
from alembic import op
import sqlalchemy as sa


revision = "0015_review"
down_revision = "0014_jobs"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NUMBERED_ITEMS = ("presale_permit_application", "presale_contract_filing")


def _refuse_shared_province_users(conn: sa.Connection) -> None:
    rows = conn.execute(sa.text(
        "SELECT province_user_id, username FROM admin_users WHERE province_user_id IN ("
        " SELECT province_user_id FROM admin_users WHERE province_user_id IS NOT NULL"
        " GROUP BY province_user_id HAVING COUNT(*) > 1)"
        " ORDER BY province_user_id, username")).all()
    if not rows:
        return
    shared: dict[str, list[str]] = {}
    for sub, username in rows:
        shared.setdefault(sub, []).append(username)
    listed = "；".join(f"省平台用户 {sub}：{'、'.join(names)}" for sub, names in shared.items())
    raise RuntimeError(
        "升级停止：以下操作员关联了同一个省平台用户（统一身份认证只能对应一名操作员）："
        f"{listed}。请在“用户管理”中只为其中一人保留省平台用户ID，再重新升级。"
        " (admin_users.province_user_id must be unique; nothing was changed)")


def _bind_closed_cases(conn: sa.Connection) -> None:
    events = conn.execute(sa.text(
        "SELECT e.case_id, e.filing_no FROM stage_events e JOIN cases c ON c.id = e.case_id"
        " JOIN numbering_numbers n ON n.number = e.filing_no AND n.county_code = c.county_code"
        " WHERE e.stage = 'completed' AND c.item IN :items ORDER BY e.id"
    ).bindparams(sa.bindparam("items", expanding=True)), {"items": list(NUMBERED_ITEMS)}).all()
    numbers: set[str] = set()
    cases: set[int] = set()
    for case_id, number in events:
        if number in numbers or case_id in cases:
            continue  # a later 办结 with a number already bound, or a case bound already
        numbers.add(number)
        cases.add(case_id)
        conn.execute(sa.text("UPDATE numbering_numbers SET case_id = :c WHERE number = :n"),
                     {"c": case_id, "n": number})


def upgrade() -> None:
    conn = op.get_bind()
    _refuse_shared_province_users(conn)
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_admin_users_province_user_id",
                                          ["province_user_id"])
    with op.batch_alter_table("numbering_numbers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("case_id", BIG, nullable=True))
    _bind_closed_cases(conn)
    with op.batch_alter_table("numbering_numbers", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_numbering_numbers_case_id", ["case_id"])
    with op.batch_alter_table("entry_handovers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(), nullable=True))
    # handovers of before this revision opened their sessions at once: keep them open
    conn.execute(sa.text("UPDATE entry_handovers SET confirmed_at = created_at"))
    op.create_table(
        "entry_refusals",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entry_refusals")),
    )
    op.create_index("ix_entry_refusals_addr_at", "entry_refusals", ["remote_addr", "at"])
    op.create_index(op.f("ix_entry_refusals_at"), "entry_refusals", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_entry_refusals_at"), table_name="entry_refusals")
    op.drop_index("ix_entry_refusals_addr_at", table_name="entry_refusals")
    op.drop_table("entry_refusals")
    with op.batch_alter_table("entry_handovers", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
    with op.batch_alter_table("numbering_numbers", schema=None) as batch_op:
        batch_op.drop_constraint("uq_numbering_numbers_case_id", type_="unique")
        batch_op.drop_column("case_id")
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.drop_constraint("uq_admin_users_province_user_id", type_="unique")
