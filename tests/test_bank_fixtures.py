"""Shared set-up for the bank/POS tests (no tests here): a hub served by the production
server on its configured port (so the WSDL's address, public_url, reaches it), a
simulated bank as a real spyne server, a loopback county, and zeep."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import zeep
from sqlalchemy import func, select

from adapters.fund.auth import add_login
from adapters.sim.bank import SimBank
from adapters.sim.loopback import LoopbackServer
from hub import Hub
from store.fund_models import FundEvent, FundHouse, LedgerEntry, SupervisedAccount
from tests.hubserver import HubServer

BANK = "ICBC"
BANK_PARTNER = "bank_icbc_dazhou"
PASSWORD = "correct-horse-battery-7"
ACC_SMART = "6217000000000001"   # 通川区 511702: a smart county (auto, to the loopback peer)
ACC_MANUAL = "6217000000000002"  # 渠县 511725: manual (operators' queue)
HOUSE = "511702-001-0101"


@dataclass
class FundEnv:
    hub: Hub
    server: HubServer
    sim: SimBank
    county: LoopbackServer

    @property
    def url(self) -> str:
        return self.server.url + "/soap/fund"

    def client(self) -> Any:
        return zeep.Client(self.url + "?wsdl").service

    def token(self, username: str = "icbc-front", bank_code: str = BANK) -> str:
        answer = self.client().Authenticate(bank_code=bank_code, username=username,
                                            password=PASSWORD)
        assert answer.result_code == "0000", answer
        return answer.token

    def ledger(self, account_no: str | None = None) -> list[LedgerEntry]:
        with self.hub.db.session() as s:
            q = select(LedgerEntry).order_by(LedgerEntry.id)
            if account_no:
                q = q.where(LedgerEntry.account_no == account_no)
            return list(s.scalars(q))

    def count(self, model: Any) -> int:
        with self.hub.db.session() as s:
            return s.scalar(select(func.count()).select_from(model))

    def events(self) -> list[FundEvent]:
        with self.hub.db.session() as s:
            return list(s.scalars(select(FundEvent).order_by(FundEvent.id)))


def build_env(make_hub: Any, store_url: str, *, sim_kwargs: dict[str, Any] | None = None,
              partner: dict[str, Any] | None = None, bank: dict[str, Any] | None = None,
              workers: bool = False) -> tuple[FundEnv, list[Any]]:
    county = LoopbackServer().start()
    sim = SimBank("http://127.0.0.1:9", BANK, "icbc-front", PASSWORD, **(sim_kwargs or {}))
    partners = {
        BANK_PARTNER: {"base_url": sim.url, "bank_code": BANK, "timeout": 5, **(partner or {})},
        "county_511702": {"base_url": county.url + "/county/511702", "division": "511702"},
    }
    hub = make_hub(store_url, inbound=["bank_soap", "pos"], partners=partners,
                   bank={"token_ttl_seconds": 1800, **(bank or {})},
                   scheduler={"enabled": False})
    server = HubServer(hub).start()
    sim.hub_url = server.url
    sim.start()
    with hub.transaction() as s:
        add_login(s, BANK, "icbc-front", PASSWORD)
        add_login(s, BANK, "pos-terminal-1", PASSWORD, kind="pos")
        s.add(SupervisedAccount(account_no=ACC_SMART, bank_code=BANK, division="511702",
                                developer_name="达州某房地产开发有限公司",
                                project_name="滨河花园", permit_no="达市房预售证第2026001号"))
        s.add(SupervisedAccount(account_no=ACC_MANUAL, bank_code=BANK, division="511725",
                                developer_name="渠县某置业", project_name="渠江苑",
                                permit_no="渠房预售证第2026002号"))
        s.flush()
        s.add(FundHouse(house_code=HOUSE, account_no=ACC_SMART))
    sim.open_account(ACC_SMART)
    sim.open_account(ACC_MANUAL)
    if workers:
        hub.start_workers(threads=2)
    return FundEnv(hub, server, sim, county), [sim, server, county]


@pytest.fixture
def fund(make_hub: Any, store_url: str) -> Iterator[FundEnv]:
    env, stoppable = build_env(make_hub, store_url)
    yield env
    for thing in stoppable:
        thing.stop()


def yuan(text: str) -> Decimal:
    return Decimal(text)
