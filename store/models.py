"""SQLAlchemy models: one schema for SQLite and PostgreSQL.

All timestamps are naive UTC (`utcnow()`); columns named ``*_enc`` hold values sealed by
`store.crypto.DataCipher` because they may carry personal data. Text attributes that may
carry personal data are ``Sealed`` (column ``<name>_enc``, plain ``str`` in Python), and
the ones searched by equality also have a ``BlindIndex`` (``<name>_hash``), see
`store.sealed`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.sealed import BlindIndex, Sealed

# Integer primary keys that are BIGINT on PostgreSQL and INTEGER (rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Case(Base):
    """A case from the province (or opened by a county); a sub-case has a parent and one county.

    ``namespace`` is whose number ``apply_no`` is: "" for the province's applications, the
    county's division code for a case the county opened itself (申请并受理, its
    ``county_case_no``), so a county can never take a number the province keys on.
    """

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("namespace", "item", "apply_no", "county_code",
                         name="uq_cases_namespace_item_apply_county"),
        Index("ix_cases_created_item_county", "created_at", "item", "county_code"),
        Index("ix_cases_due", "due_at", "county_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_no: Mapped[str] = mapped_column(String(40), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    item: Mapped[str] = mapped_column(String(64))
    apply_no: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(6), default="", server_default="")
    city_code: Mapped[str] = mapped_column(String(6))
    # "" on a parent case so the unique constraint also holds there (NULLs never collide).
    county_code: Mapped[str] = mapped_column(String(6), default="")
    source: Mapped[str] = mapped_column(String(16), default="province")
    stage: Mapped[str] = mapped_column(String(32), index=True)
    route_adapter: Mapped[str | None] = mapped_column(String(32))
    route_mode: Mapped[str | None] = mapped_column(String(8))
    applicant_id_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)
    answer_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    #: A sub-case's promised working days and due time (naive UTC: the end of its last
    #: working day in Beijing time), fixed at receipt; None on a parent or a sync query.
    promised_days: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime | None] = mapped_column(DateTime)


class StageEvent(Base):
    """One recorded stage of a (sub-)case, in the order it was recorded."""

    __tablename__ = "stage_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime)
    operator: Mapped[str | None] = mapped_column("operator_enc", Sealed(), key="operator")
    opinion: Mapped[str | None] = mapped_column("opinion_enc", Sealed(), key="opinion")
    filing_no: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    #: Whether a 受理 or 办结 came by the sub-case's due time (None: no due time, or
    #: another stage).
    on_time: Mapped[bool | None] = mapped_column(Boolean)
    result_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class OutboxMessage(Base):
    """One outgoing call, written before it is made (store-and-forward).

    status: ``pending`` (due at next_attempt_at), ``in_flight`` (claimed until
    lease_until), ``done`` or ``dead`` (parked with its reason in last_error).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    interface: Mapped[str] = mapped_column(String(64), index=True)
    adapter: Mapped[str] = mapped_column(String(32))
    partner: Mapped[str] = mapped_column(String(64), index=True)
    operation: Mapped[str] = mapped_column(String(64))
    division: Mapped[str | None] = mapped_column(String(6))
    item: Mapped[str | None] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    min_backoff: Mapped[float] = mapped_column(Float)
    max_backoff: Mapped[float] = mapped_column(Float)
    #: The retry policy's jitter (a fraction of each backoff), as configured per policy.
    jitter: Mapped[float] = mapped_column(Float, default=0.2, server_default="0.2")
    timeout: Mapped[float] = mapped_column(Float)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column("last_error_enc", Sealed(), key="last_error")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    resubmitted_by: Mapped[str | None] = mapped_column("resubmitted_by_enc", Sealed(),
                                                       key="resubmitted_by")
    resubmitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    resubmit_count: Mapped[int] = mapped_column(Integer, default=0)

    #: Live in the queue (``ArchivedMessage.archived`` is True).
    archived = False


class ArchivedMessage(Base):
    """A delivered outbox row moved out of the queue after ``scheduler.outbox_archive_days``
    (store/retention.py): what statistics and case journeys show of it, without its
    payload (the call log keeps the request, sealed, for its own retention)."""

    __tablename__ = "outbox_archive"
    __table_args__ = (Index("ix_outbox_archive_created", "created_at"),)

    #: Never resubmitted from the archive: the case page offers 再次发送 on live rows only.
    archived = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    interface: Mapped[str] = mapped_column(String(64))
    partner: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(64))
    division: Mapped[str | None] = mapped_column(String(6))
    item: Mapped[str | None] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(BigId, index=True)
    status: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column("last_error_enc", Sealed(), key="last_error")
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime)
    resubmitted_by: Mapped[str | None] = mapped_column("resubmitted_by_enc", Sealed(),
                                                       key="resubmitted_by")
    resubmitted_at: Mapped[datetime | None] = mapped_column(DateTime)
    resubmit_count: Mapped[int] = mapped_column(Integer)
    archived_at: Mapped[datetime] = mapped_column(DateTime)


class CallLogEntry(Base):
    """Every call in and out: the source of statistics and of resubmission."""

    __tablename__ = "call_log"
    __table_args__ = (
        Index("ix_call_log_started", "started_at"),
        Index("ix_call_log_interface_started", "interface", "started_at"),
        Index("ix_call_log_item_started", "item", "started_at"),
        Index("ix_call_log_division_started", "division", "started_at"),
        Index("ix_call_log_outcome_started", "outcome", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref_id: Mapped[str] = mapped_column(String(32), unique=True)
    interface: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(3))
    party: Mapped[str] = mapped_column(String(64))
    division: Mapped[str | None] = mapped_column(String(6))
    item: Mapped[str | None] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(BigId, index=True)
    message_id: Mapped[int | None] = mapped_column(BigId, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    duration_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(12))
    code: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column("error_enc", Sealed(), key="error")
    request_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class Nonce(Base):
    """Nonces seen per app id, kept for the replay window."""

    __tablename__ = "nonces"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class StoredFile(Base):
    """An uploaded material (PDF/JPEG/PNG), sealed; identified by a random file id."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    file_id: Mapped[str] = mapped_column(String(64), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column("name_enc", Sealed(), key="name")
    apply_no: Mapped[str | None] = mapped_column(String(64), index=True)
    county_code: Mapped[str | None] = mapped_column(String(6))
    uploaded_by: Mapped[str | None] = mapped_column("uploaded_by_enc", Sealed(),
                                                    key="uploaded_by")
    data_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class InterfaceSwitch(Base):
    """An operator's switch: kind ``interface`` or ``partner``; disabled holds messages."""

    __tablename__ = "interface_switches"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str | None] = mapped_column(Text)
    changed_by: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Lease(Base):
    """A named lease held by one process at a time (e.g. the scheduler)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(Base):
    """Who did what, when: every operator action. Actor, target and detail are sealed;
    ``actor_hash`` and ``target_hash`` (blind indexes, set from them) are what a search
    by actor or target compares (``AuditEntry.actor_hash == name``)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column("actor_enc", Sealed(), key="actor")
    actor_hash: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column("target_enc", Sealed(), key="target")
    target_hash: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    detail: Mapped[str | None] = mapped_column("detail_enc", Sealed(), key="detail")

    def __init__(self, **kw: object) -> None:
        kw.setdefault("actor_hash", kw.get("actor"))
        kw.setdefault("target_hash", kw.get("target") or None)
        super().__init__(**kw)


class Alert(Base):
    """Something an operator must see until acknowledged: a dead message, a bank's
    abnormal event (freeze, judicial deduction), an overdue instruction, a ledger
    difference. ``kind`` is a short code; ``ref`` points at what it is about."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_open", "acknowledged_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(8), default="warning")  # info|warning|critical
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column("detail_enc", Sealed(), key="detail")
    division: Mapped[str | None] = mapped_column(String(6), index=True)
    ref: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column("acknowledged_by_enc", Sealed(),
                                                        key="acknowledged_by")
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime)
