"""A simulated bank front-end: a real spyne SOAP server for the four instructions of
contracts/bank.md 3.2, which then calls the hub's fund service (with zeep) with their
results — and, on its own, with deposits, withdrawals and an occasional freeze.

It keeps its own book per account, so a reconciliation answers the bank's figures
(a deposit booked with ``notify=False`` is one the hub never heard of).

    python -m adapters.sim.bank --hub http://127.0.0.1:8080 --port 8093 \
        --bank-code ICBC --username icbc-front --password-env SIM_BANK_PASSWORD --auto 5
"""

from __future__ import annotations

import argparse
import io
import itertools
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree
from spyne import Application, ComplexModel, ServiceBase, rpc
from spyne.model.primitive import Date, Unicode
from spyne.model.primitive import Decimal as SoapDecimal
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication
from werkzeug.serving import make_server

from adapters.sim.loopback import POLL

log = logging.getLogger("cityhub.sim.bank")
NS = "urn:cityhub:banksim:v1"
TZ = ZoneInfo("Asia/Shanghai")
WSSE_NS = ("http://docs.oasis-open.org/wss/2004/01/"
           "oasis-200401-wss-wssecurity-secext-1.0.xsd")


class ServerThread:
    """A WSGI app on a real threaded werkzeug server on 127.0.0.1, in a thread."""

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(host, port, app, threaded=True)
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, kwargs=POLL,
                                       name=f"wsgi-{self.server.port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Ack(ComplexModel):
    __namespace__ = NS
    _type_info = [("result_code", Unicode), ("result_msg", Unicode)]


@dataclass
class Movement:
    day: date
    direction: str  # in | out
    fen: int
    serial_no: str


@dataclass
class SimState:
    instructions: list[dict[str, Any]] = field(default_factory=list)
    wsse_users: list[str] = field(default_factory=list)
    answers: list[tuple[str, str, str]] = field(default_factory=list)  # op, serial, code
    book: dict[str, list[Movement]] = field(default_factory=dict)
    frozen: dict[str, int] = field(default_factory=dict)  # fen frozen per account
    errors: list[str] = field(default_factory=list)


class Overdrawn(ValueError):
    """A withdrawal, deduction or freeze beyond what the account holds (a real bank
    refuses it; a scenario that wants it passes ``overdraw=True``, and the hub flags it)."""


class SimBank:
    def __init__(self, hub_url: str, bank_code: str, username: str, password: str,
                 amounts_in_fen: bool = False, require_wsse: str | None = None,
                 wsse_password: str | None = None, answer_results: bool = True,
                 port: int = 0) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.bank_code, self.username, self.password = bank_code, username, password
        self.in_fen = amounts_in_fen
        self.require_wsse, self.wsse_password = require_wsse, wsse_password
        self.answer_results = answer_results
        self.state = SimState()
        self._serial = itertools.count(1)
        self._accounts = itertools.count(1)
        self._lock = threading.Lock()
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._client: Any = None
        self._token: str | None = None
        self._token_until = 0.0
        self.wsgi = WsgiApplication(self._application())
        self.server = ServerThread(self._guard, port=port)
        self._worker = threading.Thread(target=self._work, daemon=True, name="sim-bank")

    # ------------------------------------------------------------------ server

    @property
    def url(self) -> str:
        return self.server.url + "/"

    def start(self) -> SimBank:
        self.server.start()
        self._worker.start()
        return self

    def stop(self) -> None:
        self._tasks.put(None)
        self.server.stop()

    def wait_idle(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self._tasks.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)

    def _application(self) -> Application:
        sim = self

        class BankFront(ServiceBase):
            @rpc(Unicode, Unicode, Date, _returns=Ack)
            def ReconciliationInstruction(ctx, instruction_no, account_no, date):  # noqa: N802, N805
                return sim._received("ReconciliationInstruction", instruction_no=instruction_no,
                                     account_no=account_no, date=date)

            @rpc(Unicode, Unicode, Unicode, _returns=Ack)
            def CancelSupervisionInstruction(ctx, instruction_no, account_no, reason):  # noqa: N802, N805
                return sim._received("CancelSupervisionInstruction",
                                     instruction_no=instruction_no, account_no=account_no,
                                     reason=reason)

            @rpc(Unicode, Unicode, SoapDecimal(18, 2), Unicode, Unicode, Unicode, _returns=Ack)
            def TransferInstruction(ctx, instruction_no, account_no, amount, payee_account,  # noqa: N802, N805
                                    payee_name, approval_no):
                return sim._received("TransferInstruction", instruction_no=instruction_no,
                                     account_no=account_no, amount=amount,
                                     payee_account=payee_account, payee_name=payee_name,
                                     approval_no=approval_no)

            @rpc(Unicode, Unicode, Unicode, Unicode, Unicode, Unicode, _returns=Ack)
            def AccountSetupInstruction(ctx, instruction_no, developer_name, developer_uscc,  # noqa: N802, N805
                                        project_name, permit_no, branch_name):
                return sim._received("AccountSetupInstruction", instruction_no=instruction_no,
                                     developer_name=developer_name,
                                     developer_uscc=developer_uscc, project_name=project_name,
                                     permit_no=permit_no, branch_name=branch_name)

        return Application([BankFront], tns=NS, name="SimBankFront",
                           in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())

    def _guard(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        """Record (and, if asked, require) the WS-Security UsernameToken of each call."""
        if environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        user = password = None
        try:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            root = etree.fromstring(body, parser)
            user = root.findtext(f".//{{{WSSE_NS}}}Username")
            password = root.findtext(f".//{{{WSSE_NS}}}Password")
        except etree.XMLSyntaxError:
            pass
        if user:
            self.state.wsse_users.append(user)
        if self.require_wsse and (user != self.require_wsse or password != self.wsse_password):
            fault = (b'<?xml version="1.0"?><soap:Envelope xmlns:soap='
                     b'"http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault>'
                     b"<faultcode>soap:Client</faultcode><faultstring>WS-Security "
                     b"UsernameToken required</faultstring></soap:Fault></soap:Body>"
                     b"</soap:Envelope>")
            start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
            return [fault]
        environ["wsgi.input"] = io.BytesIO(body)
        return self.wsgi(environ, start_response)

    def _received(self, operation: str, **fields: Any) -> Ack:
        self.state.instructions.append({"operation": operation, **fields})
        if self.answer_results:
            handler = getattr(self, f"_answer_{operation}")
            self._tasks.put(lambda: handler(**fields))
        return Ack(result_code="0000", result_msg="received")

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                if task is None:
                    return
                task()
            except Exception as exc:  # keep the bank running; tests read errors
                log.exception("sim bank task failed")
                self.state.errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                self._tasks.task_done()

    # ------------------------------------------------------------------ calling the hub

    def hub(self) -> Any:
        import zeep

        if self._client is None:
            settings = zeep.Settings(strict=True, forbid_dtd=True, forbid_entities=True,
                                     forbid_external=True)
            self._client = zeep.Client(f"{self.hub_url}/soap/fund?wsdl", settings=settings)
        return self._client.service

    def token(self) -> str:
        if self._token is None or time.monotonic() > self._token_until:
            answer = self.hub().Authenticate(bank_code=self.bank_code, username=self.username,
                                             password=self.password)
            if answer.result_code != "0000":
                raise RuntimeError(f"Authenticate: {answer.result_code} {answer.result_msg}")
            self._token, self._token_until = answer.token, time.monotonic() + 600
        return self._token

    def call(self, operation: str, **fields: Any) -> Any:
        answer = getattr(self.hub(), operation)(token=self.token(), **fields)
        self.state.answers.append((operation, str(fields.get("serial_no")), answer.result_code))
        return answer

    def serial(self) -> str:
        return f"{self.bank_code}{int(time.time())}{next(self._serial):06d}"

    def amount(self, yuan: Decimal) -> Decimal:
        return (yuan * 100).quantize(Decimal(1)) if self.in_fen else yuan

    def _book(self, account_no: str, when: datetime, direction: str, yuan: Decimal,
              serial_no: str) -> None:
        with self._lock:
            self.state.book.setdefault(account_no, []).append(
                Movement(when.astimezone(TZ).date(), direction, int(yuan * 100), serial_no))

    def open_account(self, account_no: str) -> None:
        with self._lock:
            self.state.book.setdefault(account_no, [])

    def deposit(self, account_no: str, yuan: Decimal, when: datetime | None = None,
                house_code: str | None = None, notify: bool = True,
                serial_no: str | None = None, **extra: Any) -> Any:
        when = when or datetime.now(TZ)
        serial_no = serial_no or self.serial()
        self._book(account_no, when, "in", yuan, serial_no)
        if not notify:
            return None
        return self.call("DepositNotice", serial_no=serial_no, account_no=account_no,
                         amount=self.amount(yuan), occurred_at=when, house_code=house_code,
                         payer_name=extra.get("payer_name", "张三"),
                         payer_account=extra.get("payer_account", "6222020000000001"),
                         pay_method=extra.get("pay_method", "01"),
                         buyer_name=extra.get("buyer_name", "张三"), remark=extra.get("remark"))

    def balance_fen(self, account_no: str) -> int:
        return sum((m.fen if m.direction == "in" else -m.fen)
                   for m in self.state.book.get(account_no, []))

    def available_fen(self, account_no: str) -> int:
        """The balance less what is frozen: what may still be paid out."""
        return self.balance_fen(account_no) - self.state.frozen.get(account_no, 0)

    def _check_cover(self, account_no: str, yuan: Decimal, overdraw: bool,
                     what: str, available: int | None = None) -> None:
        have = self.available_fen(account_no) if available is None else available
        if not overdraw and int(yuan * 100) > have:
            raise Overdrawn(f"{what} {yuan} 元超过账户 {account_no} 可用余额 "
                            f"{Decimal(have) / 100} 元")

    def withdraw(self, account_no: str, yuan: Decimal, when: datetime | None = None,
                 instruction_no: str | None = None, notify: bool = True,
                 overdraw: bool = False) -> Any:
        self._check_cover(account_no, yuan, overdraw, "支出")
        when = when or datetime.now(TZ)
        serial_no = self.serial()
        self._book(account_no, when, "out", yuan, serial_no)
        if not notify:
            return None
        return self.call("WithdrawalNotice", serial_no=serial_no, account_no=account_no,
                         amount=self.amount(yuan), occurred_at=when, payee_name="达州某建筑公司",
                         payee_account="5100000000000009", instruction_no=instruction_no)

    def abnormal(self, operation: str, account_no: str, yuan: Decimal,
                 when: datetime | None = None, overdraw: bool = False) -> Any:
        """A freeze (of at most the available balance), an unfreeze (of at most what is
        frozen) or a judicial deduction (of at most the balance), unless ``overdraw``."""
        when = when or datetime.now(TZ)
        serial_no = self.serial()
        fen = int(yuan * 100)
        with self._lock:
            if operation == "AccountFrozenNotice":
                self._check_cover(account_no, yuan, overdraw, "冻结")
                self.state.frozen[account_no] = self.state.frozen.get(account_no, 0) + fen
            elif operation == "AccountUnfrozenNotice":
                self._check_cover(account_no, yuan, overdraw, "解冻",
                                  available=self.state.frozen.get(account_no, 0))
                self.state.frozen[account_no] = max(
                    0, self.state.frozen.get(account_no, 0) - fen)
            elif operation == "JudicialDeductionNotice":
                self._check_cover(account_no, yuan, overdraw, "司法扣划",
                                  available=self.balance_fen(account_no))
                frozen = self.state.frozen.get(account_no, 0)  # frozen money goes first
                self.state.frozen[account_no] = max(0, frozen - fen)
        if operation == "JudicialDeductionNotice":
            self._book(account_no, when, "out", yuan, serial_no)
        return self.call(operation, serial_no=serial_no, account_no=account_no,
                         amount=self.amount(yuan), authority="达州市通川区人民法院",
                         document_no="(2026)川1702执123号", occurred_at=when)

    def figures(self, account_no: str, day: date) -> dict[str, Decimal]:
        moves = self.state.book.get(account_no, [])
        opening = sum((m.fen if m.direction == "in" else -m.fen) for m in moves if m.day < day)
        day_in = sum(m.fen for m in moves if m.day == day and m.direction == "in")
        day_out = sum(m.fen for m in moves if m.day == day and m.direction == "out")
        closing = opening + day_in - day_out
        return {k: self.amount(Decimal(v) / 100) for k, v in (
            ("opening_balance", opening), ("total_in", day_in), ("total_out", day_out),
            ("closing_balance", closing))}

    # ------------------------------------------------------------------ results

    def _answer_ReconciliationInstruction(self, instruction_no: str, account_no: str,  # noqa: N802
                                          date: date) -> None:
        self.call("ReconciliationResult", serial_no=self.serial(),
                  instruction_no=instruction_no, account_no=account_no, date=date,
                  **self.figures(account_no, date))

    def _answer_AccountSetupInstruction(self, instruction_no: str, **fields: Any) -> None:  # noqa: N802
        account_no = f"{self.bank_code}-{next(self._accounts):010d}"
        self.open_account(account_no)
        self.call("AccountSetupResult", serial_no=self.serial(), instruction_no=instruction_no,
                  account_no=account_no, account_name=fields.get("developer_name"),
                  branch_name=fields.get("branch_name"), result="00", message="opened")

    def _answer_CancelSupervisionInstruction(self, instruction_no: str, account_no: str,  # noqa: N802
                                             reason: str | None) -> None:
        self.call("CancelSupervisionResult", serial_no=self.serial(),
                  instruction_no=instruction_no, account_no=account_no, result="00",
                  message="supervision cancelled")

    def _answer_TransferInstruction(self, instruction_no: str, account_no: str,  # noqa: N802
                                    amount: Decimal, **fields: Any) -> None:
        yuan = amount / 100 if self.in_fen else amount
        when = datetime.now(TZ)
        try:
            self.withdraw(account_no, yuan, when, instruction_no=instruction_no)
        except Overdrawn as exc:  # a real bank refuses the transfer
            self.call("TransferResult", serial_no=self.serial(), instruction_no=instruction_no,
                      account_no=account_no, amount=self.amount(yuan), result="01",
                      message=str(exc)[:100], occurred_at=when)
            return
        self.call("TransferResult", serial_no=self.serial(), instruction_no=instruction_no,
                  account_no=account_no, amount=self.amount(yuan), result="00",
                  message="transferred", occurred_at=when)

    # ------------------------------------------------------------------ on its own

    def tick(self, rng: random.Random) -> None:
        """One round of spontaneous activity on every account it knows; amounts stay
        within the balance (a withdrawal or freeze of at most what is available)."""
        for account_no in list(self.state.book):
            roll = rng.random()
            available = self.available_fen(account_no)
            frozen = self.state.frozen.get(account_no, 0)
            if roll >= 0.97 and frozen:
                self.abnormal("AccountUnfrozenNotice", account_no, Decimal(frozen) / 100)
            elif roll < 0.6 or roll >= 0.97 or available < 100:
                yuan = Decimal(rng.randrange(10_000, 5_000_000)) / 100
                self.deposit(account_no, yuan, house_code=f"H{rng.randrange(1, 200):04d}"
                             if rng.random() < 0.9 else None)
            elif roll < 0.9:
                self.withdraw(account_no, Decimal(rng.randrange(1, available // 2 + 2)) / 100)
            else:
                self.abnormal("AccountFrozenNotice", account_no,
                              Decimal(rng.randrange(1, available // 4 + 2)) / 100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hub", default="http://127.0.0.1:8080")
    p.add_argument("--port", type=int, default=8093)
    p.add_argument("--bank-code", default="ICBC")
    p.add_argument("--username", default="icbc-front")
    p.add_argument("--password-env", default="SIM_BANK_PASSWORD",
                   help="environment variable holding the hub login's password")
    p.add_argument("--account", action="append", default=[], help="an account it keeps")
    p.add_argument("--fen", action="store_true", help="count amounts in fen")
    p.add_argument("--auto", type=float, default=0.0,
                   help="seconds between rounds of spontaneous notices (0: none)")
    args = p.parse_args()
    logging.basicConfig(level="INFO")
    password = os.environ.get(args.password_env)
    if not password:
        raise SystemExit(f"set {args.password_env} to the password of the hub login")
    sim = SimBank(args.hub, args.bank_code, args.username, password, amounts_in_fen=args.fen,
                  port=args.port).start()
    for account in args.account:
        sim.open_account(account)
    print(f"simulated bank {args.bank_code} on {sim.url} (WSDL {sim.url}?wsdl)", flush=True)
    rng = random.Random()
    try:
        while True:
            time.sleep(args.auto or 3600)
            if args.auto:
                try:
                    sim.tick(rng)
                except Exception:
                    log.exception("tick failed")
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
