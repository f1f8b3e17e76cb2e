"""Models of the 一网通办 entry (contracts/identity.md): the province's handover tokens.

One row per accepted handover: its ``jti`` is unique, so a token is used once (a second
POST of it fails the insert). The row is also the applicant's session: the browser holds
a random handle whose hash is ``handle_hash``; the handed-over claims (personal data)
are sealed. The schema is ``migrations/versions/0009_identity.py``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId, utcnow
from store.sealed import Sealed


class EntryHandover(Base):
    """A handover token the hub accepted, and the applicant session it opened."""

    __tablename__ = "entry_handovers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    jti: Mapped[str] = mapped_column(String(128), unique=True)
    handle_hash: Mapped[str] = mapped_column(String(64), unique=True)
    item: Mapped[str] = mapped_column(String(64))
    apply_no: Mapped[str] = mapped_column(String(64))
    county_code: Mapped[str] = mapped_column(String(6))
    claims: Mapped[str] = mapped_column("claims_enc", Sealed(), key="claims")
    #: Material file ids uploaded in this session (JSON list), sealed with the claims.
    files: Mapped[str | None] = mapped_column("files_enc", Sealed(), key="files")
    token_exp: Mapped[datetime] = mapped_column(DateTime)
    session_expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    case_no: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    #: When the applicant confirmed the handover in this browser (None: still pending,
    #: the session does not open: a handover posted from another site is not a session).
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime)


class EntryRefusal(Base):
    """A refused handover post, by source address: the per-address throttle of /entry."""

    __tablename__ = "entry_refusals"
    __table_args__ = (Index("ix_entry_refusals_addr_at", "remote_addr", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    remote_addr: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
