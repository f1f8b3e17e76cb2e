"""One check of the store at a time, and nobody waits for it long: ``SingleFlight``.

``/healthz`` and ``/metrics`` ask the store a few cheap questions. When the store stops
answering without refusing (a network that drops packets, a server frozen), each
question waits for the driver's own time-outs, and every monitoring request that comes
meanwhile took another server thread with it: twenty parallel health checks left the
server no thread for anything else. Here one thread asks, the callers share its answer,
and a caller waits at most ``wait`` seconds before it answers that the store is slow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")

#: Seconds a /healthz or /metrics request waits for the store before it answers "slow".
MONITOR_WAIT = 3.0


class StoreSlow(TimeoutError):
    """The check did not answer within the caller's wait (it goes on in the background)."""


class SingleFlight(Generic[T]):
    """``check`` run by one thread at a time; see the module doc. A check still running
    after ``stale`` seconds (a connection the driver never gives up on) is left to
    itself and the next caller starts a fresh one, so the store's return is seen; but
    never while an earlier abandoned check still runs: at most two checks (two pool
    connections) are ever out, however long the store stays frozen."""

    def __init__(self, check: Callable[[], T], wait: float, name: str,
                 stale: float | None = None) -> None:
        self.check, self.wait, self.name = check, wait, name
        self.stale = max(30.0, 10 * wait) if stale is None else stale
        self._lock = threading.Lock()
        self._running: tuple[Future[T], float] | None = None
        self._abandoned: Future[T] | None = None

    def __call__(self) -> T:
        """The answer of the check in flight (or of a new one); ``StoreSlow`` after
        ``wait`` seconds, the check's own exception if it failed."""
        now = time.monotonic()
        with self._lock:
            stale = self._running is not None and now - self._running[1] > self.stale
            if stale and (self._abandoned is None or self._abandoned.done()):
                self._abandoned = self._running[0]  # type: ignore[index]
                self._running = None
            if self._running is None:
                self._running = (Future(), now)
                threading.Thread(target=self._run, args=(self._running,), daemon=True,
                                 name=f"cityhub-{self.name}").start()
            running = self._running[0]
        try:
            return running.result(timeout=self.wait)
        except FutureTimeout:
            raise StoreSlow(f"{self.name}: no answer within {self.wait:g} s") from None

    def _run(self, flight: tuple[Future[T], float]) -> None:
        future = flight[0]
        try:
            future.set_result(self.check())
        except BaseException as exc:  # handed to every waiting caller
            future.set_exception(exc)
        finally:
            with self._lock:
                if self._running is flight:  # not replaced meanwhile as stale
                    self._running = None
