"""Tables of the data-sharing gateway (contracts/departments.md).

The shared record is its own small set of rows written when a filing reaches 办结, so a
department's query is an indexed lookup (``shared_parties.id_hash`` → ``shared_filings``)
and never opens a case payload. Personal data is ``Sealed``; ID numbers are found by
their ``BlindIndex`` (set from the normalised number, ``store.share.norm_id``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId, utcnow
from store.sealed import BlindIndex, Sealed


class SharedFiling(Base):
    """A contract filing (presale / resale / rental) that reached 办结 with its number."""

    __tablename__ = "shared_filings"
    __table_args__ = (Index("ix_shared_filings_house", "house_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    filing_no: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # presale | resale | rental
    item: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(BigId, index=True)
    county_code: Mapped[str] = mapped_column(String(6))
    house_id: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column("address_enc", Sealed(), key="address")
    price: Mapped[str | None] = mapped_column(String(32))
    filed_at: Mapped[datetime] = mapped_column(DateTime)
    status: Mapped[str] = mapped_column(String(10), default="filed")  # filed | cancelled
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)


class SharedParty(Base):
    """A party of a shared filing; ``id_hash`` is what every query by ID number compares."""

    __tablename__ = "shared_parties"
    __table_args__ = (Index("ix_shared_parties_lookup", "id_hash", "role", "filing_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    filing_id: Mapped[int] = mapped_column(ForeignKey("shared_filings.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))  # buyer | seller | lessee | lessor
    name: Mapped[str] = mapped_column("name_enc", Sealed(), key="name")
    id_no: Mapped[str] = mapped_column("id_no_enc", Sealed(), key="id_no")
    id_hash: Mapped[str] = mapped_column(BlindIndex())


class ShareMortgage(Base):
    """A mortgage contract (抵押合同) pushed by a bank or the fund centre."""

    __tablename__ = "share_mortgages"
    __table_args__ = (UniqueConstraint("app_id", "mortgage_no",
                                       name="uq_share_mortgages_app_id_mortgage_no"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(64))
    mortgage_no: Mapped[str] = mapped_column(String(64))
    house_id: Mapped[str] = mapped_column(String(200), index=True)
    filing_no: Mapped[str | None] = mapped_column(String(64))
    mortgagor_name: Mapped[str] = mapped_column("mortgagor_name_enc", Sealed(),
                                                key="mortgagor_name")
    mortgagor_id_no: Mapped[str] = mapped_column("mortgagor_id_no_enc", Sealed(),
                                                 key="mortgagor_id_no")
    mortgagor_hash: Mapped[str] = mapped_column(BlindIndex(), index=True)
    mortgagee: Mapped[str] = mapped_column(String(200))
    amount: Mapped[str] = mapped_column(String(32))
    signed_at: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShareDefaulter(Base):
    """An entry of the court's list of 失信被执行人; ``removed_at`` None while listed."""

    __tablename__ = "share_defaulters"
    __table_args__ = (UniqueConstraint("id_hash", "case_no",
                                       name="uq_share_defaulters_id_hash_case_no"),
                      Index("ix_share_defaulters_listed", "id_hash", "removed_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    id_hash: Mapped[str] = mapped_column(BlindIndex())
    id_no: Mapped[str] = mapped_column("id_no_enc", Sealed(), key="id_no")
    name: Mapped[str] = mapped_column("name_enc", Sealed(), key="name")
    case_no: Mapped[str] = mapped_column(String(64))
    court: Mapped[str] = mapped_column(String(200))
    listed_at: Mapped[str] = mapped_column(String(32))
    removed_at: Mapped[str | None] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShareSeizure(Base):
    """A seizure (查封) of a house by a court, or its release (``released_at``)."""

    __tablename__ = "share_seizures"
    __table_args__ = (Index("ix_share_seizures_house", "house_id", "released_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    seizure_no: Mapped[str] = mapped_column(String(64), unique=True)
    house_id: Mapped[str] = mapped_column(String(200))
    court: Mapped[str] = mapped_column(String(200))
    document_no: Mapped[str] = mapped_column(String(100))
    from_date: Mapped[str] = mapped_column(String(32))
    to_date: Mapped[str | None] = mapped_column(String(32))
    released_at: Mapped[str | None] = mapped_column(String(32))
    app_id: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ShareAccess(Base):
    """The sharing audit (section 8): every query and push, in and out. What was asked is
    kept as a keyed hash (``asked_hash``) and a description without personal data;
    ``returned`` lists filing numbers, never contents. ``division``: the county of a
    push out (its filing's), None for the city-wide queries and pushes in."""

    __tablename__ = "share_access"
    __table_args__ = (Index("ix_share_access_app_at", "app_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    app_id: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(3))  # in (query, push in) | out
    action: Mapped[str] = mapped_column(String(32))  # contracts, housing_count, mortgages...
    operator: Mapped[str | None] = mapped_column("operator_enc", Sealed(), key="operator")
    operator_hash: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    purpose: Mapped[str | None] = mapped_column("purpose_enc", Sealed(), key="purpose")
    asked: Mapped[str | None] = mapped_column(String(240))
    asked_hash: Mapped[str | None] = mapped_column(BlindIndex(), index=True)
    returned: Mapped[str | None] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=0)
    code: Mapped[str] = mapped_column(String(4))
    division: Mapped[str | None] = mapped_column(String(6), index=True)
    ref_id: Mapped[str | None] = mapped_column(String(32))


class ShareRateWindow(Base):
    """Calls of a department in one minute, counted atomically (the rate limit, 1005)."""

    __tablename__ = "share_rate"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(DateTime, primary_key=True)
    calls: Mapped[int] = mapped_column(Integer, default=0)
