"""The sign-in lock-out, shared by the operators' sign-in (``admin.auth``) and the
banks' ``Authenticate`` (``adapters.fund.auth``): a failure counter on the login's row
and, after ``lockout_threshold`` failures in a row, a lock for ``lockout_minutes``
(both system parameters, ``admin.settings``). And the per-address throttle of the
operators' sign-in and the 一网通办 entry (``address_attempt``).

Works on any mapped class with ``id``, ``failed_logins`` and ``locked_until``. An attempt
is counted as a failure *before* its password is checked (``attempt``, one guarded
UPDATE), and the check runs outside any transaction: parallel guesses can never be more
than the threshold (each had to take a count first), and the slow hash never holds a
transaction (on SQLite the one writer) open. ``failed`` then locks the row once the
count has reached the threshold; ``succeeded`` starts the count again. An attempt that
finds the count full but no lock (checks in flight) waits for them (``wait_for_attempt``,
at most ``FULL_WAIT``) — a client re-authenticating from several threads at once is not
refused — and then locks the row, so a count left behind never locks without an end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from admin.settings import get_setting
from store.locks import serialise
from store.models import utcnow

#: Seconds an attempt waits for the checks in flight when the count is full.
FULL_WAIT = 2.0


def _unlocked(model: Any, now: datetime) -> Any:
    return or_(model.locked_until.is_(None), model.locked_until <= now)


def attempt(s: Session, model: Any, row_id: int, now: datetime) -> str:
    """Count the password check about to run as a failure: ``go`` (counted), ``locked``
    (the login is locked: nothing counted) or ``full`` (``lockout_threshold`` checks are
    counted already and not settled — running in parallel with this one, or left by a
    process that died meanwhile: ``wait_for_attempt``)."""
    threshold = int(get_setting(s, "lockout_threshold"))
    if s.execute(
            update(model).where(model.id == row_id, _unlocked(model, now),
                                model.failed_logins < threshold)
            .values(failed_logins=model.failed_logins + 1)
            .execution_options(synchronize_session=False)).rowcount:
        return "go"
    unlocked = s.scalar(select(model.id).where(model.id == row_id, _unlocked(model, now)))
    return "full" if unlocked is not None else "locked"


def wait_for_attempt(transaction: Callable[[], AbstractContextManager[Session]], model: Any,
                     row_id: int) -> str:
    """``attempt`` found the count full: wait (outside any transaction) up to
    ``FULL_WAIT`` for the checks in flight to settle and try again — ``go``,
    ``locked``, or ``locked_now``: still full, so this call locks the login for
    ``lockout_minutes`` (a success later clears it), and a count left by a crash, or a
    threshold lowered under it, never becomes a lock without an end."""
    deadline = time.monotonic() + FULL_WAIT
    while True:
        time.sleep(0.05)
        with transaction() as s:
            now = utcnow()
            answer = attempt(s, model, row_id, now)
            if answer != "full":
                return answer
            if time.monotonic() >= deadline:
                return "locked_now" if failed(s, model, row_id, now) else "locked"


def failed(s: Session, model: Any, row_id: int, now: datetime) -> bool:
    """The counted check failed; True when this failure locks the login (the count then
    starts again at zero)."""
    threshold = int(get_setting(s, "lockout_threshold"))
    minutes = int(get_setting(s, "lockout_minutes"))
    return bool(s.execute(
        update(model).where(model.id == row_id, _unlocked(model, now),
                            model.failed_logins >= threshold)
        .values(locked_until=now + timedelta(minutes=minutes), failed_logins=0)
        .execution_options(synchronize_session=False)).rowcount)


def succeeded(s: Session, model: Any, row_id: int) -> None:
    """The counted check succeeded: the count and any expired lock are cleared."""
    s.execute(update(model).where(model.id == row_id)
              .values(failed_logins=0, locked_until=None)
              .execution_options(synchronize_session=False))


def clear_failures(row: Any) -> None:
    """A new password (an operator's reset): the counter and any lock are cleared."""
    row.failed_logins = 0
    row.locked_until = None


def address_attempt(s: Session, model: Any, remote: str, now: datetime, limit: int,
                    window: timedelta, **row: Any) -> int | None:
    """Count an attempt from ``remote`` as a failure before it is checked, under a lock
    on the address (``store.locks``), so a burst of parallel attempts gets no more
    checks than ``limit``: the new row's id (``take_back`` it when the attempt was
    good), or None — nothing counted — when ``remote`` has ``limit`` failures within
    ``window``. ``model``: a table of failures with ``remote_addr`` and ``at``."""
    serialise(s, f"{model.__tablename__}:{remote}")
    count = s.scalar(select(func.count()).select_from(model).where(
        model.remote_addr == remote, model.at >= now - window))
    if int(count or 0) >= limit:
        return None
    failure = model(remote_addr=remote, at=now, **row)
    s.add(failure)
    s.flush()
    return int(failure.id)


def take_back(s: Session, model: Any, attempt_id: int) -> None:
    """An attempt counted by ``address_attempt`` was good (or never checked)."""
    s.execute(delete(model).where(model.id == attempt_id))
