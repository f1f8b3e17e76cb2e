"""Instructions to a simulated bank (a real spyne server) through the outbox with zeep,
its results back through the hub's service, reconciliation and overdue instructions."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from adapters.bank_soap import fund_desk
from adapters.fund.instructions import issue, mark_overdue, send_reconciliations
from store.fund_models import FundInstruction, Reconciliation, SupervisedAccount
from store.models import Alert, CallLogEntry, OutboxMessage, utcnow
from tests.support import wait_until
from tests.test_bank_fixtures import (
    ACC_MANUAL,
    ACC_SMART,
    BANK,
    BANK_PARTNER,
    HOUSE,
    build_env,
)

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 20)


def env_of(make_hub, store_url, **kw):
    env, stop = build_env(make_hub, store_url, workers=True, **kw)
    return env, stop


def stop_all(things):
    for thing in things:
        thing.stop()


def instruction(env, number):
    with env.hub.db.session() as s:
        return s.scalar(select(FundInstruction).where(FundInstruction.instruction_no == number))


def test_account_setup_goes_to_the_bank_and_its_result_registers_the_account(make_hub,
                                                                             store_url):
    env, stop = env_of(make_hub, store_url)
    try:
        with env.hub.transaction() as s:
            number = issue(env.hub, s, fund_desk(env.hub).settings, "04", BANK, {
                "developer_name": "达州新城置业", "developer_uscc": "91511700MA00000000",
                "project_name": "新城一期", "permit_no": "达市房预售证第2026009号",
                "branch_name": "工行达州分行"}, division="511703").instruction_no
        wait_until(lambda: instruction(env, number).status == "answered", what="setup result")
        [got] = env.sim.state.instructions
        assert got["operation"] == "AccountSetupInstruction" and got["instruction_no"] == number
        ins = instruction(env, number)
        with env.hub.db.session() as s:
            acc = s.scalar(select(SupervisedAccount).where(
                SupervisedAccount.account_no == ins.account_no))
            assert (acc.division, acc.project_name, acc.bank_code, acc.status) == (
                "511703", "新城一期", BANK, "active")
            out = s.scalars(select(CallLogEntry).where(
                CallLogEntry.interface == "bank.AccountSetupInstruction")).all()
            assert [x.outcome for x in out] == ["ok"]
        assert env.sim.state.errors == []
    finally:
        stop_all(stop)


def test_ws_security_username_token_when_the_bank_asks(make_hub, store_url):
    secret = f"secret-{BANK_PARTNER}-0123456789"  # what tests.support writes for the partner
    env, stop = env_of(make_hub, store_url, partner={"wsse": {"username": "cityhub"}},
                       sim_kwargs={"require_wsse": "cityhub", "wsse_password": secret})
    try:
        with env.hub.transaction() as s:
            number = issue(env.hub, s, fund_desk(env.hub).settings, "02", BANK,
                           {"account_no": ACC_MANUAL, "reason": "项目竣工"},
                           division="511725").instruction_no
        wait_until(lambda: instruction(env, number).status == "answered", what="cancel result")
        assert env.sim.state.wsse_users == ["cityhub"]
        with env.hub.db.session() as s:
            acc = s.scalar(select(SupervisedAccount).where(
                SupervisedAccount.account_no == ACC_MANUAL))
            assert acc.status == "cancelled"
    finally:
        stop_all(stop)


def test_bank_refusing_wsse_parks_the_instruction_and_alerts(make_hub, store_url):
    env, stop = env_of(make_hub, store_url,
                       sim_kwargs={"require_wsse": "cityhub", "wsse_password": "x"})
    try:
        with env.hub.transaction() as s:
            number = issue(env.hub, s, fund_desk(env.hub).settings, "02", BANK,
                           {"account_no": ACC_MANUAL, "reason": "r"}).instruction_no
        wait_until(lambda: instruction(env, number).status == "failed", what="parked")
        assert env.sim.state.instructions == []
        with env.hub.db.session() as s:
            assert s.scalars(select(OutboxMessage)).one().status == "dead"
            failed = s.scalars(select(Alert)).one()
            assert failed.kind == "fund_instruction_failed"
            assert failed.title.endswith("请检查银行系统后在“报文与重新提交”页重新提交")
    finally:
        stop_all(stop)


def test_reconciliation_flags_exactly_one_missing_deposit(make_hub, store_url):
    env, stop = env_of(make_hub, store_url)
    try:
        sim = env.sim
        at = datetime(2026, 11, 20, 9, 0, tzinfo=TZ)
        sim.deposit(ACC_SMART, Decimal("1000.00"), at - timedelta(days=1))  # opening
        sim.deposit(ACC_SMART, Decimal("100.00"), at)
        sim.deposit(ACC_SMART, Decimal("200.00"), at + timedelta(hours=1), house_code=None)
        sim.withdraw(ACC_SMART, Decimal("50.00"), at + timedelta(hours=2))
        # the bank booked this one but its notice never reached the hub
        sim.deposit(ACC_SMART, Decimal("300.00"), at + timedelta(hours=3), notify=False)
        sent = send_reconciliations(env.hub, fund_desk(env.hub).settings, DAY)
        assert len(sent) == 2
        assert send_reconciliations(env.hub, fund_desk(env.hub).settings, DAY) == []
        wait_until(lambda: all(instruction(env, n).status == "answered" for n in sent),
                   what="both reconciliation results")
        with env.hub.db.session() as s:
            recs = {r.account_no: r for r in s.scalars(select(Reconciliation))}
            assert recs[ACC_MANUAL].matched
            rec = recs[ACC_SMART]
            assert not rec.matched
            detail = json.loads(rec.differences)
            assert detail["differences"] == {"total_in": "300.00", "closing_balance": "300.00"}
            [why] = detail["explanations"]
            assert why["unexplained"] == "no notice received for 300.00 in"
            assert sorted(m["amount"] for m in why["hub_movements_that_day"]) == [
                "100.00", "200.00"]
            assert (rec.bank_opening_fen, rec.hub_opening_fen) == (100000, 100000)
            [alert] = s.scalars(select(Alert).where(Alert.kind == "fund_recon_diff")).all()
            assert alert.ref == f"fund_reconciliation:{rec.id}"
        assert env.sim.state.errors == []
    finally:
        stop_all(stop)


def test_transfer_waits_for_its_result_and_is_overdue_after_five_working_days(make_hub,
                                                                              store_url):
    env, stop = env_of(make_hub, store_url, sim_kwargs={"answer_results": False})
    try:
        settings = fund_desk(env.hub).settings
        # the account holds enough for the transfer (the simulated bank keeps balances)
        env.sim.deposit(ACC_SMART, Decimal("20000.00"), house_code=HOUSE)
        with env.hub.transaction() as s:
            row = issue(env.hub, s, settings, "03", BANK, {
                "account_no": ACC_SMART, "amount": "12000.00", "payee_account": "5100009",
                "payee_name": "达州建工", "approval_no": "HZ-2026-1"}, division="511702")
            number, deadline = row.instruction_no, row.deadline_at
        wait_until(lambda: instruction(env, number).status == "sent", what="delivered")
        [got] = env.sim.state.instructions
        assert got["amount"] == Decimal("12000.00")
        assert 5 <= (deadline - utcnow()).days <= 9  # five working days, weekends skipped
        assert mark_overdue(env.hub) == []
        assert mark_overdue(env.hub, now=deadline + timedelta(minutes=1)) == [number]
        assert mark_overdue(env.hub, now=deadline + timedelta(days=1)) == []  # flagged once
        assert instruction(env, number).overdue
        with env.hub.db.session() as s:
            assert s.scalars(select(Alert)).one().kind == "fund_overdue"
        # the result arrives late: answered, and the movement is booked by its notice
        env.sim._answer_TransferInstruction(number, ACC_SMART, Decimal("12000.00"))
        assert instruction(env, number).status == "answered"
        [move] = [m for m in env.ledger(ACC_SMART) if m.kind != "deposit"]
        assert (move.kind, move.amount_fen, move.instruction_no) == (
            "withdrawal", 1200000, number)
    finally:
        stop_all(stop)


def test_periodic_jobs_come_from_configuration(make_hub, store_url):
    env, stop = env_of(make_hub, store_url, bank={"reconciliation_time": "01:45",
                                                  "overdue_check_minutes": 3})
    try:
        jobs = {j.id: j for j in env.hub.adapter("bank_soap").periodic_jobs()}
        assert jobs["bank-reconciliation"].args == {"hour": 1, "minute": 45}
        assert jobs["bank-overdue"].args == {"minutes": 3.0}
        jobs["bank-reconciliation"].func()  # yesterday, for both accounts
        with env.hub.db.session() as s:
            assert len(s.scalars(select(FundInstruction)).all()) == 2
    finally:
        stop_all(stop)
