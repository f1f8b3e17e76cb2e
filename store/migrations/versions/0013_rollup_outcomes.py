"""rollup outcomes: the daily call-log rollup keeps one row per day, interface and
division with its calls counted by outcome (``ok``, ``error``, ``rejected`` columns)
instead of one row per outcome (rare outcomes added rows as traffic grew, and the
dashboard read them all). The rows already rolled up are merged into the new shape.

Revision ID: 0013_rollup_outcomes
Revises: 0012_engine
"""
import sqlalchemy as sa
from alembic import op

revision = "0013_rollup_outcomes"
down_revision = "0012_engine"
branch_labels = None
depends_on = None

OUTCOMES = ("ok", "error", "rejected")
HIST = [f"h{i}" for i in range(12)]


def upgrade() -> None:
    with op.batch_alter_table("admin_call_daily", schema=None) as batch_op:
        for name in OUTCOMES:
            batch_op.add_column(sa.Column(name, sa.Integer(), server_default="0",
                                          nullable=False))
        batch_op.alter_column("outcome", existing_type=sa.String(12), nullable=True)
    conn = op.get_bind()
    last = conn.execute(sa.text("SELECT max(id) FROM admin_call_daily")).scalar()
    if last is not None:
        # one row per (day, interface, division) from its outcome rows, then the old ones go
        by_outcome = ", ".join(f"sum(CASE WHEN outcome = '{o}' THEN calls ELSE 0 END)"
                               for o in OUTCOMES)
        hist = ", ".join(HIST)
        hist_sums = ", ".join(f"sum({h})" for h in HIST)
        conn.execute(sa.text(
            f"INSERT INTO admin_call_daily (day, interface, division, calls, "
            f"{', '.join(OUTCOMES)}, total_ms, max_ms, {hist}) "
            f"SELECT day, interface, division, sum(calls), {by_outcome}, sum(total_ms), "
            f"max(max_ms), {hist_sums} FROM admin_call_daily WHERE id <= :last "
            f"GROUP BY day, interface, division"), {"last": last})
        conn.execute(sa.text("DELETE FROM admin_call_daily WHERE id <= :last"),
                     {"last": last})
    with op.batch_alter_table("admin_call_daily", schema=None) as batch_op:
        batch_op.drop_column("outcome")


def downgrade() -> None:
    # the histogram cannot be split by outcome again: the rollup is emptied and the
    # nightly job rolls the call log up again (for the days it still holds)
    op.execute("DELETE FROM admin_call_daily")
    op.execute("DELETE FROM admin_call_daily_done")
    with op.batch_alter_table("admin_call_daily", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome", sa.String(12), nullable=False,
                                      server_default=""))
        for name in OUTCOMES:
            batch_op.drop_column(name)
