"""Banks (预售资金监管, contracts/bank.md): the hub's SOAP service in, instructions out.

Inbound: ``/soap/fund`` (WSDL at ``/soap/fund?wsdl``), served by spyne behind a
hardened XML check (``adapters.fund.soap``); the POS operations live in the same
service (``adapters.pos`` adds nothing of its own). Outbound: the four instructions of
section 3.2, delivered with zeep from the outbox. Periodic: the daily reconciliation
instruction per active account and the overdue check.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from adapters.base import Adapter, DeliveryResult, OutgoingMessage
from adapters.fund.client import BankClients
from adapters.fund.desk import FundDesk
from adapters.fund.instructions import mark_overdue, on_delivered, send_reconciliations
from adapters.fund.settings import BankSettings, load_settings
from scheduler import PeriodicJob

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

    from hub import Hub

_SHARED_LOCK = threading.Lock()


def fund_desk(hub: Hub) -> FundDesk:
    """The one desk (settings, token cache) of this hub, shared by bank and POS adapters."""
    with _SHARED_LOCK:
        desk = getattr(hub, "_fund_desk", None)
        if desk is None:
            desk = FundDesk(hub, load_settings(hub))
            hub._fund_desk = desk  # type: ignore[attr-defined]
        return desk


def mount_fund_service(hub: Hub, app: Flask) -> None:
    """Mount ``/soap/fund`` once, whichever of bank_soap / pos registers first."""
    from adapters.fund.soap import PATH, FundSoapEndpoint

    if any(rule.rule == PATH for rule in app.url_map.iter_rules()):
        return
    FundSoapEndpoint(hub, fund_desk(hub)).mount(app)


class BankSoapAdapter(Adapter):
    alias = "bank_soap"
    alerts_when_dead = True  # a parked instruction raises fund_instruction_failed

    def __init__(self, hub: Hub) -> None:
        super().__init__(hub)
        self.clients = BankClients(hub.config.hub_app_id)

    @property
    def settings(self) -> BankSettings:
        return fund_desk(self.hub).settings

    def register_inbound(self, app: Flask) -> None:
        mount_fund_service(self.hub, app)

    def deliver(self, message: OutgoingMessage) -> DeliveryResult:
        return self.clients.send(message.partner, message.operation, message.payload)

    def after_delivery(self, session: Session, message: OutgoingMessage,
                       result: DeliveryResult, status: str) -> None:
        on_delivered(session, message.id, status, result.error)

    def periodic_jobs(self) -> list[PeriodicJob]:
        s = self.settings
        return [
            PeriodicJob("bank-reconciliation", lambda: send_reconciliations(self.hub, s), "cron",
                        {"hour": s.reconciliation_hour, "minute": s.reconciliation_minute}),
            PeriodicJob("bank-overdue", lambda: mark_overdue(self.hub), "interval",
                        {"minutes": s.overdue_check_minutes}),
        ]

    def close(self) -> None:
        self.clients.close()
