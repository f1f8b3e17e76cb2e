"""Instructions to banks (contract 3.2): written with their outbox message in one
transaction, matched with their result by ``instruction_no``, overdue past a deadline
in working days, and the daily reconciliation instruction per active account."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from adapters.fund.ledger import ITEM, alert
from adapters.fund.settings import BankSettings
from mapping.fund import (
    INSTRUCTION_TYPES,
    LOCAL_TZ,
    fen_to_yuan,
    operation_name,
    to_fen,
    weekdays_after,
)
from mapping.workdays import CalendarMissing, WorkCalendar, due_at
from store.due_recount import Span, touched
from store.fund_models import FundInstruction, SupervisedAccount
from store.models import utcnow
from store.outbox import NewMessage

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.fund")

#: Fields of each instruction (besides instruction_no), in the contract's order.
FIELDS: dict[str, tuple[str, ...]] = {
    "01": ("account_no", "date"),
    "02": ("account_no", "reason"),
    "03": ("account_no", "amount", "payee_account", "payee_name", "approval_no"),
    "04": ("developer_name", "developer_uscc", "project_name", "permit_no", "branch_name"),
}


def new_instruction_no(type_code: str) -> str:
    now = datetime.now(LOCAL_TZ)
    return f"{type_code}{now:%Y%m%d%H%M%S}{secrets.token_hex(4).upper()}"


def reconciliation_no(account_no: str, day: date) -> str:
    digest = hashlib.sha256(account_no.encode()).hexdigest()[:12].upper()
    return f"01{day:%Y%m%d}{digest}"


def deadline_of(hub: Hub, settings: BankSettings, type_code: str, issued_at: datetime,
                calendar: WorkCalendar | None = None) -> datetime:
    """When an instruction issued at ``issued_at`` (naive UTC) is overdue without its
    result: the end (24:00 Beijing time) of the limit's last working day on the one
    working-day calendar (系统设置 → 工作日历; transfers: 5 working days; ``calendar``:
    the store's as this process knows it). Should the calendar not hold that year yet
    (the calendar watch alerts from 15 November), the count skips weekends only, logged,
    rather than refusing the instruction; entering the year counts it again
    (``recount_deadlines``)."""
    days = settings.overdue_working_days[type_code]
    calendar = calendar if calendar is not None else hub.overrides.current().calendar
    if calendar is not None:
        try:
            return due_at(calendar, issued_at, days, hub.overrides.tz)
        except CalendarMissing:
            pass
    log.warning("instruction deadline counted on weekdays only: the working-day "
                "calendar has no data for it")
    return weekdays_after(issued_at, days)


def recount_deadlines(hub: Hub, s: Session, settings: BankSettings, calendar: WorkCalendar,
                      span: Span | None) -> int:
    """Count again, on ``calendar``, the deadline of every instruction still waiting for
    its result (not yet flagged overdue) whose count passed through ``span`` (the changed
    days), or of every waiting one when ``span`` is None (the daily job: a count made on
    weekdays only while a year was missing is not marked, and ``hub.py migrate`` seeds a
    new package's year before any job sees it; the waiting instructions are a few).
    Returns how many deadlines changed; in the caller's transaction."""
    waiting = [FundInstruction.status.in_(("queued", "sent")),
               FundInstruction.overdue.is_(False)]
    if span is not None:
        waiting.append(touched(FundInstruction.deadline_at, FundInstruction.created_at,
                               span, hub.overrides.tz))
    rows = s.scalars(select(FundInstruction).where(*waiting))
    changed = 0
    for row in rows:
        if row.type_code not in settings.overdue_working_days:
            continue
        new = deadline_of(hub, settings, row.type_code, row.created_at, calendar)
        if new != row.deadline_at:
            row.deadline_at, changed = new, changed + 1
    return changed


def issue(hub: Hub, s: Session, settings: BankSettings, type_code: str, bank_code: str,
          fields: dict[str, Any], division: str | None = None, actor: str | None = None,
          instruction_no: str | None = None) -> FundInstruction:
    """Write an instruction and its outbox message (delivered by ``BankSoapAdapter``)."""
    if type_code not in INSTRUCTION_TYPES:
        raise ValueError(f"未知指令类型 {type_code!r}")
    partner = settings.partner_of(bank_code)
    if partner is None:
        raise LookupError(f"配置中没有银行代码为 {bank_code!r} 的银行对接方：请核对 --bank-code")
    missing = [f for f in FIELDS[type_code] if fields.get(f) in (None, "")
               and f not in ("approval_no", "developer_uscc")]
    if missing:
        raise ValueError("缺少 " + "、".join(f"--{f.replace('_', '-')}" for f in missing)
                         + "，请补全后重试")
    operation = INSTRUCTION_TYPES[type_code]
    number = instruction_no or new_instruction_no(type_code)
    payload: dict[str, Any] = {"instruction_no": number}
    for name in FIELDS[type_code]:
        value = fields.get(name)
        if name == "amount" and value is not None:
            value = str(fen_to_yuan(to_fen(Decimal(str(value)))))
        elif isinstance(value, date):
            value = value.isoformat()
        payload[name] = value
    now = utcnow()
    day = fields.get("date")
    row = FundInstruction(
        instruction_no=number, type_code=type_code, operation=operation, partner=partner.app_id,
        bank_code=bank_code, account_no=fields.get("account_no"), division=division,
        for_date=date.fromisoformat(day) if isinstance(day, str) else day,
        payload_enc=hub.cipher.seal_json(payload), status="queued",
        deadline_at=deadline_of(hub, settings, type_code, now),
        created_by=actor, created_at=now,
    )
    s.add(row)
    policies = hub.config.retry_policies
    row.message_id = hub.enqueue(s, NewMessage(
        interface=f"bank.{operation}", adapter="bank_soap", partner=partner.app_id,
        operation=operation, payload=payload, policy=policies.get("bank", policies["default"]),
        timeout=partner.timeout, division=division, item=ITEM))
    return row


def on_delivered(s: Session, message_id: int, status: str, error: str | None) -> None:
    """Follow the outbox: acknowledged → sent; parked → failed, with an alert."""
    if status == "done":
        s.execute(update(FundInstruction)
                  .where(FundInstruction.message_id == message_id,
                         FundInstruction.status == "queued")
                  .values(status="sent").execution_options(synchronize_session=False))
    elif status == "dead":
        row = s.scalar(select(FundInstruction).where(FundInstruction.message_id == message_id))
        if row is not None and row.status in ("queued", "sent"):
            row.status = "failed"
            alert(s, "fund_instruction_failed", "warning",
                  f"{operation_name(row.operation)} {row.instruction_no} 发送失败（已停止重试）；"
                  "请检查银行系统后在“报文与重新提交”页重新提交",
                  {"error": error, "partner": row.partner}, division=row.division,
                  ref=f"fund_instruction:{row.instruction_no}")


def mark_overdue(hub: Hub, now: datetime | None = None) -> list[str]:
    """Flag instructions past their deadline with no result (once each), with an alert."""
    now = now or utcnow()
    flagged: list[str] = []
    with hub.transaction() as s:
        rows = s.scalars(select(FundInstruction).where(
            FundInstruction.status.in_(("queued", "sent")), FundInstruction.overdue.is_(False),
            FundInstruction.deadline_at < now)).all()
        for row in rows:
            row.overdue = True
            flagged.append(row.instruction_no)
            alert(s, "fund_overdue", "warning",
                  f"{operation_name(row.operation)} {row.instruction_no} 已超期："
                  f"{row.created_at:%Y-%m-%d} 发出，至今未收到结果",
                  {"bank_code": row.bank_code, "account_no": row.account_no,
                   "deadline_at": row.deadline_at.isoformat()},
                  division=row.division, ref=f"fund_instruction:{row.instruction_no}")
    return flagged


def send_reconciliations(hub: Hub, settings: BankSettings, day: date | None = None) -> list[str]:
    """One ReconciliationInstruction per active account for ``day`` (default yesterday,
    local time); running twice sends nothing twice."""
    day = day or (datetime.now(LOCAL_TZ).date() - timedelta(days=1))
    sent: list[str] = []
    with hub.transaction() as s:
        accounts = s.scalars(select(SupervisedAccount).where(
            SupervisedAccount.status == "active").order_by(SupervisedAccount.id)).all()
        for acc in accounts:
            if settings.partner_of(acc.bank_code) is None:
                log.warning("account %s: bank %s is not configured; no reconciliation",
                            acc.account_no, acc.bank_code)
                continue
            number = reconciliation_no(acc.account_no, day)
            if s.scalar(select(FundInstruction.id).where(
                    FundInstruction.instruction_no == number)) is not None:
                continue
            issue(hub, s, settings, "01", acc.bank_code,
                  {"account_no": acc.account_no, "date": day}, division=acc.division,
                  actor="scheduler", instruction_no=number)
            sent.append(number)
    return sent
