"""POS terminals (POS机缴费验证 / POS机缴费, contracts/bank.md 3.3).

``PosPaymentVerify`` and ``PosPayment`` are operations of the same SOAP service as
the banks' (``/soap/fund``, see ``adapters.fund.desk``): a POS login (kind ``pos``)
may call only these two. This adapter only makes sure the service is mounted when
``pos`` is listed in ``inbound`` without ``bank_soap``; it sends nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.bank_soap import mount_fund_service
from adapters.base import Adapter

if TYPE_CHECKING:
    from flask import Flask


class PosAdapter(Adapter):
    alias = "pos"
    delivers = False

    def register_inbound(self, app: Flask) -> None:
        mount_fund_service(self.hub, app)
