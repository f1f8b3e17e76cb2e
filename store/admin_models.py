"""Models of the operator admin page: units, users, roles, permissions, settings,
and the daily call-log rollup behind the dashboard.

Registered on ``store.models.Base``; the schema is ``migrations/versions/0003_admin.py``
and ``0004_settings.py`` (division and item settings, modules and functions).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, BigId, utcnow
from store.sealed import Sealed


class AdminUnit(Base):
    """A unit (单位), linked to the province platform's unit id."""

    __tablename__ = "admin_units"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    province_unit_id: Mapped[str | None] = mapped_column(String(64))
    division: Mapped[str | None] = mapped_column(String(6))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminRole(Base):
    """A role (角色); its functions are rows of ``admin_role_functions``."""

    __tablename__ = "admin_roles"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(Text)


class AdminRoleFunction(Base):
    """One function (权限项) a role grants, e.g. ``resubmit``."""

    __tablename__ = "admin_role_functions"

    role_id: Mapped[int] = mapped_column(
        ForeignKey("admin_roles.id", ondelete="CASCADE"), primary_key=True)
    function: Mapped[str] = mapped_column(String(32), primary_key=True)


class AdminUser(Base):
    """An operator. ``all_divisions`` or rows of ``admin_user_divisions`` say what data
    they may see; ``session_epoch`` changes on sign-out so old cookies stop working."""

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column("display_name_enc", Sealed(), key="display_name")
    password_hash: Mapped[str] = mapped_column(String(255))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("admin_units.id"), index=True)
    #: The province's user id (``sub``) single sign-on maps to: one operator each.
    province_user_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    all_divisions: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminUserRole(Base):
    __tablename__ = "admin_user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True)
    role_id: Mapped[int] = mapped_column(
        ForeignKey("admin_roles.id", ondelete="CASCADE"), primary_key=True)


class AdminUserDivision(Base):
    """A data permission: the user sees this county's cases, messages and statistics."""

    __tablename__ = "admin_user_divisions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True)
    division: Mapped[str] = mapped_column(String(6), primary_key=True)


class AdminLoginFailure(Base):
    """A failed sign-in (also for unknown user names), for the audit and the lock-out."""

    __tablename__ = "admin_login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class AdminSetting(Base):
    """A system parameter (系统参数): JSON value, validated by ``admin.settings``."""

    __tablename__ = "admin_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminItemMapping(Base):
    """A business item's code and name in one county's own system (事项对应)."""

    __tablename__ = "admin_item_mappings"
    __table_args__ = (UniqueConstraint("item", "county_code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item: Mapped[str] = mapped_column(String(64))
    county_code: Mapped[str] = mapped_column(String(6))
    county_item_code: Mapped[str] = mapped_column(String(64))
    county_item_name: Mapped[str | None] = mapped_column(String(100))
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminDivisionName(Base):
    """An operator's display name and active flag of a county (区划设置). An inactive
    (停用) county's new applications are refused by the province intake (2004); see
    ``routes/overrides.py``. Its handling mode is ``admin_division_routes``."""

    __tablename__ = "admin_division_names"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminDivisionRoute(Base):
    """An operator's handling mode for a county (行政区划配置): ``auto`` (the county's API
    the routing table names) or ``manual`` (operators, Excel), for all items (``item`` is
    ``*``) or one item; no row follows the routing table. Applied by ``routes/overrides.py``."""

    __tablename__ = "admin_division_routes"

    county_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    mode: Mapped[str] = mapped_column(String(8))
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminItemSetting(Base):
    """An operator's settings of a catalogue item (业务事项配置): display name and promised
    working days (承诺办结时限). Whether the item is taken is its interface switch
    (``interface_switches``, ``province.in.<item>``), not a column here."""

    __tablename__ = "admin_item_settings"

    item: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(100))
    promised_days: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminModule(Base):
    """A module of the admin page (系统模块): one entry of the navigation. A built-in one
    has a page (``admin.modules.PAGES``); an operator's own only groups link functions."""

    __tablename__ = "admin_modules"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    builtin: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminFunction(Base):
    """A function (系统功能, 权限项) that roles grant, in a module. ``builtin`` ones are the
    codes the views check (``admin.perms.FUNCTIONS``); ``link`` ones are a nav entry to an
    internal ``/admin`` path or an https URL."""

    __tablename__ = "admin_functions"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    module_code: Mapped[str] = mapped_column(ForeignKey("admin_modules.code"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="builtin")
    url: Mapped[str | None] = mapped_column(String(500))
    sort_order: Mapped[int] = mapped_column(Integer, default=0)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CallDaily(Base):
    """Call-log rollup: one row per local day, interface and division, its calls counted
    by outcome (``ok``, ``error``, ``rejected``; ``calls`` is all of them) and a histogram
    of durations (``h0``..``h11``, bounds in ``admin.stats.BUCKET_BOUNDS``). Built by
    ``admin.stats.refresh_rollup`` for whole past days. The outcome is a column, not part
    of the key: a key per outcome let rare outcomes add rows as traffic grew (a year of
    one million calls had 90,000 rows, of ten million 176,000), one row per key is at
    most days × interfaces × divisions whatever the traffic."""

    __tablename__ = "admin_call_daily"
    __table_args__ = (Index("ix_admin_call_daily_day", "day", "interface", "division"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    day: Mapped[date] = mapped_column(Date)
    interface: Mapped[str] = mapped_column(String(64))
    division: Mapped[str | None] = mapped_column(String(6))
    calls: Mapped[int] = mapped_column(Integer)
    ok: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[float] = mapped_column(Float)
    max_ms: Mapped[float] = mapped_column(Float)
    h0: Mapped[int] = mapped_column(Integer, default=0)
    h1: Mapped[int] = mapped_column(Integer, default=0)
    h2: Mapped[int] = mapped_column(Integer, default=0)
    h3: Mapped[int] = mapped_column(Integer, default=0)
    h4: Mapped[int] = mapped_column(Integer, default=0)
    h5: Mapped[int] = mapped_column(Integer, default=0)
    h6: Mapped[int] = mapped_column(Integer, default=0)
    h7: Mapped[int] = mapped_column(Integer, default=0)
    h8: Mapped[int] = mapped_column(Integer, default=0)
    h9: Mapped[int] = mapped_column(Integer, default=0)
    h10: Mapped[int] = mapped_column(Integer, default=0)
    h11: Mapped[int] = mapped_column(Integer, default=0)


class CallDailyDone(Base):
    """Which days ``admin_call_daily`` holds completely."""

    __tablename__ = "admin_call_daily_done"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    refreshed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminJob(Base):
    """A manual-queue export or import an operator asked for, run in the background by
    ``admin.jobs`` (``state``: queued, running, done, failed). ``divisions`` is the JSON
    list of the asker's divisions at the time (null: all); ``result`` (sealed: an
    import's reasons may quote a cell) is the import's report or the export's size;
    ``owner`` is the process that runs it (``host:pid:token``)."""

    __tablename__ = "admin_jobs"
    __table_args__ = (Index("ix_admin_jobs_user_state", "username", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(8), index=True)
    username: Mapped[str] = mapped_column(String(64))
    county: Mapped[str | None] = mapped_column(String(6))
    item: Mapped[str | None] = mapped_column(String(64))
    personal: Mapped[bool] = mapped_column(Boolean, default=False)
    divisions: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(200), default="")
    file: Mapped[str | None] = mapped_column(String(100))
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column("result_enc", Sealed(), key="result")
    error: Mapped[str | None] = mapped_column(String(500))
    owner: Mapped[str] = mapped_column(String(128))
    notified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
