"""bank hardening: the sign-in lock-out on fund_logins, and fund_conflicts (notices
refused with 2005: a serial_no reused with another operation, account or amount)

Revision ID: 0006_bank
Revises: 0005_deadlines
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_bank"
down_revision = "0005_deadlines"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('fund_logins', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failed_logins', sa.Integer(), nullable=False,
                                      server_default=sa.text('0')))
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(), nullable=True))

    op.create_table('fund_conflicts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('serial_no', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('operation', sa.String(length=40), nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('division', sa.String(length=6), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload_enc', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['event_id'], ['fund_events.id'], name=op.f('fk_fund_conflicts_event_id_fund_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_conflicts')),
    sa.UniqueConstraint('bank_code', 'serial_no', 'fingerprint', name=op.f('uq_fund_conflicts_bank_code_serial_no_fingerprint'))
    )
    with op.batch_alter_table('fund_conflicts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_conflicts_event_id'), ['event_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('fund_conflicts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fund_conflicts_event_id'))
    op.drop_table('fund_conflicts')
    with op.batch_alter_table('fund_logins', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
        batch_op.drop_column('failed_logins')
