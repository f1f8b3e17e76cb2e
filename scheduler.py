"""Periodic jobs (APScheduler, in one process at a time).

Retry timing is NOT kept here: it lives in the outbox rows (``next_attempt_at``), so
any number of worker processes share it through the database. APScheduler only runs
periodic jobs, with its default in-memory job store, in the one process that holds
the ``scheduler`` lease row — a lease works the same on SQLite and PostgreSQL, and a
process that dies simply stops renewing it.

Adapters contribute their own jobs with ``periodic_jobs()`` (e.g. the bank's daily
reconciliation instruction).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import delete, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from store.identity_models import EntryHandover, EntryRefusal
from store.models import CallLogEntry, Lease, Nonce, OutboxMessage, utcnow
from store.outbox import IN_FLIGHT, PENDING
from store.resilience import retry_on_disconnect

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy.orm import Session

    from hub import Hub

log = logging.getLogger("cityhub.scheduler")


BEIJING = ZoneInfo("Asia/Shanghai")


def utcnow_aware() -> datetime:
    return datetime.now(UTC)
LEASE_NAME = "scheduler"
#: The departments' rate windows (store/share.py) count per minute; older minutes are
#: kept a while for an operator looking into a 1005, then forgotten.
RATE_WINDOW_KEPT_MINUTES = 60
#: Refused 一网通办 handovers are counted for the per-address throttle (minutes), then forgotten.
ENTRY_REFUSALS_KEPT = timedelta(days=1)


@dataclass(frozen=True)
class PeriodicJob:
    """A job an adapter wants run: APScheduler trigger name and its arguments."""

    id: str
    func: Callable[[], Any]
    trigger: str  # "interval" or "cron"
    args: dict[str, Any]


_LEASE = Lease.__table__
#: Taking a free lease row without a failing statement: a process that is not the
#: leader tries every few seconds, and a duplicate-key error each time would fill the
#: database's log. The portable twin (any other store) catches the unique violation.
_INSERT_LEASE = {
    name: mod.insert(_LEASE).on_conflict_do_nothing(index_elements=["name"])
    .returning(_LEASE.c.name)
    for name, mod in (("sqlite", sqlite), ("postgresql", postgresql))
}


def acquire_lease(hub: Hub, holder: str, seconds: float, now: datetime | None = None) -> bool:
    """Take or renew the named lease; True while this holder has it.

    ``UPDATE ... WHERE`` it is ours or expired, else ``INSERT ... ON CONFLICT DO
    NOTHING``: neither statement fails when another process holds the lease."""
    now = now or utcnow()
    until = now + timedelta(seconds=seconds)

    def attempt() -> bool:
        with hub.db.session() as s:
            taken = s.execute(
                update(Lease)
                .where(Lease.name == LEASE_NAME, (Lease.holder == holder) | (Lease.until < now))
                .values(holder=holder, until=until)
                .execution_options(synchronize_session=False)
            ).rowcount
            if taken:
                return True
            values = {"name": LEASE_NAME, "holder": holder, "until": until}
            stmt = _INSERT_LEASE.get(s.get_bind().dialect.name)
            if stmt is not None:
                return s.execute(stmt, values).first() is not None
        try:  # any other store
            with hub.db.session() as s:
                s.execute(insert(Lease).values(**values))
            return True
        except IntegrityError:
            return False

    return retry_on_disconnect(attempt, "scheduler lease")


def release_lease(hub: Hub, holder: str) -> None:
    """Give the lease up (on shutdown): another process takes it at its next try."""

    def attempt() -> None:
        with hub.db.session() as s:
            s.execute(delete(Lease).where(Lease.name == LEASE_NAME, Lease.holder == holder))

    retry_on_disconnect(attempt, "scheduler lease release")


def recover_expired_leases(hub: Hub) -> int:
    """Put rows whose worker died back to pending (workers would claim them anyway;
    this keeps the admin page's counts honest)."""
    now = utcnow()
    with hub.db.session() as s:
        n = s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.status == IN_FLIGHT, OutboxMessage.lease_until < now)
            .values(status=PENDING, claimed_by=None, lease_until=None, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
    if n:
        log.warning("recovered %d message(s) from expired leases", n)
        if hub.workers is not None:
            hub.workers.wake()
    return n


def refresh_statistics(hub: Hub) -> int:
    """Roll the call log up into the daily table the dashboard reads (past days only)."""
    from admin.stats import refresh_pending

    with hub.db.session() as s:
        return len(refresh_pending(s, tz=hub.overrides.tz))


def prune_handovers(hub: Hub, s: Session, now: datetime) -> int:
    """Forget the 一网通办 handovers whose session ended and whose token expired a session
    lifetime ago: until then the row's unique ``jti`` refuses a replay (a token past its
    ``exp`` is refused by ``adapters.entry_token.verify`` anyway)."""
    from admin.identity_config import identity_of

    lifetime = timedelta(minutes=identity_of(hub.config).entry.session_minutes)
    s.execute(delete(EntryRefusal).where(EntryRefusal.at < now - ENTRY_REFUSALS_KEPT))
    return s.execute(delete(EntryHandover).where(
        EntryHandover.session_expires_at < now, EntryHandover.token_exp < now - lifetime)
    ).rowcount


def housekeeping(hub: Hub) -> dict[str, int]:
    """Forget nonces past the replay window, call-log rows past retention, old sign-in
    failures, ended 一网通办 handovers and past minutes of the departments' rate windows;
    move delivered outbox rows to the archive (store/retention.py)."""
    from admin.auth import prune_login_failures  # keeps Flask out of this module's imports
    from store.retention import archive_delivered, prune_archive
    from store.share import prune_rate

    cfg = hub.config.scheduler
    now = utcnow()
    with hub.db.session() as s:
        nonces = s.execute(
            delete(Nonce).where(Nonce.seen_at < now - timedelta(seconds=cfg.nonce_window_seconds))
        ).rowcount
        calls = s.execute(
            delete(CallLogEntry).where(
                CallLogEntry.started_at < now - timedelta(days=cfg.call_log_retention_days)
            )
        ).rowcount
        login_failures = prune_login_failures(s)
        handovers = prune_handovers(hub, s, now)
        rate = prune_rate(s, now - timedelta(minutes=RATE_WINDOW_KEPT_MINUTES))
    archived = archive_delivered(hub.db, cfg.outbox_archive_days, now)
    pruned = prune_archive(hub.db, cfg.call_log_retention_days, now)
    return {"nonces": nonces, "call_log": calls, "login_failures": login_failures,
            "entry_handovers": handovers, "share_rate_windows": rate, "outbox_archived": archived,
            "outbox_archive_pruned": pruned}


def watch_calendar(hub: Hub) -> bool:
    """Alert from 15 November (Beijing time) when next year's calendar is missing; and
    count again what the calendar could not count before: open sub-cases with no due time
    (their year entered since, by a newer package or by an operator while another
    process took cases on its older snapshot) and every waiting bank instruction. True
    when the alert is open."""
    from admin.deadlines import recount_after_calendar_change
    from store.calendar import seed_from_package, watch_next_year
    from store.due_recount import year_span

    added = seed_from_package(hub.db)
    alerted = watch_next_year(hub.db, utcnow_aware().astimezone(BEIJING).date())
    with hub.db.session() as s:
        recount_after_calendar_change(hub, s, year_span(added), every_instruction=True)
    return alerted


def deadline_digest(hub: Hub) -> list[str]:
    """The day's overdue/due-soon alert per county (admin/deadlines.py)."""
    from admin.deadlines import daily_digest
    from admin.settings import get_setting

    with hub.db.session() as s:
        alerted = daily_digest(s, hub.overrides.current().calendar, utcnow(),
                               int(get_setting(s, "deadline_warning_days")), hub.overrides.tz,
                               dict(hub.city.counties) | hub.overrides.names())
    if hub.numbering.enabled:  # contracts/numbering.md: the two lists of presale projects
        numbering_digest(hub)
    return alerted


def numbering_digest(hub: Hub) -> list[str]:
    """The day's alerts of 逾期未竣工验收 and 已办预售未办施工许可 (store/numbering.py)."""
    from store.numbering import daily_digest

    today = utcnow_aware().astimezone(BEIJING).date()
    with hub.db.session() as s:
        return daily_digest(s, today, hub.overrides.current().calendar,
                            dict(hub.city.counties) | hub.overrides.names())


class HubScheduler:
    """Runs the hub's periodic jobs while this process holds the scheduler lease."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.cfg = hub.config.scheduler
        self.leader = False
        self._stopped = False
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(timezone="Asia/Shanghai",
                                             job_defaults={"coalesce": True, "max_instances": 1})

    def jobs(self) -> list[PeriodicJob]:
        hub = self.hub
        jobs = [
            PeriodicJob("recover-leases", lambda: recover_expired_leases(hub), "interval",
                        {"seconds": 30}),
            PeriodicJob("housekeeping", lambda: housekeeping(hub), "cron",
                        {"hour": self.cfg.housekeeping_hour, "minute": 17}),
            # shortly after midnight, and once at start-up
            PeriodicJob("statistics", lambda: refresh_statistics(hub), "cron",
                        {"hour": 0, "minute": 10, "next_run_time": utcnow_aware()}),
            # daily (and at start-up): is next year's working-day calendar there yet?
            PeriodicJob("calendar", lambda: watch_calendar(hub), "cron",
                        {"hour": 8, "minute": 5, "next_run_time": utcnow_aware()}),
            # each working morning: overdue and due-soon cases, one alert per county
            PeriodicJob("deadline-digest", lambda: deadline_digest(hub), "cron",
                        {"hour": 8, "minute": 30}),
        ]
        for name in hub.config.inbound:
            jobs.extend(getattr(hub.adapter(name), "periodic_jobs", lambda: [])())
        return jobs

    def _guarded(self, job: PeriodicJob) -> Callable[[], None]:
        def run() -> None:
            if not self.leader:
                return
            try:
                job.func()
            except Exception:
                log.exception("job %s failed", job.id)

        return run

    def renew(self) -> None:
        with self._lock:
            if self._stopped:  # stopping: never take the lease back after releasing it
                return
            was = self.leader
            try:
                self.leader = acquire_lease(self.hub, self.holder, self.cfg.lease_seconds)
            except Exception:
                log.exception("could not renew the scheduler lease")
                self.leader = False
            if self.leader != was:
                log.info("scheduler lease %s", "taken" if self.leader else "lost")

    def start(self) -> None:
        self.renew()
        self.scheduler.add_job(self.renew, "interval", seconds=max(1.0, self.cfg.lease_seconds / 3),
                               id="lease", name="lease")
        for job in self.jobs():
            self.scheduler.add_job(self._guarded(job), job.trigger, id=job.id, name=job.id,
                                   **job.args)
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the jobs and give the lease up, so another process leads at its next try
        (not after the lease runs out)."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        with self._lock:
            self._stopped = True
            if self.leader:
                try:
                    release_lease(self.hub, self.holder)
                    log.info("scheduler lease released")
                except Exception:
                    log.exception("could not release the scheduler lease")
                self.leader = False

    def state(self) -> dict[str, Any]:
        jobs = []
        if self.scheduler.running:
            for job in self.scheduler.get_jobs():
                nxt = job.next_run_time
                jobs.append({"id": job.id, "next_run": nxt.isoformat() if nxt else None})
        return {"running": self.scheduler.running, "leader": self.leader, "jobs": jobs}
