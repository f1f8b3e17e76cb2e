"""Logins for banks and POS terminals (contract 3.1): scrypt-hashed passwords and
expiring tokens, stored as their SHA-256 so a copy of the database grants nothing."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from admin import lockout
from store.fund_models import FundLogin, FundToken
from store.models import utcnow

_N, _R, _P = 2**14, 8, 1
#: How long a checked token is trusted from memory before the store is asked again.
_CACHE_SECONDS = 10.0


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r),
                         p=int(p), dklen=32)
    return hmac.compare_digest(got, base64.b64decode(digest))


@functools.cache
def _dummy_hash() -> str:
    """Checked for an unknown login, so that the answer takes as long as for a known one
    (one scrypt, not two)."""
    return hash_password(secrets.token_urlsafe(16))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a valid token belongs to."""

    login_id: int
    bank_code: str
    kind: str  # bank | pos
    expires_at: datetime


def add_login(session: Session, bank_code: str, username: str, password: str,
              kind: str = "bank") -> FundLogin:
    if kind not in ("bank", "pos"):
        raise ValueError(f"登录类型 {kind!r} 无效：应为 bank（银行）或 pos（POS）")
    if len(password) < 12:
        raise ValueError("密码至少需要 12 个字符，请换一个更长的密码")
    row = session.scalar(select(FundLogin).where(FundLogin.bank_code == bank_code,
                                                 FundLogin.username == username))
    if row is None:
        row = FundLogin(bank_code=bank_code, username=username, kind=kind)
        session.add(row)
    row.kind, row.active, row.password_hash = kind, True, hash_password(password)
    lockout.clear_failures(row)  # a new password unlocks, as an operator's reset does
    session.flush()
    return row


class Tokens:
    """Issues and checks tokens; a short in-memory cache spares the store on every call."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = timedelta(seconds=ttl_seconds)
        self._cache: dict[str, tuple[Caller, float]] = {}
        self._lock = threading.Lock()

    def issue(self, transaction: Callable[[], AbstractContextManager[Session]],
              bank_code: str, username: str, password: str) -> tuple[str, datetime] | str:
        """A new (token, expiry), else why not: ``bad``, ``locked`` (still locked out, the
        password is not even checked) or ``locked_now`` (this failure locked the login)
        — the operators' lock-out (``admin.lockout``), on ``fund_logins``: the attempt
        is counted first, the password checked outside any transaction, then settled."""
        now = utcnow()
        with transaction() as s:
            login = s.scalar(select(FundLogin).where(
                FundLogin.bank_code == bank_code, FundLogin.username == username,
                FundLogin.active.is_(True)))
            taken = lockout.attempt(s, FundLogin, login.id, now) if login else "go"
            if taken == "locked":
                return "locked"
            login_id, stored = (login.id, login.password_hash) if login else (None, None)
        if login_id is not None and taken == "full":  # a burst: wait for the checks in flight
            taken = lockout.wait_for_attempt(transaction, FundLogin, login_id)
            if taken != "go":
                return taken
        ok = verify_password(password, stored or _dummy_hash())  # same time either way
        if login_id is None:
            return "bad"
        with transaction() as s:
            login = s.get(FundLogin, login_id, populate_existing=True)
            # the login as checked: not given a new password nor disabled meanwhile
            if not ok or login is None or not login.active or login.password_hash != stored:
                return "locked_now" if lockout.failed(s, FundLogin, login_id, now) else "bad"
            lockout.succeeded(s, FundLogin, login_id)
            s.execute(delete(FundToken).where(FundToken.expires_at < now))
            token = secrets.token_urlsafe(32)
            expires = now + self.ttl
            s.add(FundToken(token_hash=token_hash(token), login_id=login.id,
                            bank_code=login.bank_code, kind=login.kind, expires_at=expires))
        return token, expires

    def check(self, session_factory, token: str | None) -> Caller | None:  # type: ignore[no-untyped-def]
        """The caller of a valid, unexpired token, else None."""
        if not token:
            return None
        key = token_hash(token.strip())
        now = utcnow()
        import time

        mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit[1] > mono and hit[0].expires_at > now:
            return hit[0]
        with session_factory() as s:
            row = s.get(FundToken, key)
            if row is None or row.expires_at <= now:
                return None
            login = s.get(FundLogin, row.login_id)
            if login is None or not login.active:
                return None
            caller = Caller(row.login_id, row.bank_code, row.kind, row.expires_at)
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[key] = (caller, mono + _CACHE_SECONDS)
        return caller
