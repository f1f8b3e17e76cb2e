"""Hostile banks on the results of the hub's instructions and on the XML itself, through
the real server (waitress), on every store: one result per instruction (a second
serial is 2002, never 5000; concurrent results set up one account), a setup result may
not take over an existing account, a withdrawal may cite only this bank's instruction
for this account, a transfer's result carries the instruction's amount, a comment
inside a value does not cut it, and HEAD is no error."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import urllib3
from sqlalchemy import select

from adapters.bank_soap import fund_desk
from adapters.fund.instructions import issue
from store.fund_models import FundInstruction, Reconciliation, SupervisedAccount
from tests.test_bank_fixtures import ACC_SMART, BANK, FundEnv
from tests.test_bank_hardening import (  # noqa: F401  (the two_banks fixture)
    ACC_OTHER,
    OTHER,
    alerts,
    codes_logged,
    count,
    two_banks,
)
from tests.test_bank_soap import answer_of, envelope, post

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
AT = "2026-11-20T10:30:00+08:00"


def _issue(env: FundEnv, type_code: str, bank: str = BANK, **fields: Any) -> str:
    with env.hub.transaction() as s:
        return issue(env.hub, s, fund_desk(env.hub).settings, type_code, bank, fields,
                     division="511702").instruction_no


def _call(env: FundEnv, op: str, token: str, fields: str) -> tuple[str, str]:
    return answer_of(post(env, envelope(op, f"<f:token>{token}</f:token>{fields}")))


def _reconciliation(serial: str, instruction_no: str) -> str:
    return (f"<f:serial_no>{serial}</f:serial_no><f:instruction_no>{instruction_no}"
            f"</f:instruction_no><f:account_no>{ACC_SMART}</f:account_no>"
            "<f:date>2026-11-20</f:date><f:opening_balance>0</f:opening_balance>"
            "<f:total_in>0</f:total_in><f:total_out>0</f:total_out>"
            "<f:closing_balance>0</f:closing_balance>")


def _setup(serial: str, instruction_no: str, account_no: str) -> str:
    return (f"<f:serial_no>{serial}</f:serial_no><f:instruction_no>{instruction_no}"
            f"</f:instruction_no><f:account_no>{account_no}</f:account_no>"
            "<f:account_name>新户</f:account_name><f:branch_name>达州分行</f:branch_name>"
            "<f:result>00</f:result><f:message>ok</f:message>")


def test_a_second_result_of_one_instruction_is_2002_and_its_first_serial_repeats(fund):
    """A bank re-sending a reconciliation under a new serial got 5000 (the comparison's
    unique key), and a bank that retries on 5000 retries for ever."""
    tok = fund.token()
    number = _issue(fund, "01", account_no=ACC_SMART, date="2026-11-20")
    assert _call(fund, "ReconciliationResult", tok, _reconciliation("RC-a", number))[0] == "0000"
    assert _call(fund, "ReconciliationResult", tok, _reconciliation("RC-a", number))[0] == "0000"
    code, msg = _call(fund, "ReconciliationResult", tok, _reconciliation("RC-b", number))
    assert code == "2002" and "instruction_no" in msg and "answered already" in msg, msg
    assert count(fund, Reconciliation, Reconciliation.instruction_no == number) == 1
    assert codes_logged(fund, "5000") == []


def test_concurrent_setup_results_of_one_instruction_set_up_one_account(fund, store_url):
    """Eight results of one setup instruction at once, each with its own serial and
    account number: on PostgreSQL each had seen the instruction unanswered and every one
    became an active supervised account. One is set up; the others are 2002. (SQLite's
    one writer serialises them anyway: there the test would prove nothing.)"""
    if not store_url.startswith("postgresql"):
        pytest.skip("READ COMMITTED races need PostgreSQL; SQLite has one writer")
    tok = fund.token()
    number = _issue(fund, "04", developer_name="甲开发商", project_name="甲花园",
                    permit_no="P-1", branch_name="达州分行")
    accounts = [f"62170000000900{n:02d}" for n in range(8)]
    barrier = threading.Barrier(len(accounts))

    def send(n: int) -> str:
        body = _setup(f"SU-{n}", number, accounts[n])
        barrier.wait(timeout=30)
        return _call(fund, "AccountSetupResult", tok, body)[0]

    with ThreadPoolExecutor(len(accounts)) as pool:
        codes = list(pool.map(send, range(len(accounts))))
    assert sorted(codes) == ["0000"] + ["2002"] * 7, codes
    made = count(fund, SupervisedAccount, SupervisedAccount.account_no.in_(accounts))
    assert made == 1
    with fund.hub.db.session() as s:
        ins = s.scalars(select(FundInstruction).where(
            FundInstruction.instruction_no == number)).one()
        assert ins.account_no == accounts[codes.index("0000")]
    assert codes_logged(fund, "5000") == []


def test_a_setup_result_may_not_take_over_an_existing_account(fund):
    """Naming an account already supervised (here one still active under another
    project; a cancelled one alike) moved it to the new project and reopened it."""
    tok = fund.token()
    number = _issue(fund, "04", developer_name="新开发商", project_name="新项目",
                    permit_no="P9", branch_name="达州分行")
    with fund.hub.db.session() as s:
        before = s.scalars(select(SupervisedAccount).where(
            SupervisedAccount.account_no == ACC_SMART)).one()
        kept = (before.developer_name, before.project_name, before.status)
    code, msg = _call(fund, "AccountSetupResult", tok, _setup("SU-X", number, ACC_SMART))
    assert code == "2002" and "account_no" in msg and "already" in msg, msg
    with fund.hub.db.session() as s:
        after = s.scalars(select(SupervisedAccount).where(
            SupervisedAccount.account_no == ACC_SMART)).one()
        assert (after.developer_name, after.project_name, after.status) == kept
        assert s.scalar(select(FundInstruction.status).where(
            FundInstruction.instruction_no == number)) == "queued"


def test_a_setup_result_may_take_an_account_an_operator_registered_by_hand(fund):
    """The bank phoned the setup in and an operator registered the account
    (``hub.py fund-account add``, no project yet): the bank's late result takes it."""
    tok = fund.token()
    number = _issue(fund, "04", developer_name="乙开发商", project_name="乙花园",
                    permit_no="P-7", branch_name="达州分行")
    with fund.hub.transaction() as s:
        s.add(SupervisedAccount(account_no="6217000000000777", bank_code=BANK,
                                division="511702"))
    assert _call(fund, "AccountSetupResult", tok,
                 _setup("SU-H", number, "6217000000000777"))[0] == "0000"
    with fund.hub.db.session() as s:
        account = s.scalars(select(SupervisedAccount).where(
            SupervisedAccount.account_no == "6217000000000777")).one()
        assert (account.project_name, account.status) == ("乙花园", "active")


def test_a_transfer_result_carries_the_instructions_amount(fund):
    tok = fund.token()
    number = _issue(fund, "03", account_no=ACC_SMART, amount="50.00", payee_account="1",
                    payee_name="建筑公司", approval_no="HZ-1")

    def result(serial: str, amount: str) -> tuple[str, str]:
        return _call(fund, "TransferResult", tok, (
            f"<f:serial_no>{serial}</f:serial_no><f:instruction_no>{number}</f:instruction_no>"
            f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>{amount}</f:amount>"
            f"<f:result>00</f:result><f:message>ok</f:message><f:occurred_at>{AT}"
            "</f:occurred_at>"))

    code, msg = result("TR-1", "5000000.00")
    assert code == "2002" and "amount" in msg, msg
    assert result("TR-2", "50.00")[0] == "0000"


def test_a_withdrawal_cites_only_this_banks_instruction_for_this_account(two_banks):  # noqa: F811
    """A withdrawal on the bank's own account citing another bank's instruction was
    booked with that number (README: another bank's instruction is 1004), as was one
    citing a number the hub never issued."""
    env = two_banks
    ccb = env.token("ccb-front", OTHER)
    icbc_transfer = _issue(env, "03", account_no=ACC_SMART, amount="10.00",
                           payee_account="1", payee_name="建筑公司", approval_no="HZ-2")
    own_transfer = _issue(env, "03", OTHER, account_no=ACC_OTHER, amount="10.00",
                          payee_account="1", payee_name="建筑公司", approval_no="HZ-3")

    def withdraw(serial: str, instruction_no: str) -> tuple[str, str]:
        return _call(env, "WithdrawalNotice", ccb, (
            f"<f:serial_no>{serial}</f:serial_no><f:account_no>{ACC_OTHER}</f:account_no>"
            f"<f:amount>10.00</f:amount><f:occurred_at>{AT}</f:occurred_at>"
            f"<f:instruction_no>{instruction_no}</f:instruction_no>"))

    assert withdraw("W-1", icbc_transfer)[0] == "1004"
    assert env.ledger() == []  # nothing booked
    assert len(alerts(env, "fund_other_bank")) == 1
    # a number the hub never issued: the money has left the account all the same, so it
    # is booked (a refusal let the ledger drift from the bank's) and an operator checks
    assert withdraw("W-2", "NOPE")[0] == "0000"
    [check] = alerts(env, "fund_citation_unknown")
    assert "W-2" in check.title and "NOPE" in check.title and "不存在" in check.title
    assert withdraw("W-3", own_transfer)[0] == "0000"
    assert [(r.serial_no, r.instruction_no) for r in env.ledger()] == [
        ("W-2", "NOPE"), ("W-3", own_transfer)]
    assert len(alerts(env, "fund_citation_unknown")) == 1


def test_a_comment_inside_a_value_does_not_cut_it(fund):
    """The schema validated ``1<!-- x -->0.00`` as 10.00 and the ledger booked 1.00 (the
    text before the comment); a serial with a comment inside was booked as its head."""
    tok = fund.token()
    code, _ = _call(fund, "DepositNotice", tok, (
        f"<f:serial_no>CM<!---->1</f:serial_no><f:account_no>{ACC_SMART}</f:account_no>"
        f"<f:amount>1<!-- x -->0.00</f:amount><f:occurred_at>{AT}</f:occurred_at>"))
    assert code == "0000"
    assert [(r.serial_no, r.amount_fen) for r in fund.ledger()] == [("CM1", 1000)]


def test_head_is_answered_as_get_not_500(fund):
    """A load balancer's health check (HEAD) got HTTP 500 and a call-log row."""
    http = urllib3.PoolManager()
    assert http.request("HEAD", fund.url + "?wsdl").status == 200
    assert http.request("HEAD", fund.url).status == 405
    assert codes_logged(fund, "2001") == []


def test_a_notice_from_the_future_is_2002(fund):
    """A deposit said to occur in 9999 was booked on that day, the ledger's latest. Only
    what cannot be a clock's drift is refused: more than a day ahead."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    tok = fund.token()
    now = datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0)

    def deposit(serial: str, at: str) -> tuple[str, str]:
        return _call(fund, "DepositNotice", tok, (
            f"<f:serial_no>{serial}</f:serial_no><f:account_no>{ACC_SMART}</f:account_no>"
            f"<f:amount>1.00</f:amount><f:occurred_at>{at}</f:occurred_at>"))

    for serial, at in (("FU-1", "9999-01-01T00:00:00+08:00"),
                       ("FU-2", (now + timedelta(days=2)).isoformat())):
        code, msg = deposit(serial, at)
        assert code == "2002" and "occurred_at" in msg and "ahead" in msg, msg
    assert fund.ledger() == []
    # a terminal whose clock runs minutes fast has charged the card all the same: booked
    assert deposit("FU-3", (now + timedelta(minutes=10)).isoformat())[0] == "0000"
