"""Serialising transactions that must not interleave (a check, then a write it decides)
on one key, e.g. a sign-in throttle's count of an address's failures.

PostgreSQL: a transaction-level advisory lock on the key's 64-bit hash, released when
the transaction ends. SQLite: nothing to do — its write transactions (``BEGIN
IMMEDIATE``, store/db.py) already exclude each other.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session

_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def lock_key(name: str) -> int:
    """A signed 64-bit number for ``name`` (PostgreSQL's advisory lock key)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big",
                          signed=True)


def serialise(s: Session, name: str) -> None:
    """Hold ``name`` until this transaction ends: another transaction serialising on it
    waits here until then."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(_LOCK, {"key": lock_key(name)})
