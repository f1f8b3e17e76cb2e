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
from adapters.lease import BatchLease
from mapping.names import name
from store.alerts import close_delivered
from store.calllog import CallRecord, call_row, write_calls
from store.calllog_buffer import insert_rows
from store.models import Alert, utcnow
from store.outbox import (
    DEAD,
    DONE,
    Claimed,
    Outcome,
    claim,
    claim_one,
    finish_many,
    release,
    renew,
)
from store.resilience import is_disconnect, retry_on_disconnect, retry_until_back

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
        self._stopping: threading.Event | None = None
        self._claimed_at = 0.0
        self._lease = BatchLease(self.lease_seconds, 0.0)

    def run_once(self) -> int:
        """Claim a batch and deliver it, recording each outcome as its call ends.

        The batch never outlives its lease: before a call that might not end inside it,
        the lease of the rows still to call is renewed (fenced on this claimer); a row
        whose lease is lost or cannot be renewed is not called (it is due again when the
        lease ends, or at once if handed back). Each outcome is recorded as its call
        ends — outcomes of fast calls together, within ``RECORD_WITHIN`` (one commit for
        many, as the throughput needs) — so a worker that dies mid-batch leaves at most
        that much to be sent again (at least once; peers get ``X-Message-Id``).
        """
        self._claimed_at = time.monotonic()
        with self.hub.db.session() as s:
            claimed = claim(
                s, self.worker_id, self.batch, self.lease_seconds, postgres=self.hub.db.postgres
            )
        self._lease = BatchLease.claimed(self.lease_seconds, self._claimed_at)
        lost: set[int] = set()
        done: list[_Attempt] = []  # called, outcome not yet recorded (still leased)
        oldest = 0.0  # when the first of ``done`` ended
        for i, row in enumerate(claimed):
            if self.stopping():  # draining: the rest go back at once (store.outbox.release)
                self._release([r.id for r in claimed[i:] if r.id not in lost])
                break
            if row.id in lost:
                continue
            if not self._lease.covers(row.timeout):
                held = self._renew([a.row.id for a in done]
                                   + [r.id for r in claimed[i:] if r.id not in lost])
                if held is None:  # the store is away: call nothing the lease may not cover
                    log.warning("lease of %d message(s) not renewed: they are due again when "
                                "it ends", len(claimed) - i)
                    break
                lost.update(r.id for r in claimed[i:] if r.id not in held)
                if row.id in lost:
                    log.warning("message %s: lease lost before its call; not called", row.id)
                    continue
            started = time.monotonic()
            done.append(self._attempt(row))
            ended = time.monotonic()
            if len(done) == 1:
                oldest = ended
            if ended - started >= RECORD_WITHIN or ended - oldest >= RECORD_WITHIN:
                self._record(done)
                done = []
        if done:
            self._record(done)
        return len(claimed)

    def _renew(self, ids: list[int]) -> set[int] | None:
        """Renew the lease of ``ids``; the ids still held, None if the store is away."""
        started = time.monotonic()
        try:
            with self.hub.db.session() as s:
                held = renew(s, self.worker_id, ids, self.lease_seconds)
        except Exception:
            log.exception("renewing the lease of %d message(s) failed", len(ids))
            return None
        self._lease.renewed(started)
        return held

    def stopping(self) -> bool:
        """Whether this process is shutting down (set by ``DeliveryWorkers.stop``)."""
        return self._stopping is not None and self._stopping.is_set()

    def _release(self, ids: list[int]) -> None:
        def transaction() -> int:
            with self.hub.db.session() as s:
                return release(s, [self.worker_id], ids)

        n = retry_on_disconnect(transaction, "outbox release")
        log.info("draining: %d claimed message(s) handed back unattempted", n)

    def deliver_now(self, message_id: int) -> str | None:
        """Deliver one message at once (a sync query), if no worker has claimed it.

        Returns its new status, or None when it was not claimable (held, or taken).
        """
        self._claimed_at = time.monotonic()
        self._lease = BatchLease.claimed(self.lease_seconds, self._claimed_at)
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
        """Record the outcomes and their call-log rows in one transaction. If the store
        went away, try again (with backoff, within ``RECORD_BUDGET`` and well inside the
        rows' lease, so they are not claimed again meanwhile); a repeat skips call-log
        rows stored already (a COMMIT whose answer was lost). If the store stays away,
        the call-log rows wait in the hub's buffer and the rows' lease runs out."""
        runs = 0

        def transaction() -> list[str | None]:
            nonlocal runs
            runs += 1
            return self._record_once(attempts, repeat=runs > 1)

        # within the rows' lease (from their claim or last renewal), so they are not
        # claimed again meanwhile
        budget = max(0.0, min(RECORD_BUDGET, self._lease.remaining() - 10))
        try:
            return retry_until_back(transaction, budget, "delivery outcomes")
        except Exception as exc:
            if len(attempts) > 1 and not is_disconnect(exc):
                # one outcome the store refuses must not keep the others unrecorded (and
                # their messages going out again at every lease's end): each alone
                log.warning("delivery outcomes of %d messages not recorded together (%s): "
                            "recording each alone", len(attempts), type(exc).__name__)
                alone: list[str | None] = []
                for attempt in attempts:
                    try:
                        alone.append(self._record([attempt])[0])
                    except Exception:  # logged there; this one is due when its lease ends
                        alone.append(None)
                return alone
            log.exception("delivery outcomes of %d message(s) not recorded: they are due "
                          "again when their lease ends", len(attempts))
            self.hub.call_log_buffer.add_rows(
                [call_row(self.hub.cipher, a.record) for a in attempts])
            raise

    def _record_once(self, attempts: list[_Attempt], repeat: bool) -> list[str | None]:
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
            close_delivered(s, [a.row.id for a, st in zip(attempts, statuses, strict=True)
                                if st == DONE])  # a resubmitted dead message's alert
            if repeat:  # the first run may have committed after all: keyed on ref_id
                insert_rows(s.connection(), [call_row(hub.cipher, a.record) for a in attempts])
            else:
                write_calls(s, hub.cipher, [a.record for a in attempts])
        return statuses


@dataclass
class _Attempt:
    row: Claimed
    message: OutgoingMessage | None
    result: DeliveryResult
    record: CallRecord


#: Seconds at most an outcome waits to be recorded with the next ones (fast calls).
RECORD_WITHIN = 0.2

#: Seconds at most spent retrying to record a batch's outcomes while the store is away.
RECORD_BUDGET = 60.0


def dead_alert(row: Claimed, result: DeliveryResult) -> Alert:
    """An operator must see a parked message until acknowledged (and resubmit it)."""
    what = f"{name('interfaces', row.interface)} → {name('partners', row.partner)}"
    why = ("对方拒绝接收，已停止重试" if result.permanent
           else f"已尝试 {row.attempts} 次，已停止重试")
    return Alert(
        kind="dead_message", severity="warning",
        title=(f"消息 {row.id}（{what}）发送失败：{why}；"
               "请检查对方系统后在办件页“重新提交”")[:200],
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
        self._dispatchers: list[Dispatcher] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        for n in range(self.threads):
            dispatcher = Dispatcher(self.hub, worker_name(f"t{n}"))
            dispatcher._stopping = self._stop
            self._dispatchers.append(dispatcher)
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

    def stop(self, timeout: float | None = None) -> None:
        """Drain: each thread finishes the call it is making and records it, hands the
        rest of its batch back, and ends; after ``timeout`` (``delivery.drain_seconds``)
        the rows of threads still waiting on a peer are handed back too (their call may
        still arrive: at least once), so another process takes every row at once."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + (self.hub.config.delivery.drain_seconds
                                       if timeout is None else timeout)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        stuck = [d.worker_id for d, t in zip(self._dispatchers, self._threads, strict=True)
                 if t.is_alive()]
        if stuck:
            try:
                with self.hub.db.session() as s:
                    n = release(s, stuck, attempted=True)
                log.warning("draining: %d message(s) of %d thread(s) still calling a peer "
                            "handed back", n, len(stuck))
            except Exception:
                log.exception("draining: could not hand back the messages of %s", stuck)
        self._threads.clear()
        self._dispatchers.clear()

    @property
    def alive(self) -> int:
        return sum(t.is_alive() for t in self._threads)
