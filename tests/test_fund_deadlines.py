"""Presale-fund deadlines on the one working-day calendar (issue 14): an instruction's
limit counts working days with the 调休 make-up days and the National Day holidays,
and an abnormal event the bank reports more than 24 hours after it occurred is flagged
late — alerted at once and marked on the account's ledger page. Notices go through the
real SOAP service (zeep) of the hub served by waitress."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from adapters.bank_soap import fund_desk
from adapters.fund.instructions import deadline_of
from store.calendar import seed_from_package
from store.models import Alert
from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator
from tests.test_bank_fixtures import ACC_SMART

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
TZ = ZoneInfo("Asia/Shanghai")


def _utc(*args: int) -> datetime:
    """Beijing wall-clock time as the naive UTC the store keeps."""
    return datetime(*args, tzinfo=TZ).astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def test_a_transfer_issued_before_national_day_is_due_on_the_fifth_working_day(fund):
    hub = fund.hub
    settings = fund_desk(hub).settings
    issued = _utc(2026, 9, 30, 10, 0)  # Wednesday; 10-01..10-07 off, Saturday 10-10 works
    # no calendar in the store yet: counted on weekdays only (the calendar watch alerts)
    assert deadline_of(hub, settings, "03", issued) == _utc(2026, 10, 8, 0, 0)
    seed_from_package(hub.db)
    hub.overrides.reload()
    # 10-08, 10-09, 10-10 (Sat, working), 10-12, 10-13: overdue after 24:00 on 10-13
    assert deadline_of(hub, settings, "03", issued) == _utc(2026, 10, 14, 0, 0)
    # a reconciliation (1 working day) issued on Friday 2026-09-18: Sunday 09-20 works
    assert deadline_of(hub, settings, "01", _utc(2026, 9, 18, 15, 0)) == _utc(2026, 9, 21, 0, 0)


def _frozen(fund, serial: str, occurred: datetime) -> str:
    return fund.client().AccountFrozenNotice(
        token=fund.token(), serial_no=serial, account_no=ACC_SMART, amount=Decimal("500.00"),
        authority="通川区人民法院", document_no="(2026)川1702执9号",
        occurred_at=occurred).result_code


def test_an_abnormal_event_reported_after_24_hours_is_flagged_late(fund):
    now = datetime.now(TZ)
    assert _frozen(fund, "LATE-1", now - timedelta(hours=30)) == "0000"
    assert _frozen(fund, "ONTIME-1", now - timedelta(hours=23)) == "0000"
    with fund.hub.db.session() as s:
        alerts = s.scalars(select(Alert).order_by(Alert.id)).all()
    kinds = [a.kind for a in alerts]
    assert kinds == ["fund_frozen", "fund_reported_late", "fund_frozen"], kinds
    late_frozen, late, on_time = alerts
    assert "逾期报送" in late_frozen.title and "逾期报送" not in on_time.title
    assert "LATE-1" in late.title and "30" in late.title and late.severity == "warning"

    add_operator(fund.hub, "root", ALL_FUNCTIONS)
    op = Client(fund.server.url)
    op.login("root")
    page = op.get(f"/admin/fund/{ACC_SMART}").text
    row_late = page.split('id="entry-LATE-1"')[1].split("</tr>")[0]
    row_on_time = page.split('id="entry-ONTIME-1"')[1].split("</tr>")[0]
    assert "逾期报送" in row_late and "逾期报送" not in row_on_time


def test_entering_the_year_counts_a_waiting_instructions_deadline_again(fund):
    """An instruction issued while the calendar lacks the year is due on weekdays only;
    once an operator enters the year, with a holiday inside the count, it is due one
    working day later (not flagged overdue a day early)."""
    from adapters.fund.instructions import issue
    from store.fund_models import FundInstruction
    from store.models import utcnow

    hub = fund.hub
    with hub.transaction() as s:  # no calendar in the store: weekdays only
        row = issue(hub, s, fund_desk(hub).settings, "03", "ICBC", {
            "account_no": ACC_SMART, "amount": "100.00", "payee_account": "5100009",
            "payee_name": "达州建工", "approval_no": "HZ-2026-9"}, division="511702")
        number, first = row.instruction_no, row.deadline_at
    issued_day = row.created_at.replace(tzinfo=ZoneInfo("UTC")).astimezone(TZ).date()
    holiday = issued_day + timedelta(days=1)
    while holiday.weekday() >= 5:
        holiday += timedelta(days=1)
    add_operator(hub, "root", ALL_FUNCTIONS + ("manage_settings",))
    op = Client(fund.server.url)
    op.login("root")
    for year in sorted({utcnow().year, holiday.year, first.year}):
        days = f"{holiday.isoformat()} 休 测试" if year == holiday.year else ""
        assert "已保存" in op.post("/admin/settings/calendar",
                                   {"year": str(year), "days": days}).text
    with hub.db.session() as s:
        moved = s.scalar(select(FundInstruction.deadline_at)
                         .where(FundInstruction.instruction_no == number))
    assert moved > first
    assert moved == deadline_of(hub, fund_desk(hub).settings, "03", row.created_at)


def test_the_daily_job_counts_a_waiting_instructions_deadline_after_an_upgrade(fund):
    """``hub.py migrate`` seeds a new package's year before any job runs: the daily job
    saw no year added and left a weekdays-only deadline as it was (six days early over
    National Day). It now counts every waiting instruction again."""
    from adapters.fund.instructions import issue
    from scheduler import watch_calendar
    from store.fund_models import FundInstruction

    hub = fund.hub
    with hub.transaction() as s:  # no calendar in the store: weekdays only
        row = issue(hub, s, fund_desk(hub).settings, "03", "ICBC", {
            "account_no": ACC_SMART, "amount": "100.00", "payee_account": "5100009",
            "payee_name": "达州建工", "approval_no": "HZ-2026-8"}, division="511702")
        number = row.instruction_no
        s.flush()
        s.execute(FundInstruction.__table__.update()
                  .where(FundInstruction.instruction_no == number)
                  .values(created_at=_utc(2026, 9, 30, 10, 0),
                          deadline_at=_utc(2026, 10, 8, 0, 0)))  # as counted on weekdays
    seed_from_package(hub.db)  # what migrate does
    hub.overrides.reload()
    watch_calendar(hub)
    with hub.db.session() as s:
        deadline = s.scalar(select(FundInstruction.deadline_at)
                            .where(FundInstruction.instruction_no == number))
    assert deadline == _utc(2026, 10, 14, 0, 0)
