"""The simulated bank keeps balances that make sense: no withdrawal, deduction or freeze
beyond what the account holds, unless a scenario asks for it, and then the hub flags the
overdrawn account (alert ``fund_overdrawn``)."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapters.sim.bank import Overdrawn
from mapping.names import name
from store.models import Alert
from tests.test_bank_fixtures import ACC_MANUAL, ACC_SMART, build_env


def _alerts(hub) -> list[str]:  # type: ignore[no-untyped-def]
    with hub.db.session() as s:
        return [a.kind for a in s.scalars(select(Alert).order_by(Alert.id))]


def test_no_payment_beyond_the_balance_unless_the_scenario_says_so(make_hub, sqlite_url):
    env, stop = build_env(make_hub, sqlite_url)
    try:
        sim = env.sim
        sim.deposit(ACC_SMART, Decimal("100.00"))
        with pytest.raises(Overdrawn):
            sim.withdraw(ACC_SMART, Decimal("150.00"))
        sim.abnormal("AccountFrozenNotice", ACC_SMART, Decimal("80.00"))
        with pytest.raises(Overdrawn):  # 20.00 is all that is not frozen
            sim.withdraw(ACC_SMART, Decimal("30.00"))
        with pytest.raises(Overdrawn):
            sim.abnormal("AccountFrozenNotice", ACC_SMART, Decimal("30.00"))
        with pytest.raises(Overdrawn):
            sim.abnormal("JudicialDeductionNotice", ACC_SMART, Decimal("100.01"))
        assert (sim.balance_fen(ACC_SMART), sim.available_fen(ACC_SMART)) == (10000, 2000)
        sim.withdraw(ACC_SMART, Decimal("20.00"))
        assert "fund_overdrawn" not in _alerts(env.hub)

        # a scenario that pays out more than there is: the bank does, the hub flags it
        sim.withdraw(ACC_SMART, Decimal("500.00"), overdraw=True)
        assert _alerts(env.hub).count("fund_overdrawn") == 1
        assert name("alert_kinds", "fund_overdrawn") == "监管账户支出超过余额"
    finally:
        for thing in stop:
            thing.stop()


def test_spontaneous_activity_stays_within_the_balance(make_hub, sqlite_url):
    env, stop = build_env(make_hub, sqlite_url)
    try:
        sim, rng = env.sim, random.Random(13)
        for _ in range(40):
            sim.tick(rng)
            for account in (ACC_SMART, ACC_MANUAL):
                assert sim.balance_fen(account) >= 0
                assert 0 <= sim.state.frozen.get(account, 0) <= sim.balance_fen(account)
        assert "fund_overdrawn" not in _alerts(env.hub)
    finally:
        for thing in stop:
            thing.stop()
