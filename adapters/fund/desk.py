"""What each operation of the hub's fund service does (contract 3.1, 3.3).

Order of work for every call: the token (1001 books nothing), then the fields
(2002 changes nothing), then one transaction that records the event once per
(bank_code, serial_no), books or holds it, alerts, routes, and commits before the
answer is returned.

A caller's bank is its login's ``bank_code`` (carried by the token), for POS terminals
too: a POS login is registered under the bank that runs the terminal
(``hub.py bank-account add --bank-code ICBC --username … --pos``); ``terminal_id`` is
only recorded. An account, a house (through its account) or an instruction of another
bank answers 1004 and raises an alert, and nothing is booked (``refuse_other_bank``).
A serial_no reused with another operation, account or amount answers 2005 and is kept
in ``fund_conflicts`` (``record_once``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.fund.auth import Caller, Tokens
from adapters.fund.ledger import (
    Answer,
    IfNotARepeat,
    RunAlone,
    SoapCall,
    account_view,
    alert,
    balance_fen,
    hold,
    insert_booked,
    new_event,
    record_once,
    refuse_other_bank,
    route,
)
from adapters.fund.reconcile import FIGURES, compare
from adapters.fund.settings import BankSettings
from mapping.fund import (
    ABNORMAL,
    ABNORMAL_REPORT_HOURS,
    BAD_TOKEN,
    INTERNAL,
    INVALID,
    MOVEMENTS,
    NOT_ON_SALE,
    OK,
    PAY_METHODS,
    RESULT_OF,
    RESULT_OK,
    UNKNOWN_ACCOUNT,
    FieldError,
    amount_in,
    fen_to_yuan,
    local_date,
    occurred_utc,
    operation_name,
    reported_late,
)
from mapping.names import name as code_name
from store.driver import DriverStatement
from store.fund_models import FundHouse, FundInstruction, SupervisedAccount
from store.models import utcnow

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.fund")
#: What booking needs of an account (a plain row: cheaper than loading the entity).
ACCOUNT_COLUMNS = (SupervisedAccount.account_no, SupervisedAccount.bank_code,
                   SupervisedAccount.developer_name, SupervisedAccount.project_name,
                   SupervisedAccount.permit_no, SupervisedAccount.division)
POS_OPERATIONS = frozenset({"PosPaymentVerify", "PosPayment"})
PERSONAL = ("payer_name", "payer_account", "payee_name", "payee_account", "buyer_name",
            "card_no_masked", "remark", "authority", "document_no", "terminal_id", "pay_method")


#: A house's account and status, on the driver's cursor (every deposit naming a house).
_HOUSE = DriverStatement(select(FundHouse.account_no, FundHouse.status).where(
    FundHouse.house_code == bindparam("house_code")))


class AccountCache:
    """Known supervised accounts for a few seconds (hits only: a new account is seen at
    once; an operator's edit within ``ttl``)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._rows: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def get(self, s: Session, account_no: str) -> Any:
        now = time.monotonic()
        hit = self._rows.get(account_no)
        if hit is not None and hit[1] > now:
            return hit[0]
        row = s.execute(select(*ACCOUNT_COLUMNS).where(
            SupervisedAccount.account_no == account_no)).first()
        if row is not None:
            with self._lock:
                if len(self._rows) > 50000:
                    self._rows.clear()
                self._rows[account_no] = (row, now + self.ttl)
        return row


class FundDesk:
    def __init__(self, hub: Hub, settings: BankSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.tokens = Tokens(settings.token_ttl_seconds)
        self.accounts = AccountCache()
        self._handlers: dict[str, Callable[[SoapCall, Caller, dict[str, Any]], Answer]] = {
            **{op: self._movement for op in MOVEMENTS if op != "PosPayment"},
            "PosPayment": self._pos_payment,
            "PosPaymentVerify": self._pos_verify,
            "ReconciliationResult": self._result,
            "CancelSupervisionResult": self._result,
            "TransferResult": self._result,
            "AccountSetupResult": self._result,
        }

    # ------------------------------------------------------------------ entry points

    def authenticate(self, call: SoapCall, bank_code: str, username: str,
                     password: str) -> Answer:
        call.party = bank_code or "unknown"
        issued = self.tokens.issue(self.hub.transaction, bank_code, username, password)
        if issued == "locked_now":
            with self.hub.transaction() as s:
                alert(s, "fund_login_locked", "warning",
                      f"{code_name('banks', bank_code)}的接口登录账号连续登录失败，已被锁定；"
                      "请联系该银行核实账号后等待解锁",
                      {"bank_code": bank_code}, ref=f"fund_login:{bank_code}")
        if isinstance(issued, str):
            if issued == "bad":
                return Answer(BAD_TOKEN, "wrong bank code, user name or password")
            return Answer(BAD_TOKEN, "login locked after repeated failures; try again later "
                                     "or ask the hub's operators")
        token, expires = issued
        return Answer(OK, "ok", {"token": token, "expires_at": _aware(expires)})

    def handle(self, call: SoapCall, operation: str, fields: dict[str, Any]) -> Answer:
        checked = self.check_caller(call, operation, fields)
        return checked if isinstance(checked, Answer) else self.act(call, checked, operation,
                                                                    fields)

    def check_caller(self, call: SoapCall, operation: str, fields: dict[str, Any]
                     ) -> Caller | Answer:
        """The caller of the token (taken out of ``fields``), else the 1001 answer. A
        token not in the cache is read in a transaction of its own."""
        token = fields.pop("token", None) or call.header_token
        caller = self.tokens.check(self.hub.db.session, token)
        if caller is None:
            return Answer(BAD_TOKEN, "bad or expired token")
        call.party = caller.bank_code
        if caller.kind == "pos" and operation not in POS_OPERATIONS:
            return Answer(BAD_TOKEN, f"a POS login may not call {operation}")
        return caller

    def act(self, call: SoapCall, caller: Caller, operation: str, fields: dict[str, Any]
            ) -> Answer:
        """The operation for a checked caller, in ``call.session``'s transaction."""
        try:
            for key in ("serial_no", "terminal_id"):  # the idempotency key, the terminal
                if isinstance(fields.get(key), str) and not fields[key].strip():
                    raise FieldError(key, "must not be blank")
            return self._handlers[operation](call, caller, fields)
        except RunAlone:
            raise
        except FieldError as exc:
            return Answer(INVALID, f"invalid field {exc}")
        except Exception:
            log.exception("fund operation %s failed", operation)
            return Answer(INTERNAL, "internal error")

    # ------------------------------------------------------------------ movements

    def _movement(self, call: SoapCall, caller: Caller, f: dict[str, Any]) -> Answer:
        op = call.operation
        in_fen = self.settings.in_fen(caller.bank_code)
        fen = amount_in(f["amount"], "amount", in_fen)
        when = _occurred(f["occurred_at"])
        if op == "DepositNotice" and f.get("pay_method") and f["pay_method"] not in PAY_METHODS:
            raise FieldError("pay_method", f"not in code table 4.3 ({', '.join(PAY_METHODS)})")
        f = {**f, "amount": fen_to_yuan(fen), "occurred_at": when.isoformat() + "Z"}

        def work(s: Session) -> Answer:
            account = self.accounts.get(s, f["account_no"])
            if account is None:
                answer = Answer(UNKNOWN_ACCOUNT, "unknown account_no; kept for an operator")
                hold(s, self.hub, caller.bank_code, op, f, answer, "unknown account",
                     f["account_no"], fen, when)
                return answer
            if account.bank_code != caller.bank_code:
                return refuse_other_bank(s, call, caller.bank_code, account.bank_code,
                                         "监管账户", account.division)
            if f.get("instruction_no"):  # a withdrawal citing the instruction it carries out
                cited = _cited_instruction(s, f["instruction_no"])
                if cited is not None and cited.bank_code != caller.bank_code:
                    return refuse_other_bank(s, call, caller.bank_code, cited.bank_code,
                                             "指令", cited.division)
                if cited is None or (cited.account_no
                                     and cited.account_no != account.account_no):
                    # the money has left the account all the same: booked, and an
                    # operator checks the citation (a refusal let the ledger drift)
                    alert(s, "fund_citation_unknown", "warning",
                          f"出账通知 {f['serial_no']} 引用的指令 {f['instruction_no']} "
                          + ("不存在" if cited is None else "不是该监管账户的指令")
                          + "；已按银行通知入账，请与银行核对",
                          {"account_no": account.account_no, "bank_code": caller.bank_code},
                          division=account.division)
            refused = self._house_refused(s, call, caller, f, account, fen, when)
            if refused is not None:
                return refused
            return self._book(s, call, caller, op, f, account, fen, when)

        return record_once(self.hub, call, caller.bank_code, f, work, fen)

    def _house_refused(self, s: Session, call: SoapCall, caller: Caller, f: dict[str, Any],
                       account: Any, fen: int, when: Any) -> Answer | None:
        """A movement naming a registered house that is not on sale under its account:
        another bank's house is 1004 (bank.md: "the account or house belongs to another
        bank"), and nothing is booked; this bank's house under another of its accounts,
        or withdrawn from sale, is 3002, kept for an operator (money is never dropped).
        None: no house, a house the hub has not registered (booked as the bank says),
        or a house on sale under this account."""
        house_code = f.get("house_code")
        if not house_code:
            return None
        found = _HOUSE.execute(s, {"house_code": house_code})  # the driver's cursor: cheap
        if not found:
            return None
        house_account, status = found[0]
        if house_account == account.account_no and status == "on_sale":
            return None
        owner = self.accounts.get(s, house_account)
        if owner is not None and owner.bank_code != caller.bank_code:
            return refuse_other_bank(s, call, caller.bank_code, owner.bank_code, "房屋",
                                     owner.division)
        answer = Answer(NOT_ON_SALE, "the house is not on sale under this account; kept "
                                     "for an operator")
        hold(s, self.hub, caller.bank_code, call.operation, f, answer,
             f"house {house_code} not on sale under account {account.account_no}",
             account.account_no, fen, when)
        return answer

    def _book(self, s: Session, call: SoapCall, caller: Caller, op: str, f: dict[str, Any],
              account: Any, fen: int, when: Any) -> Answer:
        kind, direction = MOVEMENTS[op]
        house = f.get("house_code") or None
        unlinked = op == "DepositNotice" and not house
        answer = Answer(OK, "booked, unlinked: no house_code" if unlinked else "booked")
        event_id = insert_booked(s, self.hub, caller.bank_code, op, f, answer,
                                 account_view(account), kind, direction, fen, when,
                                 local_date(when), house, unlinked,
                                 {k: f.get(k) for k in PERSONAL})
        call.division = account.division
        if unlinked:
            alert(s, "fund_unlinked", "info", f"入账 {f['serial_no']} 未注明房屋编码（未关联）",
                  {"account_no": account.account_no, "amount": str(fen_to_yuan(fen))},
                  division=account.division, ref=f"fund_event:{event_id}")
        if direction == "out":
            total_in, total_out = balance_fen(s, account.account_no)
            if total_out > total_in:  # the bank paid out more than the account holds
                alert(s, "fund_overdrawn", "critical",
                      f"{operation_name(op)}后监管账户 {account.account_no} 余额为负："
                      f"{fen_to_yuan(total_in - total_out)} 元，请与银行核实",
                      {"account_no": account.account_no, "serial_no": f["serial_no"],
                       "amount": str(fen_to_yuan(fen)), "bank_code": caller.bank_code},
                      division=account.division, ref=f"fund_event:{event_id}")
        if op in ABNORMAL:
            late = reported_late(when, utcnow())
            alert(s, f"fund_{kind}", "critical",
                  f"{operation_name(op)}：监管账户 {account.account_no}"
                  f"（{account.project_name or '-'}）{fen_to_yuan(fen)} 元"
                  + (f"（逾期报送：发生后 {late:g} 小时）" if late else ""),
                  {"authority": f.get("authority"), "document_no": f.get("document_no"),
                   "occurred_at": f["occurred_at"], "bank_code": caller.bank_code,
                   "reported_late_hours": late},
                  division=account.division, ref=f"fund_event:{event_id}")
            if late:
                alert(s, "fund_reported_late", "warning",
                      f"{operation_name(op)} {f['serial_no']} 逾期报送：发生后 {late:g} 小时"
                      f"才报送（应在 {ABNORMAL_REPORT_HOURS} 小时内）",
                      {"bank_code": caller.bank_code, "account_no": account.account_no,
                       "occurred_at": f["occurred_at"]},
                      division=account.division, ref=f"fund_late:{event_id}")
        return answer

    # ------------------------------------------------------------------ POS

    def _on_sale(self, s: Session, house_code: str) -> SupervisedAccount | None:
        house = s.get(FundHouse, house_code)
        if house is None or house.status != "on_sale":
            return None
        account = s.scalar(select(SupervisedAccount).where(
            SupervisedAccount.account_no == house.account_no))
        return account if account is not None and account.status == "active" else None

    def _pos_verify(self, call: SoapCall, caller: Caller, f: dict[str, Any]) -> Answer:
        amount_in(f["amount"], "amount", self.settings.in_fen(caller.bank_code))
        with self.hub.db.session() as s:
            account = self._on_sale(s, f["house_code"])
        if account is None:
            return Answer(NOT_ON_SALE, "the house is not on sale under a supervised account")
        if account.bank_code != caller.bank_code:
            if call.session is not None:  # the alert commits with the call's log row
                return refuse_other_bank(call.session, call, caller.bank_code,
                                         account.bank_code, "房屋", account.division)
            with self.hub.transaction() as s:
                return refuse_other_bank(s, call, caller.bank_code, account.bank_code,
                                         "房屋", account.division)
        call.division = account.division
        return Answer(OK, "ok", {"account_no": account.account_no,
                                 "project_name": account.project_name})

    def _pos_payment(self, call: SoapCall, caller: Caller, f: dict[str, Any]) -> Answer:
        fen = amount_in(f["amount"], "amount", self.settings.in_fen(caller.bank_code))
        when = _occurred(f["occurred_at"])
        f = {**f, "amount": fen_to_yuan(fen), "occurred_at": when.isoformat() + "Z",
             "pay_method": "03"}

        def work(s: Session) -> Answer:
            account = self._on_sale(s, f["house_code"])
            if account is None:
                answer = Answer(NOT_ON_SALE, "the house is not on sale under a supervised "
                                             "account; kept for an operator")
                hold(s, self.hub, caller.bank_code, "PosPayment", f, answer,
                     f"house {f['house_code']} not on sale", None, fen, when)
                return answer
            if account.bank_code != caller.bank_code:
                return refuse_other_bank(s, call, caller.bank_code, account.bank_code,
                                         "房屋", account.division)
            f["account_no"] = account.account_no
            return self._book(s, call, caller, "PosPayment", f, account, fen, when)

        return record_once(self.hub, call, caller.bank_code, f, work, fen)

    # ------------------------------------------------------------------ results

    def _result(self, call: SoapCall, caller: Caller, f: dict[str, Any]) -> Answer:
        op = call.operation
        in_fen = self.settings.in_fen(caller.bank_code)
        bank: dict[str, int] = {}
        fen: int | None = None
        if op == "ReconciliationResult":
            for name in FIGURES:
                bank[name] = amount_in(f[name], name, in_fen, allow_zero=True, signed=True)
            f = {**f, **{k: fen_to_yuan(v) for k, v in bank.items()}}
        if op == "TransferResult":
            fen = amount_in(f["amount"], "amount", in_fen)
            f = {**f, "amount": fen_to_yuan(fen),
                 "occurred_at": _occurred(f["occurred_at"]).isoformat() + "Z"}
        ok = str(f.get("result") or "").strip() in RESULT_OK

        def work(s: Session) -> Answer:
            # Locked: concurrent results of one instruction (under new serials) each saw
            # it unanswered under READ COMMITTED, and each set up an account of its own.
            ins = s.scalar(select(FundInstruction).where(
                FundInstruction.instruction_no == f["instruction_no"]).with_for_update())
            if ins is not None and ins.bank_code != caller.bank_code:
                return refuse_other_bank(s, call, caller.bank_code, ins.bank_code, "指令",
                                         ins.division)
            if ins is None or ins.type_code != RESULT_OF[op]:
                raise FieldError("instruction_no", "no such instruction of this bank")
            if ins.status == "answered":  # its result's own serial repeats answer as then
                raise IfNotARepeat(FieldError(
                    "instruction_no", f"instruction {ins.instruction_no} was answered "
                                      "already: one result each"))
            if fen is not None and fen != self._asked_fen(ins):
                raise FieldError("amount", f"instruction {ins.instruction_no} is for "
                                           "another amount")
            named = f.get("account_no") and self.accounts.get(s, f["account_no"])
            if named and named.bank_code != caller.bank_code:
                return refuse_other_bank(s, call, caller.bank_code, named.bank_code,
                                         "监管账户", named.division)
            if ins.account_no and f.get("account_no") and f["account_no"] != ins.account_no:
                raise FieldError("account_no", f"instruction {ins.instruction_no} is for "
                                               f"another account")
            answer = Answer(OK, "ok")
            account = None
            if op == "AccountSetupResult" and ok:
                if not f.get("account_no"):
                    raise FieldError("account_no", "required when the setup succeeded")
                account, made = _account_to_set_up(s, ins, f["account_no"])
                if account.bank_code != caller.bank_code:  # set up meanwhile by another bank
                    return refuse_other_bank(s, call, caller.bank_code, account.bank_code,
                                             "监管账户", account.division)
                asked = self.hub.cipher.open_json(ins.payload_enc) or {}
                if not made and not _unclaimed(s, account, ins, asked):
                    # another project's account (set up by an instruction, or cancelled)
                    # is not taken over; one an operator registered by hand is
                    raise FieldError("account_no", f"{account.account_no} is a supervised "
                                                   "account already; name the new one")
                _complete_setup(ins, account, f, asked)
            elif f.get("account_no") or ins.account_no:
                account = s.scalar(select(SupervisedAccount).where(
                    SupervisedAccount.account_no == (f.get("account_no") or ins.account_no)))
            if op == "ReconciliationResult":
                day = f["date"] if isinstance(f["date"], date) else date.fromisoformat(f["date"])
                if ins.for_date and day != ins.for_date:
                    raise FieldError("date", f"instruction is for {ins.for_date}")
                compare(s, ins.account_no or f["account_no"], day, ins.instruction_no, bank,
                        division=ins.division)
            if op == "CancelSupervisionResult" and ok and account is not None:
                account.status = "cancelled"
                account.updated_by = f"bank:{caller.bank_code}"
            ins.status, ins.answered_at = "answered", utcnow()
            ins.result = "ok" if op == "ReconciliationResult" else str(f.get("result"))[:16]
            ins.result_msg = f.get("message")
            event = new_event(s, self.hub, caller.bank_code, op, f, "done", answer,
                              account_no=account.account_no if account else f.get("account_no"),
                              instruction_no=ins.instruction_no, division=ins.division)
            view = account_view(account) if account is not None else {"division": ins.division}
            call.division = view.get("division")
            route(s, self.hub, event, view, f)
            return answer

        return record_once(self.hub, call, caller.bank_code, f, work, fen)

    def _asked_fen(self, ins: FundInstruction) -> int | None:
        """The amount a transfer instruction asked for, in fen (its payload holds yuan)."""
        asked = (self.hub.cipher.open_json(ins.payload_enc) or {}).get("amount")
        return None if asked is None else amount_in(str(asked), "amount", False)

def _complete_setup(ins: FundInstruction, account: SupervisedAccount, f: dict[str, Any],
                    asked: dict[str, Any]) -> None:
    """The account as the setup instruction asked for it (``asked``: its opened payload)."""
    account.account_name = f.get("account_name") or account.account_name
    account.branch_name = f.get("branch_name") or asked.get("branch_name")
    account.developer_name = asked.get("developer_name")
    account.developer_uscc = asked.get("developer_uscc")
    account.project_name = asked.get("project_name")
    account.permit_no = asked.get("permit_no")
    account.status = "active"
    account.updated_by = f"bank:{ins.bank_code}"
    ins.account_no = account.account_no


def _account_to_set_up(s: Session, ins: FundInstruction, account_no: str
                       ) -> tuple[SupervisedAccount, bool]:
    """The account an instruction's setup names, and whether it was made now, for the
    instruction's bank (else it was there: read once, or a concurrent setup of the same
    number committed first). The caller checks whose it is on this very row: a check
    before, under READ COMMITTED, could miss another bank's setup committed since (both
    answered 0000)."""
    found = select(SupervisedAccount).where(SupervisedAccount.account_no == account_no)
    account = s.scalar(found)
    if account is not None:
        return account, False
    try:
        with s.begin_nested():
            account = SupervisedAccount(account_no=account_no, bank_code=ins.bank_code,
                                        division=ins.division or "")
            s.add(account)
    except IntegrityError:  # another setup of this number committed first
        account = s.scalar(found.execution_options(populate_existing=True))
        if account is None:
            raise
        return account, False
    return account, True


#: A notice may say it happened at most this far ahead of the hub's clock. Banks and
#: POS terminals signing in by token have no clock check of their own (a county's stage
#: times do: its signature's 300 s), and a terminal running minutes fast has charged the
#: card all the same: only what cannot be drift is refused (a year 9999 would stand as
#: the ledger's latest day).
OCCURRED_AHEAD = timedelta(days=1)


def _occurred(value: Any) -> datetime:
    when = occurred_utc(value)
    if when > utcnow() + OCCURRED_AHEAD:
        raise FieldError("occurred_at", "must not be more than a day ahead of the hub's "
                                        "clock (a notice follows what happened)")
    return when


def _unclaimed(s: Session, account: SupervisedAccount, ins: FundInstruction,
               asked: dict[str, Any]) -> bool:
    """Whether a setup instruction may take ``account`` (of its bank, checked before): one
    an operator registered by hand (``hub.py fund-account add``, the bank having phoned
    the setup in) — still active, for no project or this instruction's, and named by no
    other setup instruction."""
    if account.status != "active":
        return False
    for field in ("project_name", "permit_no"):
        if getattr(account, field) not in (None, "", asked.get(field)):
            return False  # another project's account
    return s.scalar(select(FundInstruction.id).where(
        FundInstruction.account_no == account.account_no, FundInstruction.type_code == "04",
        FundInstruction.id != ins.id).limit(1)) is None


def _cited_instruction(s: Session, instruction_no: str) -> FundInstruction | None:
    return s.scalar(select(FundInstruction).where(
        FundInstruction.instruction_no == instruction_no))


def _aware(value: Any) -> Any:
    from datetime import UTC

    return value.replace(tzinfo=UTC)
