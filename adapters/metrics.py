"""``GET /metrics``: the hub in the Prometheus text format (``prometheus_client``).

Two kinds of figures, both produced at scrape time by one custom ``Collector``:

* **process counters** — calls by interface, direction and outcome, and their latency
  histogram — counted in this process as each call-log row is built (the hook in
  ``store.calllog``). Each hub process (``serve``) exposes its own; Prometheus adds them
  up across instances (``sum without (instance)``).
* **store gauges** — outbox depth by status and destination, the age of the oldest due
  message, dead messages, whether some process holds the scheduler lease — read from
  the shared store with a few small indexed queries on every scrape, so every hub
  reports the same values (aggregate them with ``max``).

Nothing here carries personal data: labels are interface names, partner app ids and
statuses. Interface names come partly from request paths, so they are checked (a short
``[a-z0-9._-]`` name) and their number is capped; anything else counts as ``other``.

Access (config ``metrics``): a scrape from one of ``metrics.allow`` (addresses or
networks, loopback by default) or one carrying ``Authorization: Bearer <token>`` where
the token is the secret ``HUB_SECRET_METRICS`` (or ``metrics_token`` in the secrets
file) and ``metrics.token: true``. Anything else gets 403.
"""

from __future__ import annotations

import bisect
import hmac
import ipaddress
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from adapters.single_flight import MONITOR_WAIT, SingleFlight
from store import calllog
from store.models import Lease, OutboxMessage, utcnow
from store.outbox import DEAD, IN_FLIGHT, PENDING, held_condition

if TYPE_CHECKING:
    from hub import Hub
    from store.calllog import CallRecord
    from store.group_commit import GroupCommit

#: Latency buckets (seconds): the dashboard's (admin.stats.BUCKET_BOUNDS, in ms).
BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: Distinct interface names kept as labels; later ones count as ``other``.
MAX_INTERFACES = 200
#: Destinations (partners) listed in the outbox gauges at most.
MAX_PARTNERS = 200
_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")
_OUTCOMES = ("ok", "error", "rejected")
_DIRECTIONS = ("in", "out")
#: Statuses of the outbox depth gauge (``done`` rows are history, not depth).
_DEPTH_STATUSES = (PENDING, IN_FLIGHT, DEAD)
SECRET_ENV = "HUB_SECRET_METRICS"
SECRET_KEY = "metrics_token"


# --------------------------------------------------------------------------- process counters


#: What a call counts as: (calls key, histogram key, bucket, seconds).
_Counted = tuple[tuple[str, str, str], tuple[str, str], int, float]


class CallCounters:
    """Calls and their durations seen by this process; thread-safe.

    A call's row can be built more than once (its transaction retried, or kept for a
    late write); a call counts once, as its last row says (the one that commits: a
    first run's 2002 whose retry answers 0000 counts as ok).

    A call is shown once settled, ``settle`` seconds after its first row: a retry
    within that (the usual case) moves it before any scrape saw it, so no counter falls
    (Prometheus reads a fall as a restart: ``rate()`` jumps by the whole count). A row
    built again later with another outcome (a COMMIT lost in an outage and answered
    5000 after the driver's time-outs) is still counted as it says: the only case where
    a series may fall by one, because a count that is right matters more. Settled calls
    are remembered ``remember_seconds`` (at most ``remember`` of them), so a late row
    is a correction, not a second call."""

    def __init__(self, remember: int = 200_000, settle: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 remember_seconds: float = 300.0) -> None:
        self._lock = threading.Lock()
        self._settle_after, self._clock = settle, clock
        self._calls: dict[tuple[str, str, str], int] = {}
        #: (interface, direction) -> [bucket counts..., +Inf], sum of seconds
        self._hist: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self._interfaces: set[str] = set()
        #: ref id -> (what it will be counted as: calls key, histogram key, bucket,
        #: seconds; when its first row came), oldest first
        self._pending: dict[str, tuple[_Counted, float]] = {}
        #: the calls counted lately, oldest first: ref id -> (what it counted as, when)
        self._settled: dict[str, tuple[_Counted, float]] = {}
        self._remember, self._remember_seconds = remember, remember_seconds

    def _interface(self, name: str) -> str:
        if name in self._interfaces:
            return name
        if not _NAME.fullmatch(name) or len(self._interfaces) >= MAX_INTERFACES:
            return "other"
        self._interfaces.add(name)
        return name

    def observe(self, record: CallRecord) -> None:
        seconds = max(float(record.duration_ms or 0.0), 0.0) / 1000
        with self._lock:
            now = self._clock()
            self._settle(now)
            ref = record.ref_id
            iface = self._interface(str(record.interface))
            direction = record.direction if record.direction in _DIRECTIONS else "other"
            outcome = record.outcome if record.outcome in _OUTCOMES else "other"
            counted = ((iface, direction, outcome), (iface, direction),
                       bisect.bisect_left(BUCKETS, seconds), seconds)
            settled = self._settled.get(ref)
            if settled is not None:  # a late row: a correction if it says otherwise
                if settled[0][0] != counted[0]:
                    self._count(settled[0], -1)
                    self._count(counted, 1)
                    self._settled[ref] = (counted, settled[1])
                return
            earlier = self._pending.get(ref)
            self._pending[ref] = (counted, now if earlier is None else earlier[1])

    def _count(self, counted: _Counted, sign: int) -> None:
        """Add (``sign`` 1) or take back (-1) one call (under the lock)."""
        key, hist_key, bucket, seconds = counted
        self._calls[key] = self._calls.get(key, 0) + sign
        counts, total = self._hist.setdefault(hist_key, ([0] * (len(BUCKETS) + 1), [0.0]))
        counts[bucket] += sign
        total[0] += sign * seconds

    def _settle(self, now: float) -> None:
        """Count the calls whose first row is ``settle`` seconds old, and forget those
        counted longer ago than ``remember_seconds`` (under the lock)."""
        while self._pending:
            ref, (counted, first) = next(iter(self._pending.items()))
            if now - first < self._settle_after:
                break
            del self._pending[ref]
            self._count(counted, 1)
            self._settled[ref] = (counted, now)
        settled = self._settled
        while settled:
            ref, (_, at) = next(iter(settled.items()))
            if now - at < self._remember_seconds and len(settled) <= self._remember:
                break
            del settled[ref]

    def snapshot(self) -> tuple[dict[tuple[str, str, str], int],
                                dict[tuple[str, str], tuple[list[int], float]]]:
        """(calls per key, (bucket counts, seconds) per interface) of the settled calls."""
        with self._lock:
            self._settle(self._clock())
            return dict(self._calls), {k: (list(c), t[0]) for k, (c, t) in self._hist.items()}


#: This process's counters: fed by every call-log row built here (store.calllog).
COUNTERS = CallCounters()
calllog.add_observer(COUNTERS.observe)


# --------------------------------------------------------------------------- collector


class HubCollector(Collector):
    """Everything ``/metrics`` shows, computed when it is scraped."""

    def __init__(self, hub: Hub, counters: CallCounters = COUNTERS) -> None:
        self.hub, self.counters = hub, counters
        # one store query at a time, no scrape waits past MONITOR_WAIT (adapters/single_flight)
        self._figures = SingleFlight(lambda: store_figures(hub), MONITOR_WAIT, "metrics")

    def collect(self) -> Iterator[Any]:
        started = time.perf_counter()
        yield from self._process()
        yield from self._store()
        yield GaugeMetricFamily("cityhub_metrics_scrape_seconds",
                                "Time taken to collect these metrics",
                                value=time.perf_counter() - started)

    def _process(self) -> Iterator[Any]:
        calls, hist = self.counters.snapshot()
        c = CounterMetricFamily("cityhub_calls", "Calls in and out logged by this process",
                                labels=["interface", "direction", "outcome"])
        for (iface, direction, outcome), n in sorted(calls.items()):
            c.add_metric([iface, direction, outcome], n)
        yield c
        h = HistogramMetricFamily("cityhub_call_duration_seconds",
                                  "Duration of the calls logged by this process",
                                  labels=["interface", "direction"])
        for (iface, direction), (counts, total) in sorted(hist.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                cumulative += n
                buckets.append((_le(bound), cumulative))
            h.add_metric([iface, direction], buckets, total)
        yield h
        hub = self.hub
        sched = hub.scheduler
        yield GaugeMetricFamily("cityhub_scheduler_leader",
                                "1 if this process holds the scheduler lease",
                                value=1.0 if sched is not None and sched.leader else 0.0)
        workers = hub.workers.alive if hub.workers is not None else 0
        yield GaugeMetricFamily("cityhub_delivery_threads",
                                "Delivery threads alive in this process", value=workers)
        buf = hub.call_log_buffer.stats()
        yield GaugeMetricFamily("cityhub_call_log_buffered",
                                "Call-log rows kept in memory while the store is unreachable",
                                value=float(buf.get("buffered", 0)))
        yield CounterMetricFamily("cityhub_call_log_dropped",
                                  "Call-log rows that could not be written at all",
                                  value=float(buf.get("dropped", 0)))
        yield GaugeMetricFamily("cityhub_draining", "1 while this process drains on SIGTERM",
                                value=1.0 if hub.draining else 0.0)
        yield from _group_commit(hub.group_commit)

    def _store(self) -> Iterator[Any]:
        up = GaugeMetricFamily("cityhub_store_up", "1 if the store answered this scrape")
        try:
            figures = self._figures()
        except Exception:  # a store outage is a figure, not a failed scrape
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        depth = GaugeMetricFamily("cityhub_outbox_messages",
                                  "Outbox messages not delivered yet, by status and destination",
                                  labels=["status", "partner"])
        for (status, partner), n in sorted(figures["depth"].items()):
            depth.add_metric([status, partner], n)
        yield depth
        yield GaugeMetricFamily("cityhub_outbox_dead_messages",
                                "Messages that gave up (need an operator)",
                                value=figures["dead"])
        yield GaugeMetricFamily("cityhub_outbox_held_messages",
                                "Pending messages whose interface or partner is switched off",
                                value=figures["held"])
        yield GaugeMetricFamily("cityhub_outbox_oldest_due_seconds",
                                "Age of the oldest message due for delivery (0 if none)",
                                value=figures["oldest_due"])
        yield GaugeMetricFamily("cityhub_scheduler_lease_held",
                                "1 if some process holds the scheduler lease",
                                value=figures["lease_held"])


def _group_commit(group: GroupCommit) -> Iterator[Any]:
    """The intake's shared commits in this process (``store.group_commit``)."""
    commits, units, busy = group.figures()
    yield CounterMetricFamily("cityhub_intake_commits",
                              "Transactions the intake's requests committed in (this process)",
                              value=float(commits))
    yield CounterMetricFamily("cityhub_intake_commit_units",
                              "Requests committed in them (units / commits: the group size)",
                              value=float(units))
    yield CounterMetricFamily("cityhub_intake_write_busy_seconds",
                              "Seconds a leader spent running groups: its rate near 1 means "
                              "the write path is saturated", value=busy)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def store_figures(hub: Hub) -> dict[str, Any]:
    """The shared gauges: four queries, each on an index (``ix_outbox_due``, the lease's
    primary key) and bounded by the number of undelivered messages, never the history."""
    from scheduler import LEASE_NAME

    m = OutboxMessage
    now = utcnow()
    with hub.db.session() as s:
        rows = s.execute(
            select(m.status, m.partner, func.count())
            .where(m.status.in_(_DEPTH_STATUSES))
            .group_by(m.status, m.partner)
            .limit(MAX_PARTNERS * len(_DEPTH_STATUSES))).all()
        oldest = s.scalar(select(func.min(m.next_attempt_at))
                          .where(m.status == PENDING, m.next_attempt_at <= now))
        held = s.scalar(select(func.count()).select_from(m)
                        .where(m.status == PENDING, held_condition()))
        until = s.scalar(select(Lease.until).where(Lease.name == LEASE_NAME))
    depth = {(str(status), str(partner)): int(n) for status, partner, n in rows}
    return {
        "depth": depth,
        "dead": sum(n for (status, _), n in depth.items() if status == DEAD),
        "held": int(held or 0),
        "oldest_due": max((now - oldest) / timedelta(seconds=1), 0.0) if oldest else 0.0,
        "lease_held": 1.0 if until is not None and until > now else 0.0,
    }


# --------------------------------------------------------------------------- access


class MetricsAccess:
    """Who may scrape: config ``metrics.allow`` networks, or the bearer token."""

    def __init__(self, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
                 token: str | None) -> None:
        self.networks, self.token = networks, token

    def allows(self, remote: str | None, authorization: str | None) -> bool:
        if self.token and authorization:
            scheme, _, sent = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                    sent.strip().encode("utf-8", "replace"), self.token.encode()):
                return True
        try:
            address = ipaddress.ip_address(remote or "")
        except ValueError:
            return False
        if getattr(address, "ipv4_mapped", None):
            address = address.ipv4_mapped  # type: ignore[union-attr]
        return any(address in net for net in self.networks)


def _config_error(hub: Hub, key: str, why: str) -> Exception:
    from hub import ConfigError

    return ConfigError(f"{hub.config.path}: metrics.{key}: {why}")


def metrics_access(hub: Hub) -> MetricsAccess:
    """Read and check config ``metrics`` (raises ``ConfigError`` naming the key)."""
    cfg = hub.config.section("metrics")
    unknown = set(cfg) - {"enabled", "allow", "token"}
    if unknown:
        raise _config_error(hub, sorted(unknown)[0], "unknown key (enabled, allow, token)")
    allow = cfg.get("allow", ["127.0.0.1", "::1"])
    if not isinstance(allow, list):
        raise _config_error(hub, "allow", "must be a list of addresses or networks")
    networks = []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
        except ValueError:
            raise _config_error(hub, "allow", f"not an address or network: {entry!r}") from None
    use_token = cfg.get("token", False)
    if not isinstance(use_token, bool):
        raise _config_error(hub, "token", "must be true or false")
    token = None
    if use_token:
        token = os.environ.get(SECRET_ENV) or _secret_from_file(hub)
        if not token or len(token) < 16:
            raise _config_error(hub, "token", f"true, but no secret of 16+ characters in "
                                f"{SECRET_ENV} or {SECRET_KEY} in {hub.config.secrets_file}")
    return MetricsAccess(networks, token)


def _secret_from_file(hub: Hub) -> str | None:
    path = hub.config.secrets_file
    if not path.exists():
        return None
    value = json.loads(path.read_text(encoding="utf-8")).get(SECRET_KEY)
    return str(value) if value else None


# --------------------------------------------------------------------------- endpoint


def register(app: Flask, hub: Hub) -> None:
    """Add ``GET /metrics`` (unless ``metrics.enabled: false``); checks the config now."""
    access = metrics_access(hub)
    enabled = hub.config.section("metrics").get("enabled", True)
    if not isinstance(enabled, bool):
        raise _config_error(hub, "enabled", "must be true or false")
    if not enabled:
        return
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(hub))

    @app.get("/metrics")
    def metrics():  # type: ignore[no-untyped-def]
        if not access.allows(request.remote_addr, request.headers.get("Authorization")):
            return Response("forbidden\n", status=403, mimetype="text/plain")
        return Response(generate_latest(registry),
                        mimetype="text/plain; version=0.0.4; charset=utf-8")
