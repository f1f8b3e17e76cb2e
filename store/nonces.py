"""Signing nonces seen per app id: a replayed nonce within the window is refused (1003).

One statement per request: ``INSERT ... ON CONFLICT DO NOTHING`` on the ``nonces``
primary key (app id, nonce). A conflict means the nonce was seen before; it is only a
replay if that sighting is still inside the window (housekeeping deletes old rows once
a day, so a stale row is refreshed rather than counted).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, insert, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.driver import DriverStatement
from store.models import Nonce, utcnow

_TABLE = Nonce.__table__
#: Built once: the statement is the same on every request, only its parameters change.
_INSERT_NEW = {
    name: DriverStatement(mod.insert(_TABLE).on_conflict_do_nothing().returning(_TABLE.c.nonce),
                          ("app_id", "nonce", "seen_at"))
    for name, mod in (("sqlite", sqlite), ("postgresql", postgresql))
}


def insert_new(session: Session | Connection, app_id: str, nonce: str, now: datetime) -> bool:
    values = {"app_id": app_id, "nonce": nonce, "seen_at": now}
    conn = session.connection() if isinstance(session, Session) else session
    stmt = _INSERT_NEW.get(conn.dialect.name)
    if stmt is not None:
        # RETURNING, not rowcount: an ORM-level insert reports no rowcount on PostgreSQL
        return bool(stmt.execute(conn, values))
    try:  # any other store: a unique violation means it was there
        with conn.begin_nested():
            conn.execute(insert(_TABLE), values)
        return True
    except IntegrityError:
        return False


def remember(session: Session | Connection, app_id: str, nonce: str, window_seconds: int,
             now: datetime | None = None) -> bool:
    """Record ``nonce`` for ``app_id``; False if it was already seen within the window."""
    now = now or utcnow()
    if insert_new(session, app_id, nonce, now):
        return True
    refreshed = session.execute(
        update(Nonce)
        .where(Nonce.app_id == app_id, Nonce.nonce == nonce,
               Nonce.seen_at < now - timedelta(seconds=window_seconds))
        .values(seen_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    return refreshed == 1
