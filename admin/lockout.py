"""The sign-in lock-out, shared by the operators' sign-in (``admin.auth``) and the
banks' ``Authenticate`` (``adapters.fund.auth``): a failure counter on the login's row
and, after ``lockout_threshold`` failures in a row, a lock for ``lockout_minutes``
(both system parameters, ``admin.settings``).

Works on any mapped class with ``id``, ``failed_logins`` and ``locked_until``. An attempt
is counted as a failure *before* its password is checked (``attempt``, one guarded
UPDATE), and the check runs outside any transaction: parallel guesses can never be more
than the threshold (each had to take a count first), and the slow hash never holds a
transaction (on SQLite the one writer) open. ``failed`` then locks the row once the
count has reached the threshold; ``succeeded`` starts the count again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from admin.settings import get_setting


def is_locked(row: Any, now: datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def _unlocked(model: Any, now: datetime) -> Any:
    return or_(model.locked_until.is_(None), model.locked_until <= now)


def attempt(s: Session, model: Any, row_id: int, now: datetime) -> bool:
    """Count the password check about to run as a failure; False (and nothing counted)
    when the login is locked, or when ``lockout_threshold`` checks are counted already
    — failed, or still running in parallel with this one."""
    threshold = int(get_setting(s, "lockout_threshold"))
    return bool(s.execute(
        update(model).where(model.id == row_id, _unlocked(model, now),
                            model.failed_logins < threshold)
        .values(failed_logins=model.failed_logins + 1)
        .execution_options(synchronize_session=False)).rowcount)


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
