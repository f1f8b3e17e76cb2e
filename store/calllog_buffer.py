"""Call-log rows that could not be written when their call ended (the store was
unreachable), kept in memory and written by a background flusher once it is back.

Every answered request is accounted for: a request answered 5000 because the database
was down still gets its row, later. The buffer is bounded (``CAPACITY`` rows); what does
not fit, or cannot be written at all, is counted (``dropped``, in ``/healthz`` and for
``/metrics``) and logged, never silently lost. Rows are kept sealed (``call_row``): no
plaintext body waits in memory longer than the call itself.

Rows are inserted with ``ON CONFLICT (ref_id) DO NOTHING``: a row whose first write may
have committed after all (its connection was lost during COMMIT) is not written twice.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.dialects import postgresql, sqlite

from store.calllog import CallRecord, call_row
from store.crypto import DataCipher
from store.db import Database
from store.models import CallLogEntry
from store.resilience import is_disconnect

log = logging.getLogger("cityhub.calllog")

#: Rows kept at most while the store is unreachable.
CAPACITY = 10_000
#: Rows written per transaction by the flusher.
BATCH = 500

_TABLE = CallLogEntry.__table__
_KEYED_INSERT = {
    name: mod.insert(_TABLE).on_conflict_do_nothing(index_elements=["ref_id"])
    for name, mod in (("sqlite", sqlite), ("postgresql", postgresql))
}


def insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert call-log rows, skipping any whose ref_id is stored already."""
    stmt = _KEYED_INSERT.get(conn.dialect.name)
    if stmt is not None:
        conn.execute(stmt, rows)
        return
    from sqlalchemy import select  # any other store: skip the known ref ids first

    known = set(conn.scalars(select(_TABLE.c.ref_id).where(
        _TABLE.c.ref_id.in_([r["ref_id"] for r in rows]))))
    fresh = [r for r in rows if r["ref_id"] not in known]
    if fresh:
        conn.execute(insert(_TABLE), fresh)


class CallLogBuffer:
    """Bounded, thread-safe; a daemon thread writes what it holds every ``interval``
    seconds while it holds anything (started by the first ``add``)."""

    def __init__(self, db: Database, cipher: DataCipher, capacity: int = CAPACITY,
                 interval: float = 1.0) -> None:
        self.db, self.cipher = db, cipher
        self.capacity, self.interval = capacity, interval
        self._rows: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Rows that did not fit or could not be written at all (lost to the call log).
        self.dropped = 0
        #: Rows written late, after their call.
        self.written = 0
        self._last_warning = 0.0

    def add(self, record: CallRecord) -> None:
        self.add_rows([call_row(self.cipher, record)])

    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            room = max(0, self.capacity - len(self._rows))
            self._rows.extend(rows[:room])
            lost = len(rows) - room if len(rows) > room else 0
            self.dropped += lost
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="calllog-flusher")
                self._thread.start()
        if lost:
            self._warn(f"call-log buffer full: {lost} row(s) not kept")

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"buffered": len(self._rows), "written_late": self.written,
                    "dropped": self.dropped}

    def flush(self) -> int:
        """Write what is held, batch by batch; stops at the first batch the store refuses
        (kept for the next try). Returns the rows written."""
        total = 0
        while True:
            with self._lock:  # the batch stays counted as buffered until written
                batch = list(itertools.islice(self._rows, min(BATCH, len(self._rows))))
            if not batch:
                return total
            try:
                with self.db.engine.begin() as conn:
                    insert_rows(conn, batch)
                with self._lock:
                    self.written += len(batch)
                written = len(batch)
            except Exception as exc:
                if is_disconnect(exc):
                    return total
                written = self._one_by_one(batch)
            with self._lock:
                for _ in range(written):
                    self._rows.popleft()
            total += written
            if written < len(batch):  # the store went away meanwhile: next time
                return total

    def _one_by_one(self, batch: list[dict[str, Any]]) -> int:
        """A batch refused for another reason than a lost store: write its rows one by
        one, count those that can never be written as dropped; stop if the store goes
        away meanwhile. Returns how many rows of the batch are settled (written or
        dropped), from its start."""
        for i, row in enumerate(batch):
            try:
                with self.db.engine.begin() as conn:
                    insert_rows(conn, [row])
                with self._lock:
                    self.written += 1
            except Exception as exc:
                if is_disconnect(exc):
                    return i
                with self._lock:
                    self.dropped += 1
                log.exception("call-log row for ref %s cannot be written", row.get("ref_id"))
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
            with self._lock:
                if not self._rows:
                    self._thread = None
                    return

    def close(self, timeout: float = 5.0) -> None:
        """Stop the flusher; one last try to write what is held (counted if it fails)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self.flush()
        with self._lock:
            left = len(self._rows)
            self.dropped += left
            self._rows.clear()
        if left:
            log.error("%d call-log row(s) could not be written before exit", left)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warning > 60:
            self._last_warning = now
            log.error(message)

