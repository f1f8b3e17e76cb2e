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
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")


class StoreSlow(TimeoutError):
    """The check did not answer within the caller's wait (it goes on in the background)."""


class SingleFlight(Generic[T]):
    def __init__(self, check: Callable[[], T], wait: float, name: str) -> None:
        self.check, self.wait, self.name = check, wait, name
        self._lock = threading.Lock()
        self._running: Future[T] | None = None

    def __call__(self) -> T:
        """The answer of the check in flight (or of a new one); ``StoreSlow`` after
        ``wait`` seconds, the check's own exception if it failed."""
        with self._lock:
            running = self._running
            if running is None:
                running = self._running = Future()
                threading.Thread(target=self._run, args=(running,), daemon=True,
                                 name=f"cityhub-{self.name}").start()
        try:
            return running.result(timeout=self.wait)
        except FutureTimeout:
            raise StoreSlow(f"{self.name}: no answer within {self.wait:g} s") from None

    def _run(self, future: Future[T]) -> None:
        try:
            future.set_result(self.check())
        except BaseException as exc:  # handed to every waiting caller
            future.set_exception(exc)
        finally:
            with self._lock:
                self._running = None
