"""County smart platform (智慧平台): sub-cases out as signed JSON, stage callbacks in."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from adapters.base import DeliveryResult, OutgoingMessage
from adapters.http import HttpJsonAdapter
from mapping.items import ITEMS, ItemKind
from store import files
from store.models import Case

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

#: Items whose county answer carries a result the province waits for (``/results``).
_RESULT_KINDS = (ItemKind.SYNC_QUERY, ItemKind.ASYNC_RESULT)


class CountySmartAdapter(HttpJsonAdapter):
    """Delivers each sub-case to ``POST {county_base}/{item}`` (contracts/county.md)."""

    alias = "county_smart"

    def register_inbound(self, app: Flask) -> None:
        from adapters.county_callbacks import register
        from adapters.numbering import register_routes as register_numbering

        register(app, self.hub)
        register_numbering(app, self.hub)  # contracts/numbering.md (4001 without a profile)

    # ------------------------------------------------------------------ outbound

    def deliver(self, message: OutgoingMessage) -> DeliveryResult:
        """POST the sub-case; its materials travel with it (content, type and SHA-256)."""
        logged = self.hub.sharing.with_warnings(message.payload, message.item)  # 查封 warnings
        payload = logged
        if payload.get("materials"):
            payload = {**payload, "materials": self._with_content(payload["materials"])}
        result = self.client(message.partner).post(
            message.partner, message.operation, payload, message.timeout, message.id)
        result.request = logged  # the call log keeps references, not the files
        return result

    def _with_content(self, materials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        hub = self.hub
        out: list[dict[str, Any]] = []
        with hub.db.session() as s:
            for m in materials:
                found = files.load(s, hub.cipher, str(m.get("file_id")))
                if found is None:
                    out.append({**m, "missing": True})
                    continue
                info, data = found
                out.append({**m, "content_type": info.content_type, "size": info.size,
                            "sha256": info.sha256,
                            "content_base64": base64.b64encode(data).decode()})
        return out

    def after_delivery(self, session: Session, message: OutgoingMessage,
                       result: DeliveryResult, status: str) -> None:
        """A query's answer that came through the outbox (not inline) goes to /results."""
        from adapters.intake import INLINE_DELIVERY, results_payload
        from store.cases import province_message

        item = ITEMS.get(message.item or "")
        if (status != "done" or item is None or item.kind not in _RESULT_KINDS
                or message.case_id is None or INLINE_DELIVERY.get()):
            return
        answer = result.response if isinstance(result.response, dict) else {}
        data = answer.get("data")
        if item.kind is ItemKind.ASYNC_RESULT and not data:
            return  # the result will come by callback
        case = session.get(Case, message.case_id)
        if case is None:
            return
        self.hub.enqueue(session, province_message(self.hub, case, "results",
                                                   results_payload(case, data or {})))
