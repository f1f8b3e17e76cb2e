"""The manual queue's exports and imports, run in the background (issue #13: a long one
shows its progress and says when it is done).

A job is a row of ``admin_jobs`` (store/admin_models.py) written in the operator's
request and followed by this process's thread pool, which writes its progress
(done/total) as it goes; the work itself (openpyxl, zlib: CPU) runs in a spawned child
process at a lower priority, so it never holds this process's GIL against the requests
(bench/reads_during_intake.py: 10,000-case exports in the web process made the intake
2.7x slower at p50 on PostgreSQL; in the child 0.94x).

Its files — the export's zip, the uploaded workbook — sit under ``<files_dir>/jobs``
(0700, files 0600); an upload is removed when its import ends, an export a day after
(``KEEP``). A job is never left "running" by a process that stopped: at close (SIGTERM)
this process marks its own unfinished jobs failed with ``RESTART``; a process that was
killed has its jobs marked so by the next one to start (``recover``).
"""

from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing
import os
import resource
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from adapters import manual_excel
from store.admin_models import AdminJob
from store.locks import serialise
from store.models import utcnow
from store.private import FILE_MODE, private_dir

if TYPE_CHECKING:
    from admin.perms import Principal
    from hub import Hub

log = logging.getLogger("cityhub.admin.jobs")
EXPORT, IMPORT = "manual_export", "manual_import"
KIND_WORD = {EXPORT: "export", IMPORT: "import"}
#: The job's kind as the operator's failure message begins (「导入未完成：…」).
KIND_VERB = {EXPORT: "导出", IMPORT: "导入"}
UNFINISHED = ("queued", "running")
RESTART = "服务重启，请重新提交"
#: An export's zip (and a finished job's row on the page) is kept this long.
KEEP = timedelta(days=1)
#: A job of another machine whose process has written nothing for this long is lost.
STALE = timedelta(minutes=10)
#: Seconds between two progress writes of a job (and the heartbeat of the others).
BEAT = 1.0
#: Import errors kept with the job (the page lists them; the rest are counted).
MAX_REASONS = 1000
#: Jobs one operator may have queued or running at once (more are refused, not queued).
MAX_UNFINISHED = 3
#: Rows of ended jobs are deleted after this long (their files went after ``KEEP``).
KEEP_ROWS = timedelta(days=30)
HOST = socket.gethostname()[:60]
#: The niceness a job's child process adds to its own (the OS runs the requests first).
JOB_NICE = 10
#: Seconds between two progress messages of a job's child process.
CHILD_BEAT = 0.2
#: A job's child that says nothing for this long is hung: killed, its job failed.
CHILD_SILENCE = 600.0
#: Defaults of config ``admin.job_memory_mb`` and ``admin.job_minutes``: a job's child
#: may map this much memory (RLIMIT_AS) and run this long, then it is stopped and its
#: job failed (``JOB_TOO_BIG``, ``JOB_TOO_LONG``). A workbook of 240 KB whose styles
#: part unpacked to 97 MB took openpyxl 55 s and 3.1 GB before the part limits of
#: adapters.manual_excel; these bound whatever those limits do not foresee.
JOB_MEMORY_MB = 2048
JOB_MINUTES = 30
#: Seconds past ``job_minutes`` a child that has done every row gets to write and
#: commit its result: killed during an import's COMMIT, its job would say 「未导入任何行」
#: of rows that may have been saved.
FINISH_GRACE = 120.0
JOB_TOO_BIG = "超出后台任务可用的内存（{mb} MB）而停止，{left}"
JOB_TOO_LONG = "运行超过 {minutes} 分钟而停止，{left}"
JOB_SILENT = "{minutes} 分钟没有进展而停止，{left}"
#: What an over-limit job left, and what the operator can do, by kind.
LEFT = {EXPORT: "未生成文件；请按区县或事项分批导出",
        IMPORT: "未导入任何行；请只导入本平台导出的工作簿，或按区县或事项分批导出和导入"}
_live: set[str] = set()  # the tokens of the runners alive in this process


class Stopping(Exception):
    """The process is stopping: the job ends failed with ``RESTART``."""


class TooMany(Exception):
    """The operator already has ``MAX_UNFINISHED`` jobs queued or running."""


@dataclass(frozen=True)
class Scope:
    """What the asker could see when asking; a job is only shown to that scope."""

    username: str
    divisions: frozenset[str] | None
    personal: bool = False

    @classmethod
    def of(cls, principal: Principal, personal: bool = False) -> Scope:
        return cls(principal.username, principal.divisions, personal)


def visible(job: AdminJob, principal: Principal) -> bool:
    """Whether ``principal`` may see ``job`` (and download its file): the operator who
    asked, still seeing at least what the job could contain."""
    if job.username != principal.username:
        return False
    asked = None if job.divisions is None else frozenset(json.loads(job.divisions))
    if principal.divisions is not None and (asked is None or not asked <= principal.divisions):
        return False
    if job.county is not None and not principal.sees(job.county):
        return False
    return not (job.personal and not principal.can("view_personal_data"))


def _unfinished(s: Any, username: str) -> int:
    """How many of ``username``'s jobs are queued or running."""
    return int(s.scalar(select(func.count()).select_from(AdminJob).where(
        AdminJob.username == username, AdminJob.state.in_(UNFINISHED))) or 0)


def _alive(owner: str, at: datetime, now: datetime) -> bool:
    """Whether the process ``owner`` (``host:pid:token``) may still be running a job."""
    host, _, rest = owner.partition(":")
    pid, _, token = rest.partition(":")
    if host != HOST:
        return now - at < STALE
    if not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return token in _live
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """This process's background jobs (``hub.jobs``; made by ``admin.app.register``)."""

    def __init__(self, hub: Hub, threads: int = 2) -> None:
        self.hub = hub
        self.token = secrets.token_hex(6)
        self.owner = f"{HOST}:{os.getpid()}:{self.token}"
        self._submitted = False  # close() has jobs of this process to settle
        self.limits = JobLimits.of(hub)
        self.dir = private_dir(hub.config.files_dir / "jobs")
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="admin-job")
        self._stopping = threading.Event()
        #: The progress of this process's running jobs, as it goes (the rows are written
        #: every ``BEAT``; not during SQLite's write transaction of an import).
        self.progress: dict[int, tuple[int, int]] = {}
        _live.add(self.token)
        self.recover()
        self.sweep()
        self._sweeper = threading.Thread(target=self._sweep_hourly, daemon=True,
                                         name="admin-job-sweep")
        self._sweeper.start()

    # -- asking

    def submit_export(self, scope: Scope, county: str | None, item: str | None,
                      label: str, stem: str) -> int:
        """Queue an export of the manual queue as ``scope`` sees it; the job's id."""
        return self._submit(AdminJob(kind=EXPORT, county=county, item=item,
                                     personal=scope.personal, label=label[:200]), scope,
                            {"stem": stem})

    def submit_import(self, scope: Scope, data: bytes, filename: str) -> int:
        """Keep the uploaded workbook (0600) and queue its import."""
        if self.busy(scope.username):  # before writing the file (``_submit`` decides)
            raise TooMany
        name = f"import-{secrets.token_hex(8)}.xlsx"
        self._write(name, data)
        try:
            return self._submit(AdminJob(kind=IMPORT, label=filename[:200], file=name),
                                scope, {})
        except TooMany:
            self._remove(name)
            raise

    def busy(self, username: str) -> bool:
        """Whether ``username`` may not ask for another job now (``MAX_UNFINISHED``)."""
        with self.hub.db.read_session() as s:
            return _unfinished(s, username) >= MAX_UNFINISHED

    def _submit(self, job: AdminJob, scope: Scope, extra: dict[str, Any]) -> int:
        job.state, job.username, job.owner = "queued", scope.username, self.owner
        job.divisions = None if scope.divisions is None else json.dumps(sorted(scope.divisions))
        job.done = job.total = 0
        job.notified = False
        self._submitted = True
        with self.hub.transaction() as s:
            # counted and added under one lock per operator: parallel asks cannot all
            # pass the count (``MAX_UNFINISHED``)
            serialise(s, f"admin-jobs:{scope.username}")
            if _unfinished(s, scope.username) >= MAX_UNFINISHED:
                raise TooMany
            s.add(job)
            s.flush()
            job_id = job.id
        try:
            self._pool.submit(self._run, job_id, scope, extra)
        except RuntimeError:  # the pool is shut down: the process is stopping
            self._finish(job_id, "failed", error=RESTART)
        return job_id

    # -- running

    def _run(self, job_id: int, scope: Scope, extra: dict[str, Any]) -> None:
        with self.hub.transaction() as s:
            claimed = s.execute(update(AdminJob).where(
                AdminJob.id == job_id, AdminJob.state == "queued",
                AdminJob.owner == self.owner).values(
                state="running", updated_at=utcnow())).rowcount
            job = s.get(AdminJob, job_id) if claimed else None
            kind, county, item, file = ((job.kind, job.county, job.item, job.file)
                                        if job is not None else ("", None, None, None))
        if not claimed:
            return
        # an import checks its rows in its write transaction: SQLite's single writer
        # would wait for it, so there the count is kept in memory only
        progress = _Progress(self, job_id, write=kind == EXPORT
                             or self.hub.db.engine.dialect.name != "sqlite")
        try:
            if kind == EXPORT:
                name, size = self._export(job_id, scope, county, item, extra["stem"], progress)
                self._finish(job_id, "done", file=name, result={"size": size},
                             done=progress.done)
            else:
                report = self._import(job_id, scope, file or "", progress)
                self._finish(job_id, "done", result=report, done=progress.done, file=None)
        except Stopping:
            self._finish(job_id, "failed", error=RESTART, file=None)
        except ChildOverLimit as over:
            log.warning("admin job %s (%s) stopped: over its limits", job_id, kind)
            self._finish(job_id, "failed", file=None, error=f"{KIND_VERB[kind]}{over.message}")
        except Exception:
            log.exception("admin job %s (%s) failed", job_id, kind)
            self._finish(job_id, "failed", file=None,
                         error=f"{KIND_VERB[kind]}未完成：内部错误（详见任务 {job_id} 的日志），"
                               "请重新提交；再次失败请联系系统管理员")
        finally:
            self.progress.pop(job_id, None)
            if kind == IMPORT and file:
                self._remove(file)

    def _export(self, job_id: int, scope: Scope, county: str | None, item: str | None,
                stem: str, progress: _Progress) -> tuple[str, int]:
        name = f"export-{job_id}-{secrets.token_hex(8)}.zip"
        path = self.dir / name
        with self.hub.transaction() as s:  # named first: a killed process's part is found
            s.execute(update(AdminJob).where(AdminJob.id == job_id).values(file=name))
        try:
            # created here, empty: the child only opens it, so a file the next start
            # removed (this process killed meanwhile) is never written again
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
            self._in_child(job_id, EXPORT, (str(path), stem, county, item, scope.personal,
                                            _listed(scope.divisions)), progress)
        except BaseException:
            self._remove(name)
            raise
        return name, path.stat().st_size

    def _import(self, job_id: int, scope: Scope, file: str,
                progress: _Progress) -> dict[str, Any]:
        """The import's report (as ``_report_json``)."""
        return self._in_child(job_id, IMPORT, (str(self.dir / Path(file).name),
                                               scope.username, _listed(scope.divisions)),
                              progress)

    def _in_child(self, job_id: int, kind: str, args: tuple[Any, ...],
                  progress: _Progress) -> Any:
        """Run a job's work in a child process at a lower CPU priority (``JOB_NICE``):
        reading and writing workbooks is CPU work (openpyxl, zlib) that in this process
        would hold the GIL against the requests; there the OS gives the requests the CPU
        first. The child reports progress through a pipe, which this thread writes
        (``_Progress``); it is killed when this process stops. Its result, or
        ``ChildFailed``."""
        ctx = multiprocessing.get_context("spawn")
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=job_in_child, name=f"admin-{KIND_WORD[kind]}-{job_id}",
                            daemon=True, args=(self.hub.config, kind, args, send, os.getpid(),
                                               self.limits.memory_mb))
        try:
            child.start()
            send.close()
            return _follow(child, receive, progress, self.limits, kind)
        except BaseException:
            send.close()
            if child.pid is not None:
                child.kill()
                child.join()
            raise
        finally:
            receive.close()

    def _finish(self, job_id: int, state: str, *, error: str | None = None,
                result: Any = None, done: int | None = None, **values: Any) -> None:
        now = utcnow()
        values.update(state=state, error=error, finished_at=now, updated_at=now)
        if result is not None:
            values["result"] = json.dumps(result, ensure_ascii=False)
        with self.hub.transaction() as s:
            job = s.get(AdminJob, job_id)
            if job is None:
                return
            if done is not None and state == "done":
                values["done"] = values["total"] = max(done, job.total)
            for key, value in values.items():
                setattr(job, key, value)
            if job.kind == IMPORT and result is not None:
                self.hub.audit(s, job.username, "import_manual", job.label[:128], {
                    "applied": result.get("applied", 0), "errors": result.get("error_count", 0)})

    # -- files

    def _write(self, name: str, data: bytes) -> None:
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)

    def _remove(self, name: str) -> None:
        try:
            (self.dir / Path(name).name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove job file %s: %s", name, exc.strerror)

    def path(self, job: AdminJob) -> Path | None:
        """The export's zip, while it is kept."""
        if job.kind != EXPORT or job.state != "done" or not job.file:
            return None
        path = self.dir / Path(job.file).name
        return path if path.is_file() else None

    # -- housekeeping

    def recover(self) -> None:
        """Mark failed the unfinished jobs whose process is gone (killed, or lost)."""
        now = utcnow()
        with self.hub.transaction() as s:
            rows = s.execute(select(AdminJob.id, AdminJob.owner, AdminJob.updated_at,
                                    AdminJob.kind, AdminJob.file)
                             .where(AdminJob.state.in_(UNFINISHED))).all()
            lost = [r for r in rows if not _alive(r.owner, r.updated_at, now)]
            if lost:
                s.execute(update(AdminJob).where(
                    AdminJob.id.in_([r.id for r in lost]),
                    AdminJob.state.in_(UNFINISHED)).values(
                    state="failed", error=RESTART, file=None, finished_at=now, updated_at=now))
        for r in lost:
            log.warning("admin job %s was unfinished when its process stopped: failed", r.id)
            if r.file:
                self._remove(r.file)

    def sweep(self) -> None:
        """Remove the files of jobs that ended more than ``KEEP`` ago (and strays)."""
        cutoff = utcnow() - KEEP
        with self.hub.transaction() as s:
            rows = s.execute(select(AdminJob.id, AdminJob.file).where(
                AdminJob.finished_at < cutoff, AdminJob.file.is_not(None))).all()
            if rows:
                s.execute(update(AdminJob).where(AdminJob.id.in_([r.id for r in rows]))
                          .values(file=None))
            s.execute(delete(AdminJob).where(AdminJob.finished_at < utcnow() - KEEP_ROWS))
            kept = set(s.scalars(select(AdminJob.file).where(AdminJob.file.is_not(None))))
        for r in rows:
            self._remove(r.file)
        limit = time.time() - KEEP.total_seconds()
        for path in self.dir.iterdir():
            if path.name not in kept and path.stat().st_mtime < limit:
                self._remove(path.name)

    def _sweep_hourly(self) -> None:
        while not self._stopping.wait(3600):
            try:
                self.sweep()
            except Exception:
                log.exception("sweeping the admin jobs' files failed")

    def close(self) -> None:
        """Stop: a running job stops at its next step; this process's unfinished jobs
        are marked failed (``RESTART``), not left running."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._sweeper.join(5)
        _live.discard(self.token)
        if not self._submitted:
            return
        now = utcnow()
        try:
            with self.hub.transaction() as s:
                files = list(s.scalars(select(AdminJob.file).where(
                    AdminJob.owner == self.owner, AdminJob.state.in_(UNFINISHED),
                    AdminJob.file.is_not(None))))
                s.execute(update(AdminJob).where(
                    AdminJob.owner == self.owner, AdminJob.state.in_(UNFINISHED)).values(
                    state="failed", error=RESTART, file=None, finished_at=now,
                    updated_at=now))
        except SQLAlchemyError as exc:  # the store is down: the next start settles them
            log.warning("unfinished jobs left for the next start to mark failed: %s",
                        type(exc).__name__)
            return
        for name in files:
            self._remove(name)


class _Progress:
    """``progress(done, total)`` for manual_excel: written at most every ``BEAT``
    seconds (with the heartbeat of this process's other unfinished jobs)."""

    def __init__(self, runner: JobRunner, job_id: int, write: bool = True) -> None:
        self.runner, self.job_id, self.write = runner, job_id, write
        self.done, self.last = 0, 0.0

    def check(self) -> None:
        if self.runner._stopping.is_set():
            raise Stopping

    def __call__(self, done: int, total: int) -> None:
        self.check()
        self.done = done
        self.runner.progress[self.job_id] = (done, total)
        now = time.monotonic()
        if not self.write or (now - self.last < BEAT and done not in (0, total)):
            return
        self.last = now
        at = utcnow()
        with self.runner.hub.transaction() as s:
            s.execute(update(AdminJob).where(AdminJob.id == self.job_id).values(
                done=done, total=total, updated_at=at))
            s.execute(update(AdminJob).where(
                AdminJob.owner == self.runner.owner, AdminJob.state.in_(UNFINISHED),
                AdminJob.id != self.job_id).values(updated_at=at))


class ChildFailed(Exception):
    """A job's child process ended without its result (its reason logged)."""


class ChildOverLimit(ChildFailed):
    """A job's child ran out of its memory or its time (``JobLimits``): ``message`` says
    so to the operator."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class JobLimits:
    """What one job's child may use (config ``admin.job_memory_mb``, ``job_minutes``)."""

    memory_mb: int = JOB_MEMORY_MB
    minutes: float = JOB_MINUTES

    @classmethod
    def of(cls, hub: Hub) -> JobLimits:
        """The limits from the hub's config; a wrong value stops the start-up."""
        from hub import ConfigError

        cfg = hub.config.section("admin")
        where = f"{hub.config.path}: admin"
        memory, minutes = cfg.get("job_memory_mb", JOB_MEMORY_MB), cfg.get(
            "job_minutes", JOB_MINUTES)
        if isinstance(memory, bool) or not isinstance(memory, int) or not 256 <= memory <= 1 << 20:
            raise ConfigError(f"{where}.job_memory_mb: a whole number of MB from 256 "
                              f"(got {memory!r})")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) \
                or not 0.05 <= minutes <= 24 * 60:
            raise ConfigError(f"{where}.job_minutes: minutes from 0.05 to 1440 "
                              f"(got {minutes!r})")
        return cls(memory, float(minutes))

    def too_big(self, kind: str) -> str:
        return JOB_TOO_BIG.format(mb=self.memory_mb, left=LEFT[kind])

    def too_long(self, kind: str) -> str:
        return JOB_TOO_LONG.format(minutes=f"{self.minutes:g}", left=LEFT[kind])


def _listed(divisions: frozenset[str] | None) -> list[str] | None:
    return None if divisions is None else sorted(divisions)


def _follow(child: Any, receive: Any, progress: _Progress, limits: JobLimits,
            kind: str) -> Any:
    """Pass the child's progress on until it sends its result; raise when it fails,
    dies, hangs, runs past ``limits`` or this process stops (``progress`` raises
    ``Stopping``)."""
    heard = time.monotonic()
    deadline = heard + limits.minutes * 60
    finishing = False  # every row done: the child writes its result (an import commits)
    while True:
        late = time.monotonic() > deadline + (FINISH_GRACE if finishing else 0)
        if late and not receive.poll():  # a result already sent is taken, not killed
            raise ChildOverLimit(limits.too_long(kind))  # the caller kills it
        if receive.poll(CHILD_BEAT):
            try:
                message = receive.recv()
            except EOFError:  # the child died without a word
                message = ("failed", f"exit code {child.exitcode}")
            heard = time.monotonic()
            if message[0] == "progress":
                progress(message[1], message[2])
                finishing = 0 < message[2] <= message[1]
                continue
            child.join(30)
            if message[0] == "done" and child.exitcode == 0:
                return message[1]
            if message[0] == "failed" and message[1] == "MemoryError":
                raise ChildOverLimit(limits.too_big(kind))
            raise ChildFailed(message[1] if message[0] == "failed" else "no result")
        progress.check()  # a stopping process raises here
        if not child.is_alive() and not receive.poll():
            raise ChildFailed(f"exit code {child.exitcode}")
        if time.monotonic() - heard > CHILD_SILENCE:  # hung: the caller kills it
            raise ChildOverLimit(JOB_SILENT.format(minutes=f"{CHILD_SILENCE / 60:g}",
                                                   left=LEFT[kind]))


def _export_work(hub: Hub, report: manual_excel.Progress, path: str, stem: str,
                 county: str | None, item: str | None, personal: bool,
                 divisions: list[str] | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # the parent created it (0600)
    with os.fdopen(fd, "wb") as out:
        manual_excel.export_bundle(hub, out, stem, county, item, show_personal_data=personal,
                                   divisions=divisions, progress=report)


def _import_work(hub: Hub, report: manual_excel.Progress, path: str, username: str,
                 divisions: list[str] | None) -> dict[str, Any]:
    data = Path(path).read_bytes()
    return _report_json(manual_excel.import_workbook(hub, data, username, progress=report,
                                                     divisions=divisions))


_CHILD_WORK: dict[str, Callable[..., Any]] = {EXPORT: _export_work, IMPORT: _import_work}


def job_in_child(config: Any, kind: str, args: tuple[Any, ...], send: Any,
                 parent: int, memory_mb: int = JOB_MEMORY_MB) -> None:
    """A job's child process (spawned, so it shares no lock or connection with the web
    process): its own hub on the same configuration does the work and sends its result.
    It dies with the web process (a SIGKILLed ``hub.py serve`` leaves no job running),
    and may map at most ``memory_mb`` (past it, an allocation raises MemoryError)."""
    _die_with_parent(parent)
    resource.setrlimit(resource.RLIMIT_AS, _memory_limit(memory_mb))
    # a stop (Ctrl-C, systemd's SIGTERM to the whole group) is the web process's to
    # handle: it kills this child and fails the job with RESTART
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(JOB_NICE)
    import logsafe  # the hub's formatter: no exception text (it may hold personal data)
    from hub import LOG_FORMAT, Hub

    logsafe.install(logging.WARNING, LOG_FORMAT)

    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= CHILD_BEAT or done in (0, total):
            last[0] = now
            send.send(("progress", done, total))

    hub = None
    out_of_memory = False
    try:
        hub = Hub(config)
        send.send(("done", _CHILD_WORK[kind](hub, report, *args)))
    except MemoryError:
        # Nothing more here: the traceback holds the frames that hold the data, and
        # formatting it would need the memory there is none of. It goes with this block.
        out_of_memory = True
    except Exception as exc:
        logging.getLogger("cityhub.admin.jobs").exception("admin job (%s) failed", kind)
        send.send(("failed", type(exc).__name__))
    finally:
        if not out_of_memory:
            _end_child(hub, send)
    if out_of_memory:
        resource.setrlimit(resource.RLIMIT_AS, _memory_limit(memory_mb, room=True))
        logging.getLogger("cityhub.admin.jobs").warning(
            "admin job (%s) stopped: past its memory limit (%s MB)", kind, memory_mb)
        send.send(("failed", "MemoryError"))
        _end_child(hub, send)


def _end_child(hub: Hub | None, send: Any) -> None:
    try:
        if hub is not None:
            hub.close()
    finally:
        send.close()


#: Memory a child may map beyond its limit once it has run out, to report so.
_ROOM_MB = 128


def _memory_limit(memory_mb: int, room: bool = False) -> tuple[int, int]:
    """RLIMIT_AS (soft, hard) for a job's child: ``memory_mb``, or with ``room`` the
    ``_ROOM_MB`` above it that the hard limit keeps for its last words."""
    soft = (memory_mb + (_ROOM_MB if room else 0)) << 20
    return soft, (memory_mb + _ROOM_MB) << 20


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the thread that started it ends (prctl
    PR_SET_PDEATHSIG); a parent already gone ends it now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _report_json(report: manual_excel.ImportReport) -> dict[str, Any]:
    return {"applied": report.applied, "error_count": len(report.errors),
            "errors": [list(e) for e in report.errors[:MAX_REASONS]],
            "skipped": [list(e) for e in report.skipped[:MAX_REASONS]],
            "skipped_count": len(report.skipped)}


def report_of(job: AdminJob) -> manual_excel.ImportReport | None:
    """A finished import's report, as the page shows it."""
    if job.kind != IMPORT or job.state != "done" or not job.result:
        return None
    data = json.loads(job.result)
    return manual_excel.ImportReport(
        applied=int(data.get("applied", 0)),
        skipped=[tuple(e) for e in data.get("skipped", [])],  # type: ignore[misc]
        errors=[tuple(e) for e in data.get("errors", [])])  # type: ignore[misc]
