"""The ledger side of an event: idempotent recording, booking a movement, holding what
cannot be booked, alerting operators, and routing the event by the account's division."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, insert, literal_column, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mapping.fund import (
    OTHER_BANK,
    RESULT_CODE,
    SERIAL_REUSED,
    canonical_event,
    content_key,
    fen_to_yuan,
    operation_name,
)
from mapping.names import name as code_name
from store.driver import DriverStatement
from store.fund_models import FundConflict, FundEvent, LedgerEntry, SupervisedAccount
from store.models import Alert, utcnow
from store.outbox import NewMessage, mark_new_rows, message_row, outbox_insert_from

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.fund")
ITEM = "fund_supervision"


@dataclass
class Answer:
    code: str
    msg: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SoapCall:
    """What the SOAP wrapper logs about one call; the desk fills it while it works."""

    operation: str = ""
    party: str = "unknown"
    division: str | None = None
    header_token: str | None = None
    code: str | None = None
    msg: str | None = None
    #: The SOAP call's own transaction (business rows and the call log commit together).
    session: Session | None = None
    #: ``session`` is a share of a group commit (store.group_commit): what the call cannot
    #: settle by its writes alone (a repeated serial, a refusal, a failure) raises
    #: ``RunAlone`` instead of rolling back, and the call runs again in its own transaction.
    grouped: bool = False


class RunAlone(Exception):
    """A grouped call (``SoapCall.grouped``) must run again in a transaction of its own."""


class IfNotARepeat(Exception):
    """Raised by ``record_once``'s ``work`` for a refusal that an exact repeat of a serial
    recorded already must not get (a result for an instruction answered by this very
    serial): the repeat answers as the first time, anything else gets ``refusal``."""

    def __init__(self, refusal: Exception) -> None:
        super().__init__(refusal)
        self.refusal = refusal


def account_view(account: Any) -> dict[str, Any]:
    """An account (entity or row) as the canonical event carries it."""
    return {
        "account_no": account.account_no, "bank_code": account.bank_code,
        "developer_name": account.developer_name, "project_name": account.project_name,
        "permit_no": account.permit_no, "division": account.division,
    }


def record_once(hub: Hub, call: SoapCall, bank_code: str, fields: dict[str, Any],
                work: Callable[[Session], Answer], amount_fen: int | None = None) -> Answer:
    """Run ``work`` once per (bank_code, serial_no); an exact repeat answers as the first
    time, a repeat with other content (``mapping.fund.content_key`` of the normalised
    ``fields``) is refused with 2005 and kept for an operator (``conflict``).

    ``work`` adds the FundEvent (and whatever else) in the same transaction, which
    commits before the answer leaves; a concurrent twin loses on the unique key and
    answers what the winner stored.
    """
    serial_no = fields["serial_no"]
    content = content_key(call.operation, fields)  # before ``work`` adds to ``fields``
    kept = dict(fields)

    def prior(s: Session) -> Answer | None:
        row = s.execute(select(FundEvent.id, FundEvent.operation, FundEvent.answer_code,
                               FundEvent.answer_msg, FundEvent.division,
                               FundEvent.payload_enc)
                        .where(FundEvent.bank_code == bank_code,
                               FundEvent.serial_no == serial_no)).first()
        if row is None:
            return None
        first = content_key(row.operation, hub.cipher.open_json(row.payload_enc) or {})
        if first != content:
            return conflict(s, hub, call, bank_code, kept, amount_fen, content, row)
        call.division = row.division
        return Answer(row.answer_code, row.answer_msg)

    outer = call.session
    if outer is not None and call.grouped:
        try:
            return work(outer)
        except Exception as exc:  # the group rolls back; the call runs alone (below)
            raise RunAlone from exc
    if outer is not None:
        # The SOAP call's own transaction, which holds nothing else yet: new serials are
        # the common case, so work first and let the unique key catch a repeat (its
        # writes are rolled back and the first answer is returned).
        try:
            return work(outer)
        except IntegrityError:
            outer.rollback()
            answer = prior(outer)
            if answer is None:
                raise
            return answer
        except IfNotARepeat as maybe:
            outer.rollback()
            answer = prior(outer)
            if answer is None:
                raise maybe.refusal from None
            return answer
        except Exception:
            outer.rollback()  # a refusal (2002) or a failure books nothing
            raise
    try:
        with hub.transaction() as s:
            answer = prior(s)
            if answer is not None:
                return answer
            return work(s)
    except IfNotARepeat as maybe:  # prior() found no repeat: the refusal stands
        raise maybe.refusal from None
    except IntegrityError:
        with hub.transaction() as s:
            answer = prior(s)
        if answer is None:
            raise
        return answer


def conflict(s: Session, hub: Hub, call: SoapCall, bank_code: str, fields: dict[str, Any],
             amount_fen: int | None, content: str, first: Any) -> Answer:
    """2005: keep the refused notice for an operator (once per distinct content; the
    unique key decides) and alert. Nothing is booked."""
    serial_no = fields["serial_no"]
    answer = Answer(SERIAL_REUSED, f"serial_no {serial_no} was used before with another "
                                   "operation, account or amount; kept for an operator")
    division = first.division
    if division is None and fields.get("account_no"):
        division = s.scalar(select(SupervisedAccount.division).where(
            SupervisedAccount.account_no == fields["account_no"]))
    reason = (f"流水号重复但内容不同（与首次的{operation_name(first.operation)}"
              f"在业务、账号或金额上不一致），已拒绝（2005）")
    row = FundConflict(bank_code=bank_code, serial_no=serial_no, fingerprint=content,
                       event_id=first.id, operation=call.operation,
                       account_no=_text(fields.get("account_no")),
                       amount_fen=amount_fen, division=division, reason=reason,
                       payload_enc=hub.cipher.seal_json(_jsonable(fields)))
    s.add(row)
    try:
        s.flush()
    except IntegrityError:  # this very content was refused before: once is enough
        s.rollback()
        call.division = division
        return answer
    alert(s, "fund_serial_reused", "warning",
          f"{operation_name(call.operation)} 流水号 {serial_no[:64]} 重复使用但内容不同，已拒绝",
          {"bank_code": bank_code, "serial_no": serial_no, "first_operation": first.operation,
           "operation": call.operation, "account_no": fields.get("account_no"),
           "amount": None if amount_fen is None else str(fen_to_yuan(amount_fen))},
          division=division, ref=f"fund_conflict:{row.id}")
    call.division = division
    return answer


def refuse_other_bank(s: Session, call: SoapCall, caller_bank: str, owner_bank: str,
                      what: str, division: str | None) -> Answer:
    """1004: ``what`` (an account, a house, an instruction) belongs to another bank than
    the caller's login. Nothing is booked; the operators are alerted (the call log has
    the attempt)."""
    alert(s, "fund_other_bank", "critical",
          f"{code_name('banks', caller_bank)}的{operation_name(call.operation)}涉及"
          f"{code_name('banks', owner_bank)}的{what}，已拒绝；请与该银行核实",
          {"bank_code": caller_bank, "owner_bank_code": owner_bank,
           "operation": call.operation, "target": what},
          division=division)
    call.division = division
    return Answer(OTHER_BANK, f"the {_WHAT.get(what, 'account')} belongs to another bank "
                              "than this login's")


_WHAT = {"监管账户": "account", "房屋": "house", "指令": "instruction"}


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)[:64]


def new_event(s: Session, hub: Hub, bank_code: str, operation: str, fields: dict[str, Any],
              status: str, answer: Answer, account_no: str | None = None,
              amount_fen: int | None = None, occurred_at: Any = None,
              instruction_no: str | None = None, division: str | None = None,
              reason: str | None = None) -> FundEvent:
    event = FundEvent(
        bank_code=bank_code, serial_no=fields["serial_no"], operation=operation,
        result_type=RESULT_CODE[operation], account_no=account_no,
        instruction_no=instruction_no, amount_fen=amount_fen, occurred_at=occurred_at,
        status=status, reason=reason, answer_code=answer.code, answer_msg=answer.msg[:200],
        division=division, payload_enc=hub.cipher.seal_json(_jsonable(fields)),
    )
    s.add(event)
    s.flush()
    return event


def hold(s: Session, hub: Hub, bank_code: str, operation: str, fields: dict[str, Any],
         answer: Answer, reason: str, account_no: str | None, amount_fen: int | None,
         occurred_at: Any) -> FundEvent:
    """Keep an event that cannot be booked for an operator (nothing is dropped)."""
    event = new_event(s, hub, bank_code, operation, fields, "held", answer,
                      account_no=account_no, amount_fen=amount_fen, occurred_at=occurred_at,
                      reason=reason)
    alert(s, "fund_held", "warning", f"{operation_name(operation)} 已暂存待处理：{reason}",
          {"bank_code": bank_code, "serial_no": fields["serial_no"], "account_no": account_no,
           "amount": None if amount_fen is None else str(fen_to_yuan(amount_fen))},
          ref=f"fund_event:{event.id}")
    return event


def alert(s: Session, kind: str, severity: str, title: str, detail: Any,
          division: str | None = None, ref: str | None = None) -> None:
    s.add(Alert(kind=kind, severity=severity, title=title[:200],
                detail=json.dumps(detail, ensure_ascii=False, default=str),
                division=division, ref=ref))


def route_to(s: Session, hub: Hub, operation: str, bank_code: str, account: dict[str, Any],
             fields: dict[str, Any]) -> tuple[str, int | None]:
    """Send an event where the routing table says for its division (item fund_supervision):
    a smart county gets an outbox message; a manual county's operators see it queued.
    Returns (mode, outbox message id)."""
    mode, message = _routed(hub, operation, bank_code, account, fields)
    if message is None:
        return mode, None
    return mode, hub.enqueue(s, message)


def _routed(hub: Hub, operation: str, bank_code: str, account: dict[str, Any],
            fields: dict[str, Any]) -> tuple[str, NewMessage | None]:
    """The routing decision of ``route_to``: (mode, the outbox message to queue or None)."""
    division = account.get("division")
    if not division:
        return "manual", None
    try:
        r = hub.routes.resolve(division, ITEM)
    except LookupError as exc:
        log.warning("fund event %s/%s: %s; left for operators", bank_code,
                    fields.get("serial_no"), exc)
        return "manual", None
    if r.manual or not r.partner:
        return r.mode, None
    payload = canonical_event(operation, bank_code, fields, account)
    return r.mode, NewMessage(
        interface=f"fund.{operation}", adapter=r.adapter, partner=r.partner,
        operation=ITEM, payload=payload, policy=r.retry, timeout=r.timeout,
        division=division, item=ITEM)


def route(s: Session, hub: Hub, event: FundEvent, account: dict[str, Any],
          fields: dict[str, Any]) -> None:
    """``route_to`` for an event row already added."""
    event.division = account.get("division")
    event.route_mode, event.message_id = route_to(s, hub, event.operation, event.bank_code,
                                                  account, fields)




def _booked_pg(with_outbox: bool):  # type: ignore[no-untyped-def]
    """PostgreSQL: the outbox row (if any), the event and its ledger row in ONE statement
    (data-modifying CTEs, one round trip instead of three); returns the event id.

    Every column is a typed bind (``ob_*``, ``ev_*``, ``lg_*`` = the column names), so the
    rows are exactly what the separate inserts write; SQLite keeps the separate inserts."""
    ev_t, lg_t = FundEvent.__table__, LedgerEntry.__table__
    ev_cols = [c for c in ev_t.c if c.name in _EVENT_COLUMNS]
    lg_cols = [c for c in lg_t.c if c.name in _LEDGER_COLUMNS]

    def binds(prefix: str, cols):  # type: ignore[no-untyped-def]
        return [bindparam(f"{prefix}{c.name}", type_=c.type) for c in cols]

    ev_values = binds("ev_", ev_cols)
    if with_outbox:
        # the outbox's own row format and statement (store.outbox)
        ob = outbox_insert_from(lambda cols: select(*binds("ob_", cols))).cte("ob")
        message_id = select(ob.c.id).scalar_subquery()
    else:
        message_id = literal_column("NULL")
    ev = (insert(ev_t).from_select([*ev_cols, ev_t.c.message_id],
                                   select(*ev_values, message_id))
          .returning(ev_t.c.id).cte("ev"))
    return (insert(lg_t).from_select([*lg_cols, lg_t.c.event_id],
                                     select(*binds("lg_", lg_cols), ev.c.id))
            .returning(lg_t.c.event_id))


_EVENT_COLUMNS = (
    "bank_code", "serial_no", "operation", "result_type", "account_no", "instruction_no",
    "amount_fen", "occurred_at", "status", "answer_code", "answer_msg", "division",
    "route_mode", "payload_enc", "created_at",
)
_LEDGER_COLUMNS = (
    "account_no", "bank_code", "serial_no", "kind", "direction", "amount_fen",
    "occurred_at", "book_date", "house_code", "unlinked", "instruction_no", "detail_enc",
    "created_at",
)
# The hot path's statements run on the driver's cursor (store.driver: SQLAlchemy's
# per-statement machinery cost more than PostgreSQL's work on this ~45-bind CTE).
_BOOKED_PG = {True: DriverStatement(_booked_pg(True)), False: DriverStatement(_booked_pg(False))}
_INSERT_EVENT = DriverStatement(insert(FundEvent.__table__).returning(FundEvent.__table__.c.id),
                                (*_EVENT_COLUMNS, "message_id"))
_INSERT_LEDGER = DriverStatement(insert(LedgerEntry.__table__), (*_LEDGER_COLUMNS, "event_id"))


def insert_booked(s: Session, hub: Hub, bank_code: str, operation: str,
                  fields: dict[str, Any], answer: Answer, account: dict[str, Any], kind: str,
                  direction: str, amount_fen: int, occurred_at: Any, book_date: date,
                  house_code: str | None, unlinked: bool, personal: dict[str, Any]) -> int:
    """Route, then insert the event and its ledger row (Core inserts: the hot path).

    On PostgreSQL the outbox row, the event and the ledger row go in one statement."""
    event = dict(
        bank_code=bank_code, serial_no=fields["serial_no"], operation=operation,
        result_type=RESULT_CODE[operation], account_no=account["account_no"],
        instruction_no=fields.get("instruction_no"), amount_fen=amount_fen,
        occurred_at=occurred_at, status="booked", answer_code=answer.code,
        answer_msg=answer.msg[:200], division=account.get("division"),
        payload_enc=hub.cipher.seal_json(_jsonable(fields)),
    )
    ledger = dict(
        account_no=account["account_no"], bank_code=bank_code,
        serial_no=fields["serial_no"], kind=kind, direction=direction, amount_fen=amount_fen,
        occurred_at=occurred_at, book_date=book_date, house_code=house_code or None,
        unlinked=unlinked, instruction_no=fields.get("instruction_no"),
        detail_enc=hub.cipher.seal_json(_jsonable({k: v for k, v in personal.items() if v})),
    )
    if hub.db.postgres:
        mode, message = _routed(hub, operation, bank_code, account, fields)
        now = utcnow()
        params = {f"ev_{k}": v for k, v in event.items()}
        params.update({f"lg_{k}": v for k, v in ledger.items()})
        params.update(ev_route_mode=mode, ev_created_at=now, lg_created_at=now)
        if message is not None:
            params.update({f"ob_{k}": v for k, v in message_row(hub.cipher, message, now).items()})
            mark_new_rows(s)  # as hub.enqueue: wakes the workers after the commit
        return int(_BOOKED_PG[message is not None].scalar(s, params))
    mode, message_id = route_to(s, hub, operation, bank_code, account, fields)
    now = utcnow()
    event_id = _INSERT_EVENT.scalar(s, dict(event, route_mode=mode, message_id=message_id,
                                            created_at=now))
    _INSERT_LEDGER.execute(s, dict(ledger, event_id=event_id, created_at=now))
    return int(event_id)


def balance_fen(s: Session, account_no: str, before: date | None = None,
                on: date | None = None) -> tuple[int, int]:
    """(total in, total out) of an account: before a day, or on a day."""
    q = select(LedgerEntry.direction, func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(
        LedgerEntry.account_no == account_no, LedgerEntry.direction.in_(("in", "out")))
    if before is not None:
        q = q.where(LedgerEntry.book_date < before)
    if on is not None:
        q = q.where(LedgerEntry.book_date == on)
    sums = dict(s.execute(q.group_by(LedgerEntry.direction)).all())
    return int(sums.get("in", 0)), int(sums.get("out", 0))


def _jsonable(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k == "token":
            continue
        out[k] = v if v is None or isinstance(v, str | int | bool) else str(v)
    return out
