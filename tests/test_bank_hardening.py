"""Hostile banks and POS terminals through the real server (waitress), on every store:
another bank's accounts (1004), a serial reused with other content (2005, also under
concurrency), numbers and date-times bounded before conversion (2002, never 5000), the
Authenticate lock-out, and fuzzed fields."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from adapters.bank_soap import fund_desk
from adapters.fund.auth import add_login
from adapters.fund.instructions import issue
from admin.settings import set_setting
from mapping.fund import fen_to_yuan
from store.fund_models import (
    FundConflict,
    FundEvent,
    FundHouse,
    FundInstruction,
    FundLogin,
    LedgerEntry,
    SupervisedAccount,
)
from store.models import Alert, CallLogEntry
from tests.test_admin_fixtures import ALL_FUNCTIONS, COUNTY_FUNCTIONS, Client, add_operator
from tests.test_bank_fixtures import (
    ACC_MANUAL,
    ACC_SMART,
    BANK,
    HOUSE,
    PASSWORD,
    FundEnv,
    build_env,
)
from tests.test_bank_soap import answer_of, envelope, post

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
OTHER = "CCB"
ACC_OTHER = "6227000000000001"   # CCB's account, 通川区
HOUSE_OTHER = "511702-002-0101"  # on sale under CCB's account


def count(env: FundEnv, model: Any, *where: Any) -> int:
    with env.hub.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def alerts(env: FundEnv, kind: str) -> list[Alert]:
    with env.hub.db.session() as s:
        return list(s.scalars(select(Alert).where(Alert.kind == kind).order_by(Alert.id)))


def codes_logged(env: FundEnv, code: str) -> list[str]:
    with env.hub.db.session() as s:
        return list(s.scalars(select(CallLogEntry.interface).where(CallLogEntry.code == code)
                              .order_by(CallLogEntry.id)))


@pytest.fixture
def two_banks(make_hub: Any, store_url: str) -> Iterator[FundEnv]:
    """ICBC (the usual fixture's bank) and CCB, each with a login, a POS login, an
    account and a house on sale in 通川区."""
    env, stoppable = build_env(make_hub, store_url, partners={
        "bank_ccb_dazhou": {"base_url": "http://127.0.0.1:9", "bank_code": OTHER,
                            "timeout": 5}})
    with env.hub.transaction() as s:
        add_login(s, OTHER, "ccb-front", PASSWORD)
        add_login(s, OTHER, "ccb-pos", PASSWORD, kind="pos")
        s.add(SupervisedAccount(account_no=ACC_OTHER, bank_code=OTHER, division="511702",
                                developer_name="建行客户开发商", project_name="建设花园"))
        s.flush()
        s.add(FundHouse(house_code=HOUSE_OTHER, account_no=ACC_OTHER))
    yield env
    for thing in stoppable:
        thing.stop()


# ------------------------------------------------------------------ 1004: another bank


def test_a_bank_acts_only_on_its_own_accounts_houses_and_instructions(two_banks):
    env = two_banks
    svc = env.client()
    ccb = env.token("ccb-front", OTHER)
    ccb_pos = env.token("ccb-pos", OTHER)
    settings = fund_desk(env.hub).settings
    with env.hub.transaction() as s:
        icbc = {t: issue(env.hub, s, settings, t, BANK, f, division="511702").instruction_no
                for t, f in {
                    "01": {"account_no": ACC_SMART, "date": WHEN.date()},
                    "02": {"account_no": ACC_SMART, "reason": "竣工"},
                    "03": {"account_no": ACC_SMART, "amount": "50.00", "payee_account": "1",
                           "payee_name": "建筑公司"},
                    "04": {"developer_name": "甲", "project_name": "乙", "permit_no": "P1",
                           "branch_name": "达州分行"}}.items()}
        own_setup = issue(env.hub, s, settings, "04", OTHER, {
            "developer_name": "丙", "project_name": "丁", "permit_no": "P2",
            "branch_name": "建行达州分行"}, division="511702").instruction_no
        own_cancel = issue(env.hub, s, settings, "02", OTHER, {
            "account_no": ACC_OTHER, "reason": "竣工"}, division="511702").instruction_no
    money = {"amount": Decimal("10.00"), "authority": "法院", "document_no": "X",
             "occurred_at": WHEN}
    answers = {
        "DepositNotice": svc.DepositNotice(
            token=ccb, serial_no="F-1", account_no=ACC_SMART, amount=Decimal("10.00"),
            occurred_at=WHEN, payer_name="张三", payer_account="1", pay_method="01",
            house_code=HOUSE, buyer_name="张三", remark=None),
        "WithdrawalNotice": svc.WithdrawalNotice(
            token=ccb, serial_no="F-2", account_no=ACC_SMART, amount=Decimal("10.00"),
            occurred_at=WHEN, payee_name="x", payee_account="1", instruction_no=None),
        "AccountFrozenNotice": svc.AccountFrozenNotice(
            token=ccb, serial_no="F-3", account_no=ACC_SMART, **money),
        "AccountUnfrozenNotice": svc.AccountUnfrozenNotice(
            token=ccb, serial_no="F-4", account_no=ACC_SMART, **money),
        "JudicialDeductionNotice": svc.JudicialDeductionNotice(
            token=ccb, serial_no="F-5", account_no=ACC_SMART, **money),
        "ReconciliationResult": svc.ReconciliationResult(
            token=ccb, serial_no="F-6", instruction_no=icbc["01"], account_no=ACC_SMART,
            date=WHEN.date(), opening_balance=Decimal("0"), total_in=Decimal("0"),
            total_out=Decimal("0"), closing_balance=Decimal("0")),
        "CancelSupervisionResult": svc.CancelSupervisionResult(
            token=ccb, serial_no="F-7", instruction_no=icbc["02"], account_no=ACC_SMART,
            result="00", message="ok"),
        "CancelSupervisionResult own instruction": svc.CancelSupervisionResult(
            token=ccb, serial_no="F-8", instruction_no=own_cancel, account_no=ACC_SMART,
            result="00", message="ok"),
        "TransferResult": svc.TransferResult(
            token=ccb, serial_no="F-9", instruction_no=icbc["03"], account_no=ACC_SMART,
            amount=Decimal("50.00"), result="00", message="ok", occurred_at=WHEN),
        "AccountSetupResult": svc.AccountSetupResult(
            token=ccb, serial_no="F-10", instruction_no=icbc["04"], account_no="6227000000000099",
            account_name="甲", branch_name="x", result="00", message="ok"),
        "AccountSetupResult taking over": svc.AccountSetupResult(
            token=ccb, serial_no="F-11", instruction_no=own_setup, account_no=ACC_SMART,
            account_name="冒名", branch_name="x", result="00", message="ok"),
        "PosPaymentVerify": svc.PosPaymentVerify(
            token=ccb_pos, terminal_id="T", house_code=HOUSE, buyer_name="李四",
            amount=Decimal("20.00")),
        "PosPayment": svc.PosPayment(
            token=ccb_pos, serial_no="F-12", terminal_id="T", house_code=HOUSE,
            buyer_name="李四", amount=Decimal("20.00"), card_no_masked="6222****0001",
            occurred_at=WHEN),
    }
    assert {k: a.result_code for k, a in answers.items()} == dict.fromkeys(answers, "1004")
    assert answers["PosPaymentVerify"].account_no is None  # nothing of ICBC's is told
    # nothing booked, answered, registered or changed
    assert env.ledger() == [] and env.events() == []
    with env.hub.db.session() as s:
        assert set(s.scalars(select(FundInstruction.status))) == {"queued"}
        acc = s.scalars(select(SupervisedAccount).where(
            SupervisedAccount.account_no == ACC_SMART)).one()
        assert (acc.status, acc.developer_name, acc.bank_code) == (
            "active", "达州某房地产开发有限公司", BANK)
        assert not s.scalars(select(SupervisedAccount).where(
            SupervisedAccount.account_no == "6227000000000099")).all()
    # every attempt is in the call log with 1004, and each raised an alert
    logged = codes_logged(env, "1004")
    assert sorted(logged) == sorted(f"soap.fund.{k.split()[0]}" for k in answers)
    raised = alerts(env, "fund_other_bank")
    assert len(raised) == len(answers)
    assert {a.severity for a in raised} == {"critical"} and {a.division for a in raised} == {
        "511702"}
    # in words an operator reads: the banks by name, what to do
    assert all(a.title.startswith("中国建设银行的") and "涉及中国工商银行的" in a.title
               and a.title.endswith("已拒绝；请与该银行核实") for a in raised), [
        a.title for a in raised]
    # each bank still acts on its own
    assert svc.DepositNotice(
        token=ccb, serial_no="OWN-1", account_no=ACC_OTHER, amount=Decimal("1.00"),
        occurred_at=WHEN, payer_name=None, payer_account=None, pay_method=None,
        house_code=HOUSE_OTHER, buyer_name=None, remark=None).result_code == "0000"
    assert svc.PosPayment(
        token=ccb_pos, serial_no="OWN-2", terminal_id="T", house_code=HOUSE_OTHER,
        buyer_name="李四", amount=Decimal("2.00"), card_no_masked=None,
        occurred_at=WHEN).result_code == "0000"
    icbc_tok = env.token()
    assert svc.PosPaymentVerify(token=env.token("pos-terminal-1"), terminal_id="T",
                                house_code=HOUSE, buyer_name="李四",
                                amount=Decimal("1.00")).result_code == "0000"
    assert svc.CancelSupervisionResult(
        token=icbc_tok, serial_no="OWN-3", instruction_no=icbc["02"], account_no=ACC_SMART,
        result="00", message="ok").result_code == "0000"
    assert [(r.account_no, r.amount_fen) for r in env.ledger()] == [
        (ACC_OTHER, 100), (ACC_OTHER, 200)]


# ------------------------------------------------------------------ 2005: serial reused


def _deposit(svc: Any, token: str, serial: str, account: str = ACC_SMART,
             amount: str = "100.00") -> Any:
    return svc.DepositNotice(
        token=token, serial_no=serial, account_no=account, amount=Decimal(amount),
        occurred_at=WHEN, payer_name="张三", payer_account="6222020000000001",
        pay_method="01", house_code=HOUSE, buyer_name="张三", remark=None)


def test_a_serial_reused_with_other_content_is_2005_kept_for_an_operator(fund):
    svc = fund.client()
    tok = fund.token()
    first = _deposit(svc, tok, "S-1")
    assert first.result_code == "0000"
    again = _deposit(svc, tok, "S-1")
    assert (again.result_code, again.result_msg) == ("0000", first.result_msg)
    other_amount = _deposit(svc, tok, "S-1", amount="999.00")
    assert other_amount.result_code == "2005" and "S-1" in other_amount.result_msg
    assert _deposit(svc, tok, "S-1", account=ACC_MANUAL).result_code == "2005"
    assert svc.WithdrawalNotice(
        token=tok, serial_no="S-1", account_no=ACC_SMART, amount=Decimal("100.00"),
        occurred_at=WHEN, payee_name="x", payee_account="1",
        instruction_no=None).result_code == "2005"
    assert svc.AccountFrozenNotice(
        token=tok, serial_no="S-1", account_no=ACC_SMART, amount=Decimal("100.00"),
        authority="法院", document_no="X", occurred_at=WHEN).result_code == "2005"
    # the same refused content again: still 2005, kept and alerted once
    assert _deposit(svc, tok, "S-1", amount="999.00").result_code == "2005"
    # a POS payment reused with another amount, and an exact repeat
    pos = fund.token("pos-terminal-1")

    def pay(amount: str) -> str:
        return svc.PosPayment(token=pos, serial_no="P-1", terminal_id="T", house_code=HOUSE,
                              buyer_name="李四", amount=Decimal(amount),
                              card_no_masked=None, occurred_at=WHEN).result_code

    assert (pay("20.00"), pay("20.00"), pay("21.00")) == ("0000", "0000", "2005")
    # one booking per serial: the first content
    assert [(r.serial_no, r.kind, r.amount_fen) for r in fund.ledger()] == [
        ("S-1", "deposit", 10000), ("P-1", "pos_payment", 2000)]
    assert len(fund.events()) == 2
    with fund.hub.db.session() as s:
        kept = s.scalars(select(FundConflict).order_by(FundConflict.id)).all()
        assert [(c.serial_no, c.operation, c.account_no, c.amount_fen) for c in kept] == [
            ("S-1", "DepositNotice", ACC_SMART, 99900),
            ("S-1", "DepositNotice", ACC_MANUAL, 10000),
            ("S-1", "WithdrawalNotice", ACC_SMART, 10000),
            ("S-1", "AccountFrozenNotice", ACC_SMART, 10000),
            ("P-1", "PosPayment", None, 2100)]
        payload = fund.hub.cipher.open_json(kept[0].payload_enc)
        assert payload["amount"] == "999.00" and payload["payer_name"] == "张三"
        assert "张三".encode() not in kept[0].payload_enc
        assert {c.division for c in kept} == {"511702"}
    raised = alerts(fund, "fund_serial_reused")
    assert len(raised) == 5 and all("S-1" in a.title or "P-1" in a.title for a in raised)
    assert len(codes_logged(fund, "2005")) == 6
    # operators see them with the held events (通川区 and city-wide)
    from tests.test_admin_fixtures import serve_app

    add_operator(fund.hub, "root", ALL_FUNCTIONS)
    add_operator(fund.hub, "op702", COUNTY_FUNCTIONS, ("511702",))
    add_operator(fund.hub, "op725", COUNTY_FUNCTIONS, ("511725",))
    url, stop = serve_app(fund.hub)
    try:
        for user, sees in (("root", True), ("op702", True), ("op725", False)):
            web = Client(url)
            web.login(user)
            held = web.get("/admin/fund").text.split('id="fund-held"')[1].split("</table>")[0]
            assert (held.count("流水号重复但内容不同") == 5) is sees, user
            assert ("S-1" in held and "P-1" in held) is sees, user
        web = Client(url)
        web.login("op702")
        page = web.get(f"/admin/fund/{ACC_SMART}").text
        assert page.count("流水号重复但内容不同") == 3  # those naming this account
    finally:
        stop()


def test_concurrent_notices_with_one_serial_and_different_content_book_exactly_one(fund):
    tok = fund.token()
    rounds, per_content = 3, 5

    def body(serial: str, amount: str) -> str:
        return envelope("DepositNotice", (
            f"<f:token>{tok}</f:token><f:serial_no>{serial}</f:serial_no>"
            f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>{amount}</f:amount>"
            "<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at>"))

    for n in range(rounds):
        serial = f"RACE-{n}"
        bodies = [(a, body(serial, a)) for a in ("10.00", "20.00") for _ in range(per_content)]
        barrier = threading.Barrier(len(bodies))

        def send(item: tuple[str, str], barrier: threading.Barrier = barrier) -> tuple[str, str]:
            barrier.wait(timeout=30)
            return item[0], answer_of(post(fund, item[1]))[0]

        with ThreadPoolExecutor(len(bodies)) as pool:
            results = list(pool.map(send, bodies))
        booked = [r for r in fund.ledger() if r.serial_no == serial]
        assert len(booked) == 1, results
        winner = str(fen_to_yuan(booked[0].amount_fen))
        assert sorted(c for a, c in results if a == winner) == ["0000"] * per_content, results
        assert sorted(c for a, c in results if a != winner) == ["2005"] * per_content, results
        assert count(fund, FundConflict, FundConflict.serial_no == serial) == 1
        assert count(fund, FundEvent, FundEvent.serial_no == serial) == 1
    assert len(alerts(fund, "fund_serial_reused")) == rounds
    assert codes_logged(fund, "5000") == []


def test_two_banks_setting_up_one_new_account_number_at_once_one_owns_it(two_banks):
    """Each bank answers its own setup instruction (04) naming the same new account number
    at the same moment: the account is the first bank's, the other gets 1004 (never 0000
    on an account it does not own, never 5000), on every store."""
    env = two_banks
    tokens = {BANK: env.token(), OTHER: env.token("ccb-front", OTHER)}
    settings = fund_desk(env.hub).settings
    rounds = 8
    for n in range(rounds):
        number = f"62270000099{n:05d}"
        with env.hub.transaction() as s:
            instructions = {bank: issue(env.hub, s, settings, "04", bank, {
                "developer_name": f"开发商{bank}", "project_name": "花园", "permit_no": f"P{n}",
                "branch_name": "达州分行"}, division="511702").instruction_no
                for bank in tokens}
        barrier = threading.Barrier(len(tokens))

        def send(bank: str, number: str = number, instructions: dict[str, str] = instructions,
                 barrier: threading.Barrier = barrier) -> tuple[str, str]:
            body = envelope("AccountSetupResult", (
                f"<f:token>{tokens[bank]}</f:token><f:serial_no>SETUP-{number}-{bank}</f:serial_no>"
                f"<f:instruction_no>{instructions[bank]}</f:instruction_no>"
                f"<f:account_no>{number}</f:account_no><f:account_name>{bank}户</f:account_name>"
                "<f:branch_name>x</f:branch_name><f:result>00</f:result>"
                "<f:message>ok</f:message>"))
            barrier.wait(timeout=30)
            return bank, answer_of(post(env, body))[0]

        with ThreadPoolExecutor(len(tokens)) as pool:
            results = dict(pool.map(send, tokens))
        with env.hub.db.session() as s:
            account = s.scalars(select(SupervisedAccount).where(
                SupervisedAccount.account_no == number)).one()
            owner, name, by = account.bank_code, account.account_name, account.updated_by
        loser = OTHER if owner == BANK else BANK
        assert results == {owner: "0000", loser: "1004"}, (n, results)
        assert (name, by) == (f"{owner}户", f"bank:{owner}"), (n, results)
        with env.hub.db.session() as s:
            states = dict(s.execute(select(FundInstruction.bank_code, FundInstruction.status)
                                    .where(FundInstruction.instruction_no.in_(
                                        instructions.values()))).all())
        assert states == {owner: "answered", loser: "queued"}, (n, states)
    assert len(alerts(env, "fund_other_bank")) >= 1
    assert codes_logged(env, "5000") == []


# ------------------------------------------------------------------ 2002: bounded values

TOK = "@TOKEN@"
WHEN_X = "2026-11-20T10:00:00+08:00"
#: A valid body per operation (field → text); the instruction numbers need not exist,
#: the values are checked before the instruction is looked up.
VALID: dict[str, dict[str, str]] = {
    "DepositNotice": {"serial_no": "V", "account_no": ACC_SMART, "amount": "1.00",
                      "occurred_at": WHEN_X},
    "WithdrawalNotice": {"serial_no": "V", "account_no": ACC_SMART, "amount": "1.00",
                         "occurred_at": WHEN_X},
    "ReconciliationResult": {"serial_no": "V", "instruction_no": "I", "account_no": ACC_SMART,
                             "date": "2026-11-20", "opening_balance": "0", "total_in": "0",
                             "total_out": "0", "closing_balance": "0"},
    "TransferResult": {"serial_no": "V", "instruction_no": "I", "account_no": ACC_SMART,
                       "amount": "1.00", "result": "00", "occurred_at": WHEN_X},
    "PosPaymentVerify": {"terminal_id": "T", "house_code": HOUSE, "amount": "1.00"},
    "PosPayment": {"serial_no": "V", "terminal_id": "T", "house_code": HOUSE, "amount": "1.00",
                   "occurred_at": WHEN_X},
    "AccountFrozenNotice": {"serial_no": "V", "account_no": ACC_SMART, "amount": "1.00",
                            "occurred_at": WHEN_X},
    "AccountUnfrozenNotice": {"serial_no": "V", "account_no": ACC_SMART, "amount": "1.00",
                              "occurred_at": WHEN_X},
    "JudicialDeductionNotice": {"serial_no": "V", "account_no": ACC_SMART, "amount": "1.00",
                                "occurred_at": WHEN_X},
}
FIELD_ORDER = ("serial_no", "instruction_no", "terminal_id", "account_no", "house_code", "date",
               "amount", "opening_balance", "total_in", "total_out", "closing_balance",
               "result", "occurred_at")
#: Every XML-Schema-valid date-time that Python cannot hold (or refuses).
BAD_DATETIMES = ("2026-11-20T24:00:00+08:00", "0001-01-01T00:00:00+08:00",
                 "10000-01-01T00:00:00+08:00", "-0001-01-01T00:00:00Z",
                 "9999-12-31T23:59:59-08:00", "9999-12-31T20:00:00Z",
                 "2026-11-20T10:00:00-03:30",  # spyne would read it as -02:30
                 "2026-11-20T10:00:00." + "9" * 5000 + "+08:00")
BAD_DATES = ("10000-01-01", "-0001-01-01", "0000-01-01", "2026-02-30")
#: (text, refused where) for yuan banks: over the bound, three places, sign, zero.
BAD_AMOUNTS = ("100000000000.00", "99999999999999999", "1.005", "-1.00", "0.00", "1" * 400000)
BAD_FIGURES = ("100000000000.00", "-100000000000.00", "1.005", "1" * 400000)


def _body(op: str, token: str, fields: dict[str, str]) -> str:
    ordered = sorted(fields, key=FIELD_ORDER.index)
    inner = "".join(f"<f:{k}>{fields[k]}</f:{k}>" for k in ordered)
    return envelope(op, f"<f:token>{token}</f:token>{inner}")


def _hostile_cases() -> list[tuple[str, str, str]]:
    cases: list[tuple[str, str, str]] = []
    for op, fields in VALID.items():
        for name in fields:
            if name == "occurred_at":
                cases += [(op, name, v) for v in BAD_DATETIMES]
            elif name == "date":
                cases += [(op, name, v) for v in BAD_DATES]
            elif name == "amount":
                cases += [(op, name, v) for v in BAD_AMOUNTS]
            elif name in ("opening_balance", "total_in", "total_out", "closing_balance"):
                cases += [(op, name, v) for v in BAD_FIGURES]
    return cases


def test_every_number_and_date_time_is_bounded_before_conversion(fund):
    bank, pos = fund.token(), fund.token("pos-terminal-1")
    seen: dict[str, str] = {}
    for op, name, value in _hostile_cases():
        token = pos if op.startswith("Pos") else bank
        resp = post(fund, _body(op, token, {**VALID[op], name: value}))
        code, msg = answer_of(resp)
        seen[f"{op}.{name}={value[:30]}"] = f"{resp.status} {code} {msg}"[:160]
    wrong = {k: v for k, v in seen.items() if not v.startswith("200 2002 ")}
    assert wrong == {}
    assert len(seen) > 80
    assert fund.ledger() == [] and fund.events() == []
    assert codes_logged(fund, "5000") == []
    # the edges that are fine: 7 fractional digits (.NET), whitespace around an amount,
    # the largest amount, year 0001 that stays in range
    for n, (name, value) in enumerate((("occurred_at", "2026-11-20T10:00:00.1234567+08:00"),
                                       ("amount", " 99999999999.99 "),
                                       ("occurred_at", "0001-01-01T12:00:00+08:00"))):
        fields = {**VALID["DepositNotice"], "serial_no": f"OK-{n}", name: value}
        got = answer_of(post(fund, _body("DepositNotice", bank, fields)))
        assert got[0] == "0000", (value, got)
    assert [r.amount_fen for r in fund.ledger()][1] == 9999999999999


def test_a_bank_counting_in_fen_is_bounded_too(make_hub, store_url):
    env, stop = build_env(make_hub, store_url, partner={"amounts_in_fen": True})
    try:
        tok = env.token()
        for n, value in enumerate(("10000000000000", "1.50", "-100", "0")):
            fields = {**VALID["DepositNotice"], "serial_no": f"FEN-{n}", "amount": value}
            assert answer_of(post(env, _body("DepositNotice", tok, fields)))[0] == "2002", value
        fields = {**VALID["DepositNotice"], "serial_no": "FEN-OK", "amount": "9999999999999"}
        assert answer_of(post(env, _body("DepositNotice", tok, fields)))[0] == "0000"
        assert [r.amount_fen for r in env.ledger()] == [9999999999999]
    finally:
        for thing in stop:
            thing.stop()


# ------------------------------------------------------------------ Authenticate lock-out


def _authenticate_at_once(fund: FundEnv, svc: Any, burst: int, password: str) -> list[Any]:
    """``burst`` Authenticate calls for icbc-front released together (threshold 3)."""
    with fund.hub.transaction() as s:
        set_setting(s, "lockout_threshold", "3", "test")
    barrier = threading.Barrier(burst)

    def call(_: int) -> Any:
        barrier.wait(timeout=30)
        return svc.Authenticate(bank_code=BANK, username="icbc-front", password=password)

    with ThreadPoolExecutor(burst) as pool:
        return list(pool.map(call, range(burst)))


def test_a_burst_of_authenticate_guesses_is_checked_at_most_threshold_times(fund):
    """Twelve wrong passwords for one login at once: each check is counted before it
    runs, so at most the threshold are checked; the rest are refused as locked."""
    svc = fund.client()
    messages = [a.result_msg for a in _authenticate_at_once(fund, svc, 12, "wrong-password-1")]
    checked = [m for m in messages if m.startswith("wrong")]
    assert 1 <= len(checked) <= 3, messages
    assert all("locked" in m for m in messages if not m.startswith("wrong")), messages
    assert len(alerts(fund, "fund_login_locked")) == 1
    assert svc.Authenticate(bank_code=BANK, username="icbc-front",
                            password=PASSWORD).result_code == "1001"


def test_a_burst_of_right_passwords_all_get_tokens_and_a_stale_count_ends(fund):
    """A bank re-authenticating from eight threads at once with the right password: the
    checks beyond the threshold wait for those in flight, so every one gets a token. A
    full count left behind (a process killed between counting and settling) locks the
    login for the lock-out period instead of for ever."""
    svc = fund.client()
    codes = [a.result_code for a in _authenticate_at_once(fund, svc, 8, PASSWORD)]
    assert codes == ["0000"] * 8
    with fund.hub.transaction() as s:  # three counted checks that were never settled
        s.execute(update(FundLogin).where(FundLogin.username == "icbc-front")
                  .values(failed_logins=3))
    stale = svc.Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD)
    assert stale.result_code == "1001" and "locked" in stale.result_msg
    with fund.hub.db.session() as s:
        row = s.scalars(select(FundLogin).where(FundLogin.username == "icbc-front")).one()
        minutes = (row.locked_until - datetime.utcnow()) / timedelta(minutes=1)
        assert 13 < minutes <= 15 and row.failed_logins == 0
    assert len(alerts(fund, "fund_login_locked")) == 1


def test_authenticate_locks_out_as_the_admin_sign_in_does(fund):
    svc = fund.client()

    def login(password: str, username: str = "icbc-front") -> Any:
        return svc.Authenticate(bank_code=BANK, username=username, password=password)

    with fund.hub.transaction() as s:
        set_setting(s, "lockout_threshold", "3", "test")
    # parallel failures each count (one guarded UPDATE each): 3 at once lock the login
    with ThreadPoolExecutor(3) as pool:
        failed = list(pool.map(lambda _: login("wrong-password-1").result_code, range(3)))
    assert failed == ["1001"] * 3
    locked = login(PASSWORD)
    assert locked.result_code == "1001" and locked.token is None
    assert "locked" in locked.result_msg
    assert len(alerts(fund, "fund_login_locked")) == 1
    assert "icbc-front" not in alerts(fund, "fund_login_locked")[0].detail
    assert alerts(fund, "fund_login_locked")[0].title.startswith(
        "中国工商银行的接口登录账号连续登录失败，已被锁定；")
    assert login(PASSWORD, "pos-terminal-1").result_code == "0000"  # per login
    with fund.hub.db.session() as s:
        row = s.scalars(select(FundLogin).where(FundLogin.username == "icbc-front")).one()
        assert row.locked_until is not None and row.failed_logins == 0
        minutes = (row.locked_until - datetime.utcnow()) / timedelta(minutes=1)
        assert 13 < minutes <= 15  # lockout_minutes, the admin's default
    with fund.hub.transaction() as s:  # a new password (hub.py bank-account add) unlocks
        add_login(s, BANK, "icbc-front", PASSWORD + "-new")
    assert login(PASSWORD + "-new").result_code == "0000"
    with fund.hub.transaction() as s:
        add_login(s, BANK, "icbc-front", PASSWORD)
    for _ in range(3):
        assert login("wrong-password-1").result_code == "1001"
    assert login(PASSWORD).result_code == "1001"
    with fund.hub.transaction() as s:  # the lock expires
        s.execute(update(FundLogin).values(locked_until=datetime(2020, 1, 1)))
    assert login("wrong-password-1").result_code == "1001"
    assert login(PASSWORD).result_code == "0000"
    with fund.hub.db.session() as s:
        row = s.scalars(select(FundLogin).where(FundLogin.username == "icbc-front")).one()
        assert (row.failed_logins, row.locked_until) == (0, None)
    assert codes_logged(fund, "5000") == []


# ------------------------------------------------------------------ fuzz


def test_fuzzed_fields_never_answer_5000(make_hub, store_url):
    big = 9_900_000  # "10 MB", under libxml2's bound on one text node (10,000,000)
    env, stop = build_env(make_hub, store_url, limits={"max_soap_bytes": big + 64 * 1024})
    try:
        tok = env.token()
        base = {**VALID["DepositNotice"]}
        cases = {
            "empty serial": ({**base, "serial_no": ""}, "2002"),
            "empty account": ({**base, "account_no": ""}, "2002"),
            "empty amount": ({**base, "amount": ""}, "2002"),
            "empty occurred_at": ({**base, "occurred_at": ""}, "2002"),
            "serial of 10,000": ({**base, "serial_no": "9" * 10000}, "2002"),
            "10 MB serial": ({**base, "serial_no": "s" * big}, "2002"),
            "10 MB amount": ({**base, "amount": "1" * big}, "2002"),
            "C1 control chars kept": ({**base, "serial_no": "C\u0085\u009f\u200b"}, "0000"),
            "blank serial": ({**base, "serial_no": "   "}, "2002"),
        }
        got = {k: answer_of(post(env, _body("DepositNotice", tok, f)))[0]
               for k, (f, _) in cases.items()}
        assert got == {k: want for k, (_, want) in cases.items()}
        remark = _body("DepositNotice", tok, {**base, "serial_no": "R"}).replace(
            "</f:occurred_at>", "</f:occurred_at><f:remark>" + "r" * big + "</f:remark>")
        assert answer_of(post(env, remark))[0] == "2002"
        for raw in ("\x01", "&#x1;", "\ufffe"):  # not XML 1.0 characters: malformed
            resp = post(env, _body("DepositNotice", tok, {**base, "serial_no": f"X{raw}"}))
            assert resp.status == 500 and b"2001" in resp.data, raw
        header = envelope("DepositNotice", "".join(
            f"<f:{k}>{v}</f:{k}>" for k, v in base.items()), f"<f:AuthToken>{'t' * big}"
            "</f:AuthToken>")
        assert answer_of(post(env, header))[0] == "1001"
        auth = {"bank_code": BANK, "username": "u" * big, "password": "p"}
        resp = post(env, envelope("Authenticate", "".join(
            f"<f:{k}>{v}</f:{k}>" for k, v in auth.items())))
        assert answer_of(resp)[0] == "2002"
        for field in ("bank_code", "username", "password"):
            empty = {**auth, "username": "icbc-front", field: ""}
            resp = post(env, envelope("Authenticate", "".join(
                f"<f:{k}>{v}</f:{k}>" for k, v in empty.items())))
            assert answer_of(resp)[0] in ("2002", "1001"), field
        assert codes_logged(env, "5000") == []
        assert count(env, LedgerEntry) == 1
    finally:
        for thing in stop:
            thing.stop()


def test_a_deposit_on_another_banks_house_is_1004_and_on_another_account_3002(two_banks):
    """A bank books a deposit only on a house on sale under the account it names: a
    house of another bank's account is 1004 (nothing booked, alerted); a house of
    another of its own accounts, or one withdrawn from sale, is 3002, kept for an
    operator; a house the hub has not registered is booked as the bank says."""
    env = two_banks
    svc = env.client()
    tok = env.token()

    def deposit(serial: str, house: str | None) -> Any:
        return svc.DepositNotice(
            token=tok, serial_no=serial, account_no=ACC_SMART, amount=Decimal("10.00"),
            occurred_at=WHEN, payer_name="张三", payer_account="1", pay_method="01",
            house_code=house, buyer_name="张三", remark=None)

    other_bank = deposit("H-1", HOUSE_OTHER)
    assert (other_bank.result_code, other_bank.result_msg) == (
        "1004", "the house belongs to another bank than this login's")
    assert env.ledger() == [] and env.events() == []
    assert len(alerts(env, "fund_other_bank")) == 1
    with env.hub.transaction() as s:
        s.add(FundHouse(house_code="511702-009-0101", account_no=ACC_MANUAL))
        s.add(FundHouse(house_code="511702-009-0202", account_no=ACC_SMART,
                        status="withdrawn"))
    for serial, house in (("H-2", "511702-009-0101"), ("H-3", "511702-009-0202")):
        answer = deposit(serial, house)
        assert answer.result_code == "3002", (serial, answer.result_msg)
    assert env.ledger() == []
    with env.hub.db.session() as s:
        held = s.scalars(select(FundEvent).where(FundEvent.status == "held")
                         .order_by(FundEvent.id)).all()
        assert [(e.serial_no, e.account_no, e.amount_fen) for e in held] == [
            ("H-2", ACC_SMART, 1000), ("H-3", ACC_SMART, 1000)]
    assert len(alerts(env, "fund_held")) == 2
    # its own house on sale under the account, or a house not registered: booked
    assert deposit("H-4", HOUSE).result_code == "0000"
    assert deposit("H-5", "511702-999-0101").result_code == "0000"
    assert [(r.account_no, r.house_code) for r in env.ledger()] == [
        (ACC_SMART, HOUSE), (ACC_SMART, "511702-999-0101")]
