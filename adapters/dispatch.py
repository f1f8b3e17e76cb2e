"""Outbound delivery: claim due outbox rows, hand each to its adapter, record the outcome.

This is the one place where outgoing calls are timed, logged and retried, whatever
the adapter (the nameko ``worker_setup``/``worker_result`` shape): adapters only say
how a message goes over the wire.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.base import DeliveryResult, OutgoingMessage
from store.calllog import CallRecord, write_calls
from store.models import Alert, utcnow
from store.outbox import DEAD, Claimed, Outcome, claim, claim_one, finish_many

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.delivery")


def worker_name(suffix: str = "") -> str:
    return f"{socket.gethostname()}:{os.getpid()}{':' + suffix if suffix else ''}"


class Dispatcher:
    """One claimer: ``run_once`` claims a batch and delivers it; safe to run many at once."""

    def __init__(self, hub: Hub, worker_id: str) -> None:
        self.hub = hub
        self.worker_id = worker_id
        self.batch = hub.config.delivery.batch
        self.lease_seconds = hub.config.delivery.lease_seconds

    def run_once(self) -> int:
        """Claim a batch, deliver each, then record all outcomes in one transaction.

        One commit per batch instead of per message: a worker that dies between the
        calls and the commit loses no message — the lease runs out and the batch is
        delivered again (at least once; peers get ``X-Message-Id`` to spot repeats).
        """
        with self.hub.db.session() as s:
            claimed = claim(
                s, self.worker_id, self.batch, self.lease_seconds, postgres=self.hub.db.postgres
            )
        if claimed:
            self._record([self._attempt(row) for row in claimed])
        return len(claimed)

    def deliver_now(self, message_id: int) -> str | None:
        """Deliver one message at once (a sync query), if no worker has claimed it.

        Returns its new status, or None when it was not claimable (held, or taken).
        """
        with self.hub.db.session() as s:
            row = claim_one(s, message_id, self.worker_id, self.lease_seconds)
        if row is None:
            return None
        return self._record([self._attempt(row)])[0]

    def _attempt(self, row: Claimed) -> _Attempt:
        hub = self.hub
        record = CallRecord(
            interface=row.interface,
            direction="out",
            party=row.partner,
            started_at=utcnow(),
            division=row.division,
            item=row.item,
            case_id=row.case_id,
            message_id=row.id,
        )
        started = time.perf_counter()
        message: OutgoingMessage | None = None
        try:
            adapter = hub.adapter(row.adapter)
            message = OutgoingMessage(
                id=row.id,
                interface=row.interface,
                operation=row.operation,
                partner=hub.partner(row.partner),
                payload=hub.cipher.open_json(row.payload_enc),
                attempts=row.attempts,
                timeout=row.timeout,
                division=row.division,
                item=row.item,
                case_id=row.case_id,
            )
            result = adapter.deliver(message)
        except Exception as exc:  # an adapter bug must not stop the worker
            log.exception("delivery of message %s raised", row.id)
            result = DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        record.duration_ms = (time.perf_counter() - started) * 1000
        record.outcome = "ok" if result.ok else "error"
        record.code, record.error = result.code, result.error
        record.response = result.response
        if message is not None and result.request is message.payload:
            record.request_sealed = row.payload_enc  # sent as stored: no need to seal it again
        else:
            record.request = result.request
        return _Attempt(row, message, result, record)

    def _record(self, attempts: list[_Attempt]) -> list[str | None]:
        hub = self.hub
        outcomes = [Outcome(a.row, a.result.ok, a.result.permanent, a.result.error)
                    for a in attempts]
        with hub.transaction() as s:
            statuses = finish_many(s, self.worker_id, outcomes, postgres=hub.db.postgres)
            for a, status in zip(attempts, statuses, strict=True):
                if status is None:
                    log.warning("message %s: lease lost before the result was recorded", a.row.id)
                    continue
                # no message: the adapter itself could not be loaded for this row
                adapter = hub.adapter(a.row.adapter) if a.message is not None else None
                if status == DEAD and not (adapter and adapter.alerts_when_dead):
                    s.add(dead_alert(a.row, a.result))
                if adapter is not None:
                    adapter.after_delivery(s, a.message, a.result, status)
            write_calls(s, hub.cipher, [a.record for a in attempts])
        return statuses


@dataclass
class _Attempt:
    row: Claimed
    message: OutgoingMessage | None
    result: DeliveryResult
    record: CallRecord


def dead_alert(row: Claimed, result: DeliveryResult) -> Alert:
    """An operator must see a parked message until acknowledged (and resubmit it)."""
    return Alert(
        kind="dead_message", severity="warning",
        title=f"消息 {row.id} 投递失败已停止重试: {row.interface} → {row.partner}"[:200],
        detail=(result.error or "")[:2000], division=row.division, ref=f"message:{row.id}",
    )


class DeliveryWorkers:
    """A pool of delivery threads in this process; woken early when a message is enqueued."""

    def __init__(self, hub: Hub, threads: int | None = None) -> None:
        self.hub = hub
        self.threads = threads or hub.config.delivery.threads
        self.poll_interval = hub.config.delivery.poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        for n in range(self.threads):
            dispatcher = Dispatcher(self.hub, worker_name(f"t{n}"))
            t = threading.Thread(target=self._loop, args=(dispatcher,), daemon=True,
                                 name=f"delivery-{n}")
            t.start()
            self._threads.append(t)

    def _loop(self, dispatcher: Dispatcher) -> None:
        while not self._stop.is_set():
            try:
                busy = dispatcher.run_once()
            except Exception:  # the store may be briefly unavailable: wait and go on
                log.exception("delivery loop error")
                busy = 0
            if not busy:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)
