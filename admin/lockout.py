"""The sign-in lock-out, shared by the operators' sign-in (``admin.auth``) and the
banks' ``Authenticate`` (``adapters.fund.auth``): a failure counter on the login's row
and, after ``lockout_threshold`` failures in a row, a lock for ``lockout_minutes``
(both system parameters, ``admin.settings``).

Works on any mapped class with ``id``, ``failed_logins`` and ``locked_until``. Both
steps are single guarded UPDATEs, so parallel failures each count and exactly one of
them locks the row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from admin.settings import get_setting


def is_locked(row: Any, now: datetime) -> bool:
    return row.locked_until is not None and row.locked_until > now


def count_failure(s: Session, model: Any, row: Any, now: datetime) -> bool:
    """Count one failed sign-in of ``row``; True when this failure locks it (the counter
    then starts again at zero)."""
    threshold = int(get_setting(s, "lockout_threshold"))
    minutes = int(get_setting(s, "lockout_minutes"))
    s.execute(update(model).where(model.id == row.id)
              .values(failed_logins=model.failed_logins + 1)
              .execution_options(synchronize_session=False))
    locked = s.execute(update(model).where(model.id == row.id,
                                           model.failed_logins >= threshold)
                       .values(locked_until=now + timedelta(minutes=minutes), failed_logins=0)
                       .execution_options(synchronize_session=False)).rowcount
    s.refresh(row)
    return bool(locked)


def clear_failures(row: Any) -> None:
    """A successful sign-in: the counter and any expired lock are cleared."""
    row.failed_logins = 0
    row.locked_until = None
