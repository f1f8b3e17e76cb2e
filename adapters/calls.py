"""One logged-call path for every outbound call that is not an outbox delivery.

Sync calls to a partner (the province's numbering calls and 好差评 review link, …) run
through :meth:`Calls.call`, one entrypoint with a fixed lifecycle (as nameko's
entrypoints): *before* — a call-log record is opened; *call* — the signed POST on the
partner's one JSON client; *after* — the outcome is judged and the call-log row written
exactly once. Outbox deliveries are logged by the dispatcher instead, but use the same
per-partner clients (:meth:`Calls.client`), so the hub holds one HTTP client per partner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from adapters.base import DeliveryResult
from adapters.http import JsonClient
from store.calllog import CallRecord, write_call
from store.models import utcnow

if TYPE_CHECKING:
    from hub import Hub

#: Judges a successful answer: None if it is usable, else why not (logged as an error).
Check = Callable[[DeliveryResult], "str | None"]


class Calls:
    """The hub's outbound JSON clients (one per partner) and its logged sync calls."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._clients: dict[str, JsonClient] = {}
        self._lock = threading.Lock()

    def client(self, app_id: str) -> JsonClient:
        """The partner's one pooled, signing client, created on first use."""
        client = self._clients.get(app_id)
        if client is None:
            with self._lock:
                client = self._clients.get(app_id)
                if client is None:
                    pool = self.hub.config.delivery.threads + 4  # the workers and sync calls
                    client = JsonClient(self.hub.config.hub_app_id, pool_size=pool)
                    self._clients[app_id] = client
        return client

    def call(self, party: str, operation: str, payload: Any, interface: str, *,
             division: str | None = None, item: str | None = None,
             case_id: int | None = None, check: Check | None = None) -> DeliveryResult:
        """POST ``payload`` to ``party``'s ``operation`` now, within the partner's timeout,
        and write its one call-log row. A ``check`` refusing an ``ok`` answer turns it
        into an error (``result.ok`` false, the reason in ``result.error``)."""
        partner = self.hub.partner(party)
        record = self._before(party, interface, division, item, case_id)
        started = time.perf_counter()
        result = self.client(party).post(partner, operation, payload, partner.timeout)
        record.duration_ms = (time.perf_counter() - started) * 1000
        self._after(record, result, check)
        return result

    # -- lifecycle

    @staticmethod
    def _before(party: str, interface: str, division: str | None, item: str | None,
                case_id: int | None) -> CallRecord:
        return CallRecord(interface=interface, direction="out", party=party,
                          started_at=utcnow(), division=division, item=item, case_id=case_id)

    def _after(self, record: CallRecord, result: DeliveryResult, check: Check | None) -> None:
        if result.ok and check is not None:
            reason = check(result)
            if reason is not None:
                result.ok, result.error = False, reason
        record.outcome = "ok" if result.ok else "error"
        record.code, record.error = result.code, result.error
        record.request, record.response = result.request, result.response
        with self.hub.db.session() as s:
            write_call(s, self.hub.cipher, record)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with suppress(Exception):
                client.close()
