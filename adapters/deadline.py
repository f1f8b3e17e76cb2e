"""A wall-clock deadline for one HTTP call, headers and body included.

urllib3's timeouts bound each socket operation, not the call: a peer that sends one byte
every 9 s (of its headers or of its body) under a 10 s read timeout held a delivery
thread for as long as it liked, and the outbox's lease ran out under it, so the message
went out again while its first attempt still ran (the lease check, ``adapters.lease``,
assumes every call ends within connect + read timeout). Here one shared thread shuts the
socket of a call past its deadline down; the blocked read then fails at once and the call
is reported as timed out.

``DeadlinePoolManager`` is a urllib3 ``PoolManager`` whose connections register
themselves with the calling thread's ``deadline`` when a request starts on them.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()


class DeadlineExceeded(Exception):
    """The call ran past its deadline and its socket was shut down."""


class _Watch:
    __slots__ = ("at", "connection", "fired", "done")

    def __init__(self, at: float) -> None:
        self.at, self.connection, self.fired, self.done = at, None, False, False


class _Watchdog:
    """One daemon thread: the calls' deadlines in a heap, the earliest awaited."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch) -> None:
        with self._cond:
            heapq.heappush(self._heap, (watch.at, next(self._order), watch))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="http-deadline",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)  # finished in time: forgotten
                if not self._heap:
                    self._cond.wait(60)
                    continue
                at, _, watch = self._heap[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if watch.done:
                    continue
                watch.fired = True
                # under the lock: a call settling now waits here, and a settled one has
                # not given its connection back to the pool (``settle``) before this
                _shut(watch.connection)


def _shut(connection: Any) -> None:
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # closed meanwhile
        sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


def settle(watch: _Watch) -> bool:
    """End ``watch`` (the watchdog will not shut its socket from now on); whether it had
    fired. Call it before the connection goes back to the pool: once there, another
    call may be using it."""
    with _WATCHDOG._cond:
        watch.done = True
        return watch.fired


@contextmanager
def deadline(seconds: float) -> Iterator[_Watch]:
    """The calls made by this thread inside the block end within ``seconds`` in all:
    past it their socket is shut down. ``watch.fired`` tells afterwards whether it was."""
    watch = _Watch(time.monotonic() + seconds)
    previous = getattr(_local, "watch", None)
    _local.watch = watch
    _WATCHDOG.add(watch)
    try:
        yield watch
    finally:
        settle(watch)
        _local.watch = previous


class _Registering:
    """Mixin: a request started on this connection puts it under the thread's deadline."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        watch = getattr(_local, "watch", None)
        if watch is not None:
            watch.connection = self
            if watch.fired or time.monotonic() >= watch.at:
                raise urllib3.exceptions.TimeoutError("deadline passed before the request")
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Registering, HTTPConnection):
    pass


class _HTTPSConnection(_Registering, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlinePoolManager(urllib3.PoolManager):
    """A PoolManager whose connections honour ``deadline``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
