"""The sign-in lock-out, shared by the operators' sign-in (``admin.auth``) and the
banks' ``Authenticate`` (``adapters.fund.auth``): a failure counter on the login's row
and, after ``lockout_threshold`` failures in a row, a lock for ``lockout_minutes``
(both system parameters, ``admin.settings``).

Works on any mapped class with ``id``, ``failed_logins`` and ``locked_until``. An attempt
is counted as a failure *before* its password is checked (``attempt``, one guarded
UPDATE), and the check runs outside any transaction: parallel guesses can never be more
than the threshold (each had to take a count first), and the slow hash never holds a
transaction (on SQLite the one writer) open. ``failed`` then locks the row once the
count has reached the threshold; ``succeeded`` starts the count again. An attempt that
finds the count full but no lock (checks in flight) waits for them (``take_attempt``,
at most ``FULL_WAIT``) — a client re-authenticating from several threads at once is not
refused — and then locks the row, so a count left behind never locks without an end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from admin.settings import get_setting
from store.models import utcnow

#: Seconds an attempt waits for the checks in flight when the count is full.
FULL_WAIT = 2.0


def is_locked(row: Any, now: datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def _unlocked(model: Any, now: datetime) -> Any:
    return or_(model.locked_until.is_(None), model.locked_until <= now)


def attempt(s: Session, model: Any, row_id: int, now: datetime) -> str:
    """Count the password check about to run as a failure: ``go`` (counted), ``locked``
    (the login is locked: nothing counted) or ``full`` (``lockout_threshold`` checks are
    counted already and not settled — running in parallel with this one, or left by a
    process that died meanwhile: ``settle_full`` after a short wait)."""
    threshold = int(get_setting(s, "lockout_threshold"))
    if s.execute(
            update(model).where(model.id == row_id, _unlocked(model, now),
                                model.failed_logins < threshold)
            .values(failed_logins=model.failed_logins + 1)
            .execution_options(synchronize_session=False)).rowcount:
        return "go"
    unlocked = s.scalar(select(model.id).where(model.id == row_id, _unlocked(model, now)))
    return "full" if unlocked is not None else "locked"


def settle_full(s: Session, model: Any, row_id: int, now: datetime) -> bool:
    """Counts still full after ``FULL_WAIT``: lock the login for ``lockout_minutes`` (a
    success later clears it), so a count left by a crash, or a threshold lowered under
    it, never becomes a lock without an end. True when this call locked it."""
    return failed(s, model, row_id, now)


def take_attempt(transaction: Callable[[], AbstractContextManager[Session]], model: Any,
                 row_id: int, now: datetime, first: str) -> str:
    """``first`` is ``attempt``'s answer in the caller's transaction; when ``full``, wait
    (outside any transaction) up to ``FULL_WAIT`` for the checks in flight to settle
    and try again: ``go``, ``locked``, or ``locked_now`` (this call locked the login)."""
    deadline = time.monotonic() + FULL_WAIT
    answer = first
    while answer == "full":
        time.sleep(0.05)
        with transaction() as s:
            answer = attempt(s, model, row_id, utcnow())
            if answer == "full" and time.monotonic() >= deadline:
                return "locked_now" if settle_full(s, model, row_id, now) else "locked"
    return answer


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
