"""presale-fund supervision: logins, tokens, supervised accounts, houses, events,
ledger, instructions, reconciliations (contracts/bank.md)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fund_logins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_logins')),
    sa.UniqueConstraint('bank_code', 'username', name=op.f('uq_fund_logins_bank_code_username'))
    )

    op.create_table('fund_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('login_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['login_id'], ['fund_logins.id'], name=op.f('fk_fund_tokens_login_id_fund_logins')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_fund_tokens'))
    )
    with op.batch_alter_table('fund_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_tokens_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_fund_tokens_login_id'), ['login_id'], unique=False)

    op.create_table('fund_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('account_name', sa.String(length=200), nullable=True),
    sa.Column('branch_name', sa.String(length=200), nullable=True),
    sa.Column('developer_name', sa.String(length=200), nullable=True),
    sa.Column('developer_uscc', sa.String(length=32), nullable=True),
    sa.Column('project_name', sa.String(length=200), nullable=True),
    sa.Column('permit_no', sa.String(length=64), nullable=True),
    sa.Column('division', sa.String(length=6), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_accounts')),
    sa.UniqueConstraint('account_no', name=op.f('uq_fund_accounts_account_no'))
    )
    with op.batch_alter_table('fund_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_accounts_bank_code'), ['bank_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_fund_accounts_division'), ['division'], unique=False)

    op.create_table('fund_houses',
    sa.Column('house_code', sa.String(length=64), nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_no'], ['fund_accounts.account_no'], name=op.f('fk_fund_houses_account_no_fund_accounts')),
    sa.PrimaryKeyConstraint('house_code', name=op.f('pk_fund_houses'))
    )
    with op.batch_alter_table('fund_houses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_houses_account_no'), ['account_no'], unique=False)

    op.create_table('fund_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('serial_no', sa.String(length=64), nullable=False),
    sa.Column('operation', sa.String(length=40), nullable=False),
    sa.Column('result_type', sa.String(length=2), nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=True),
    sa.Column('instruction_no', sa.String(length=64), nullable=True),
    sa.Column('amount_fen', sa.BigInteger(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('answer_code', sa.String(length=4), nullable=False),
    sa.Column('answer_msg', sa.String(length=200), nullable=False),
    sa.Column('division', sa.String(length=6), nullable=True),
    sa.Column('route_mode', sa.String(length=8), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payload_enc', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_events')),
    sa.UniqueConstraint('bank_code', 'serial_no', name=op.f('uq_fund_events_bank_code_serial_no'))
    )
    with op.batch_alter_table('fund_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_events_account_no'), ['account_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_fund_events_instruction_no'), ['instruction_no'], unique=False)
        batch_op.create_index('ix_fund_events_status_created', ['status', 'created_at'], unique=False)

    op.create_table('fund_ledger',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('serial_no', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(), nullable=False),
    sa.Column('book_date', sa.Date(), nullable=False),
    sa.Column('house_code', sa.String(length=64), nullable=True),
    sa.Column('unlinked', sa.Boolean(), nullable=False),
    sa.Column('instruction_no', sa.String(length=64), nullable=True),
    sa.Column('detail_enc', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_no'], ['fund_accounts.account_no'], name=op.f('fk_fund_ledger_account_no_fund_accounts')),
    sa.ForeignKeyConstraint(['event_id'], ['fund_events.id'], name=op.f('fk_fund_ledger_event_id_fund_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_ledger')),
    sa.UniqueConstraint('event_id', name=op.f('uq_fund_ledger_event_id'))
    )
    with op.batch_alter_table('fund_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_fund_ledger_account_date', ['account_no', 'book_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_fund_ledger_house_code'), ['house_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_fund_ledger_unlinked'), ['unlinked'], unique=False)

    op.create_table('fund_instructions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('instruction_no', sa.String(length=64), nullable=False),
    sa.Column('type_code', sa.String(length=2), nullable=False),
    sa.Column('operation', sa.String(length=40), nullable=False),
    sa.Column('partner', sa.String(length=64), nullable=False),
    sa.Column('bank_code', sa.String(length=32), nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=True),
    sa.Column('division', sa.String(length=6), nullable=True),
    sa.Column('for_date', sa.Date(), nullable=True),
    sa.Column('payload_enc', sa.LargeBinary(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('deadline_at', sa.DateTime(), nullable=False),
    sa.Column('overdue', sa.Boolean(), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=True),
    sa.Column('result_msg', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_instructions')),
    sa.UniqueConstraint('instruction_no', name=op.f('uq_fund_instructions_instruction_no'))
    )
    with op.batch_alter_table('fund_instructions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_instructions_account_no'), ['account_no'], unique=False)
        batch_op.create_index('ix_fund_instructions_open', ['status', 'deadline_at'], unique=False)

    op.create_table('fund_reconciliations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('account_no', sa.String(length=64), nullable=False),
    sa.Column('for_date', sa.Date(), nullable=False),
    sa.Column('instruction_no', sa.String(length=64), nullable=False),
    sa.Column('bank_opening_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_in_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_out_fen', sa.BigInteger(), nullable=False),
    sa.Column('bank_closing_fen', sa.BigInteger(), nullable=False),
    sa.Column('hub_opening_fen', sa.BigInteger(), nullable=False),
    sa.Column('hub_in_fen', sa.BigInteger(), nullable=False),
    sa.Column('hub_out_fen', sa.BigInteger(), nullable=False),
    sa.Column('hub_closing_fen', sa.BigInteger(), nullable=False),
    sa.Column('matched', sa.Boolean(), nullable=False),
    sa.Column('differences', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_reconciliations')),
    sa.UniqueConstraint('account_no', 'for_date', 'instruction_no', name=op.f('uq_fund_reconciliations_account_no_for_date_instruction_no'))
    )
    with op.batch_alter_table('fund_reconciliations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fund_reconciliations_account_no'), ['account_no'], unique=False)


def downgrade() -> None:
    op.drop_table('fund_reconciliations')
    op.drop_table('fund_instructions')
    op.drop_table('fund_ledger')
    op.drop_table('fund_events')
    op.drop_table('fund_houses')
    op.drop_table('fund_accounts')
    op.drop_table('fund_tokens')
    op.drop_table('fund_logins')
