"""Models of unified numbering (contracts/numbering.md, Hunan profile): the register of
numbers the province issued, and the presale project register (projects, their
construction permits' planned completion, the acceptance the county reports).
Schema: ``migrations/versions/0009_numbering.py``."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId, utcnow
from store.sealed import Sealed


class IssuedNumber(Base):
    """A number the province issued: once (unique), never deleted; a cancelled one stays
    with its cancellation, so it can never be recorded again."""

    __tablename__ = "numbering_numbers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # presale_permit | contract_filing
    county_code: Mapped[str] = mapped_column(String(6), index=True)
    project_code: Mapped[str] = mapped_column(String(40), index=True)
    #: The presale permit a contract filing's number is built on (None for a permit).
    parent_number: Mapped[str | None] = mapped_column(String(40), index=True)
    #: The province's encrypted blockchain string, printed as the certificate's QR code.
    chain_code: Mapped[str] = mapped_column(Text)
    #: What the number was issued for (buyers' names and IDs: personal data, sealed).
    request: Mapped[str] = mapped_column("request_enc", Sealed(), key="request")
    issued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: The case whose 办结 this number closed: one number, one case (unique; 0015_review).
    case_id: Mapped[int | None] = mapped_column(BigId, unique=True)
    cancel_reason: Mapped[str | None] = mapped_column("cancel_reason_enc", Sealed(),
                                                      key="cancel_reason")


class Project(Base):
    """A presale project (工改项目编码) of one county."""

    __tablename__ = "numbering_projects"

    project_code: Mapped[str] = mapped_column(String(40), primary_key=True)
    county_code: Mapped[str] = mapped_column(String(6), index=True)
    project_name: Mapped[str] = mapped_column(String(200))
    developer_name: Mapped[str] = mapped_column(String(200))
    #: The first day a presale permit was issued for it (from the register).
    presale_since: Mapped[date | None] = mapped_column(Date)
    #: 五方责任主体验收 (five_party) or 竣工验收备案 (completion_filing), as reported.
    acceptance_kind: Mapped[str | None] = mapped_column(String(20))
    acceptance_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ConstructionPermit(Base):
    """A construction permit (施工许可证, 18 digits) of a project, with its planned
    completion date (the day after which a project without acceptance is overdue)."""

    __tablename__ = "numbering_permits"

    permit_no: Mapped[str] = mapped_column(String(18), primary_key=True)
    project_code: Mapped[str] = mapped_column(
        String(40), ForeignKey("numbering_projects.project_code"), index=True)
    planned_completion: Mapped[date] = mapped_column(Date)
