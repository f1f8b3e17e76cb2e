"""Models of deadlines: the working-day calendar (``mapping/workdays.py``: which years
have data, and each year's exceptions to Monday–Friday) and counties' promised days.
Schema: ``migrations/versions/0005_deadlines.py``."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, utcnow


class CalendarYear(Base):
    """A year the calendar knows: seeded from the package, or entered by an operator
    (the State Council publishes next year's arrangement each November)."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[str] = mapped_column(String(16))  # package | operator
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class DivisionDeadline(Base):
    """A county's own promised working days for an item (承诺办结时限, per county), over
    the item's (``admin_item_settings.promised_days``) and the configured default."""

    __tablename__ = "admin_division_deadlines"

    county_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    promised_days: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CalendarDayRow(Base):
    """One exception: a weekday off (holiday) or a weekend day worked (workday)."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(32), default="")
