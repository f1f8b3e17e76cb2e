"""How long a delivery batch may hold its rows.

A worker claims a batch with a lease (``delivery.lease_seconds``) and calls its rows one
after another. Two rules keep a batch from outliving its lease (and another worker from
sending the same messages again while the first attempt is still running):

- at start-up, a configuration where ``lease_seconds < batch × slowest call`` is refused
  (``check_lease``): even a batch of timeouts fits in its lease;
- while the batch runs, the lease of the rows still to call is renewed before a call
  that might not end inside it (``BatchLease``), and a row whose lease cannot be renewed
  is not called at all.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

#: Seconds at most spent connecting (adapters/http.py): the read timeout is the route's.
CONNECT_CAP = 5.0
#: Seconds kept free at the end of a lease to record the last call's outcome.
RECORD_MARGIN = 5.0


def connect_timeout(timeout: float) -> float:
    """The connect timeout of a call whose (read) timeout is ``timeout``."""
    return min(timeout, CONNECT_CAP)


def worst_call(timeout: float) -> float:
    """Seconds a call with ``timeout`` may take at most: connect plus read."""
    return connect_timeout(timeout) + timeout


def lease_problem(lease_seconds: float, batch: int,
                  timeouts: Iterable[tuple[str, float]]) -> str | None:
    """Why ``lease_seconds`` is too short for a batch of ``batch`` of the slowest of
    ``timeouts`` (``(what, seconds)`` pairs: routes and partners), or None."""
    slowest = max(timeouts, key=lambda t: t[1], default=None)
    if slowest is None:
        return None
    what, timeout = slowest
    need = batch * worst_call(timeout)
    if lease_seconds >= need:
        return None
    return (f"{lease_seconds:g}s is shorter than delivery.batch × the slowest call "
            f"({batch} × ({connect_timeout(timeout):g}s connect + {timeout:g}s read) = "
            f"{need:g}s, {what}): a batch could outlive its lease and its messages be "
            f"sent again; raise lease_seconds or lower batch")


@dataclass
class BatchLease:
    """The lease a worker holds on the rows of one batch (monotonic clock)."""

    seconds: float
    until: float

    @classmethod
    def claimed(cls, seconds: float, at: float | None = None) -> BatchLease:
        return cls(seconds, (time.monotonic() if at is None else at) + seconds)

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def covers(self, timeout: float) -> bool:
        """Whether a call with ``timeout`` and the record of its outcome end inside it."""
        return self.remaining() >= worst_call(timeout) + RECORD_MARGIN

    def renewed(self, at: float) -> None:
        """The rows were renewed by a statement started at ``at`` (monotonic)."""
        self.until = at + self.seconds
