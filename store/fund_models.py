"""Presale-fund supervision (contracts/bank.md): bank/POS logins, supervised accounts,
the ledger of every movement, inbound events (idempotency and the holding list),
instructions sent to banks and reconciliations.

Money is stored as integer fen (``*_fen``) so sums are exact on SQLite and PostgreSQL;
the edges speak Decimal yuan with two places. Personal data (payer, payee, buyer names
and accounts) lives only in ``*_enc`` columns, sealed by ``store.crypto.DataCipher``;
operators' names and banks' free text are ``Sealed`` columns (``store.sealed``).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId, utcnow
from store.sealed import Sealed


class FundLogin(Base):
    """A bank's or a POS operator's account for ``Authenticate`` (password hashed)."""

    __tablename__ = "fund_logins"
    __table_args__ = (UniqueConstraint("bank_code", "username"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_code: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8), default="bank")  # bank | pos
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: The sign-in lock-out of ``admin.lockout`` (as for operators).
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


class FundToken(Base):
    """An issued token, kept as its SHA-256 only."""

    __tablename__ = "fund_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    login_id: Mapped[int] = mapped_column(ForeignKey("fund_logins.id"), index=True)
    bank_code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class SupervisedAccount(Base):
    """The registry: account number → bank, developer, project, permit, division."""

    __tablename__ = "fund_accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_no: Mapped[str] = mapped_column(String(64), unique=True)
    bank_code: Mapped[str] = mapped_column(String(32), index=True)
    account_name: Mapped[str | None] = mapped_column(String(200))
    branch_name: Mapped[str | None] = mapped_column(String(200))
    developer_name: Mapped[str | None] = mapped_column(String(200))
    developer_uscc: Mapped[str | None] = mapped_column(String(32))
    project_name: Mapped[str | None] = mapped_column(String(200))
    permit_no: Mapped[str | None] = mapped_column(String(64))
    division: Mapped[str] = mapped_column(String(6), index=True)
    status: Mapped[str] = mapped_column(String(12), default="active")  # active | cancelled
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class FundHouse(Base):
    """A house (房屋编码) on sale under a supervised account: what POS terminals check."""

    __tablename__ = "fund_houses"

    house_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_no: Mapped[str] = mapped_column(ForeignKey("fund_accounts.account_no"), index=True)
    status: Mapped[str] = mapped_column(String(12), default="on_sale")  # on_sale | withdrawn
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FundEvent(Base):
    """Every accepted inbound notice, once per (bank_code, serial_no).

    status ``booked`` (in the ledger), ``done`` (a result with no movement) or ``held``
    (unknown account, house not on sale: waits for an operator; nothing is dropped).
    The first answer is kept so a repeat answers the same and books nothing.
    """

    __tablename__ = "fund_events"
    __table_args__ = (
        UniqueConstraint("bank_code", "serial_no"),
        Index("ix_fund_events_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_code: Mapped[str] = mapped_column(String(32))
    serial_no: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(40))
    result_type: Mapped[str] = mapped_column(String(2))
    account_no: Mapped[str | None] = mapped_column(String(64), index=True)
    instruction_no: Mapped[str | None] = mapped_column(String(64), index=True)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(Text)
    answer_code: Mapped[str] = mapped_column(String(4))
    answer_msg: Mapped[str] = mapped_column(String(200))
    division: Mapped[str | None] = mapped_column(String(6))
    route_mode: Mapped[str | None] = mapped_column(String(8))  # auto | manual
    message_id: Mapped[int | None] = mapped_column(BigId)
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column("resolved_by_enc", Sealed(), key="resolved_by")
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)


class FundConflict(Base):
    """A notice refused with 2005: its (bank_code, serial_no) was used before, by
    ``event_id``, with another operation, account or amount. Nothing is booked; it is
    kept for an operator, once per distinct content (``fingerprint``)."""

    __tablename__ = "fund_conflicts"
    __table_args__ = (UniqueConstraint("bank_code", "serial_no", "fingerprint"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_code: Mapped[str] = mapped_column(String(32))
    serial_no: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int] = mapped_column(ForeignKey("fund_events.id"), index=True)
    operation: Mapped[str] = mapped_column(String(40))
    account_no: Mapped[str | None] = mapped_column(String(64))
    amount_fen: Mapped[int | None] = mapped_column(BigInteger)
    division: Mapped[str | None] = mapped_column(String(6))
    reason: Mapped[str] = mapped_column(Text)
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)


class LedgerEntry(Base):
    """One movement (or abnormal event) on a supervised account.

    direction ``in`` / ``out`` changes the balance; ``none`` (freeze, unfreeze) does not.
    ``book_date`` is the local (Asia/Shanghai) day of ``occurred_at``: reconciliation is
    per day.
    """

    __tablename__ = "fund_ledger"
    __table_args__ = (Index("ix_fund_ledger_account_date", "account_no", "book_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("fund_events.id"), unique=True)
    account_no: Mapped[str] = mapped_column(ForeignKey("fund_accounts.account_no"))
    bank_code: Mapped[str] = mapped_column(String(32))
    serial_no: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(24))
    direction: Mapped[str] = mapped_column(String(4))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(DateTime)
    book_date: Mapped[date] = mapped_column(Date)
    house_code: Mapped[str | None] = mapped_column(String(64), index=True)
    unlinked: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    instruction_no: Mapped[str | None] = mapped_column(String(64))
    detail_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FundInstruction(Base):
    """An instruction to a bank (section 3.2), waiting for its result by instruction_no.

    status: ``queued`` (in the outbox), ``sent`` (the bank acknowledged), ``answered``
    (its result arrived), ``failed`` (the outbox gave up).
    """

    __tablename__ = "fund_instructions"
    __table_args__ = (Index("ix_fund_instructions_open", "status", "deadline_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instruction_no: Mapped[str] = mapped_column(String(64), unique=True)
    type_code: Mapped[str] = mapped_column(String(2))
    operation: Mapped[str] = mapped_column(String(40))
    partner: Mapped[str] = mapped_column(String(64))
    bank_code: Mapped[str] = mapped_column(String(32))
    account_no: Mapped[str | None] = mapped_column(String(64), index=True)
    division: Mapped[str | None] = mapped_column(String(6))
    for_date: Mapped[date | None] = mapped_column(Date)
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    message_id: Mapped[int | None] = mapped_column(BigId)
    deadline_at: Mapped[datetime] = mapped_column(DateTime)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[str | None] = mapped_column(String(16))
    result_msg: Mapped[str | None] = mapped_column("result_msg_enc", Sealed(), key="result_msg")
    created_by: Mapped[str | None] = mapped_column("created_by_enc", Sealed(), key="created_by")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(DateTime)


class Reconciliation(Base):
    """The bank's figures for one account and day next to the hub's, and what differs."""

    __tablename__ = "fund_reconciliations"
    __table_args__ = (UniqueConstraint("account_no", "for_date", "instruction_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_no: Mapped[str] = mapped_column(String(64), index=True)
    for_date: Mapped[date] = mapped_column(Date)
    instruction_no: Mapped[str] = mapped_column(String(64))
    bank_opening_fen: Mapped[int] = mapped_column(BigInteger)
    bank_in_fen: Mapped[int] = mapped_column(BigInteger)
    bank_out_fen: Mapped[int] = mapped_column(BigInteger)
    bank_closing_fen: Mapped[int] = mapped_column(BigInteger)
    hub_opening_fen: Mapped[int] = mapped_column(BigInteger)
    hub_in_fen: Mapped[int] = mapped_column(BigInteger)
    hub_out_fen: Mapped[int] = mapped_column(BigInteger)
    hub_closing_fen: Mapped[int] = mapped_column(BigInteger)
    matched: Mapped[bool] = mapped_column(Boolean)
    differences: Mapped[str | None] = mapped_column(Text)  # JSON: figures and movements
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
