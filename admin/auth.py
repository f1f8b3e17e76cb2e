"""Sign-in: hashed passwords, lock-out after repeated failures (per user, and per
source address across user names), the session cookie, CSRF tokens on every form, and
the ``requires`` decorator."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import abort, g, redirect, request, session, url_for
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from admin import lockout
from admin.perms import Forbidden, Principal, load_principal
from store.admin_models import AdminLoginFailure, AdminUser
from store.models import utcnow

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.admin")

MIN_PASSWORD_LENGTH = 10
CSRF_FIELD = "csrf_token"
#: How long rows of ``admin_login_failures`` are kept (``prune_login_failures``).
LOGIN_FAILURE_RETENTION = timedelta(days=90)
#: Failed sign-ins from one source address, over all user names, after which that
#: address is refused (every user name, known or not) until the window has moved on.
#: Config ``admin.address_failure_limit`` / ``admin.address_failure_minutes``.
ADDRESS_FAILURE_LIMIT = 20
ADDRESS_FAILURE_WINDOW = timedelta(minutes=15)


def secret_key(hub: Hub) -> bytes:
    """The Flask secret key: ``HUB_ADMIN_SECRET_KEY``, else derived from the data key."""
    env = os.environ.get("HUB_ADMIN_SECRET_KEY")
    if env:
        return env.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cityhub",
                info=b"cityhub-admin-session-v1").derive(hub.secrets.data_key())


def check_password_policy(password: str) -> str | None:
    """The reason a password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"密码至少 {MIN_PASSWORD_LENGTH} 个字符"
    if password.isdigit() or password.isalpha():
        return "密码须同时包含字母和数字或符号"
    return None


def hash_password(password: str) -> str:
    return generate_password_hash(password)


@functools.cache
def dummy_password_hash() -> str:
    """A hash of a random password, made like real ones (same method and cost): checked
    when the user name is unknown so that sign-in takes as long as for a known user."""
    return hash_password(secrets.token_urlsafe(24))


# --------------------------------------------------------------------------- lock-out
# Kept in small functions of their own: the bank's SOAP ``Authenticate`` may share them.


def failure_key(key: bytes, username: str) -> str:
    """The keyed hash (HMAC-SHA256, hex) a failed sign-in's user name is stored as: the
    same name gives the same key, the name itself is not kept (it may be a password
    typed in the wrong field)."""
    return hmac.new(key, username.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def failure_hash_key(hub: Hub) -> bytes:
    """The HMAC key of ``failure_key``, derived from the data key."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"cityhub",
                info=b"cityhub-login-failure-v1").derive(hub.secrets.data_key())


def source_address(remote: str | None, forwarded_for: str | None,
                   trusted_proxies: frozenset[str]) -> str:
    """The address a sign-in comes from: the peer's, unless the peer is a configured
    trusted proxy (``admin.trusted_proxies``); then the right-most address of
    ``X-Forwarded-For`` that is not itself a trusted proxy. Never the header otherwise:
    anyone can send it."""
    address = remote or "-"
    if address not in trusted_proxies or not forwarded_for:
        return address[:64]
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            hop = str(ipaddress.ip_address(hop))
        except ValueError:
            return address[:64]  # a malformed chain: the proxy itself
        if hop not in trusted_proxies:
            return hop
    return address[:64]


# --------------------------------------------------------------------------- sign-in


@dataclass(frozen=True)
class Throttle:
    """The per-address throttle's settings and the key user names are hashed with."""

    hash_key: bytes
    limit: int = ADDRESS_FAILURE_LIMIT
    window: timedelta = ADDRESS_FAILURE_WINDOW


class LoginResult:
    def __init__(self, user: AdminUser | None, reason: str = "") -> None:
        self.user, self.reason = user, reason


def authenticate(transaction: Callable[[], AbstractContextManager[Session]], username: str,
                 password: str, remote: str, throttle: Throttle) -> LoginResult:
    """Check a password; refuse a source address with too many recent failures; count
    failures and lock the account after too many.

    Two short transactions around the password check, which holds none (on SQLite the
    one writer would wait for the hash): the first counts the attempt as a failure of
    the account (``lockout.attempt``) and of the address (a failure row, serialised on
    the address so parallel guesses cannot all pass the throttle's count), the second
    settles it — the failure kept and the account locked once it reached the
    threshold, or both taken back on success."""
    now = utcnow()
    with transaction() as s:
        failure_id = lockout.address_attempt(
            s, AdminLoginFailure, remote, now, throttle.limit, throttle.window,
            username=failure_key(throttle.hash_key, username))
        if failure_id is None:
            log.warning("admin sign-in refused: too many failures from %s", remote)
            return LoginResult(None, "throttled")
        user = s.scalars(select(AdminUser).where(AdminUser.username == username)).first()
        taken = lockout.attempt(s, AdminUser, user.id, now) if user is not None else "go"
        if taken == "locked":  # refused without a check: not the address's failure
            lockout.take_back(s, AdminLoginFailure, failure_id)
            return LoginResult(None, "locked")
        user_id, stored = (user.id, user.password_hash) if user is not None else (None, None)
    if user_id is not None and taken == "full":  # a burst: wait for the checks in flight
        taken = lockout.wait_for_attempt(transaction, AdminUser, user_id)
        if taken != "go":
            with transaction() as s:
                lockout.take_back(s, AdminLoginFailure, failure_id)
            return LoginResult(None, taken)
    # Always one hash check (against a dummy hash for an unknown user), so the answer's
    # timing does not tell whether the user name exists.
    password_ok = check_password_hash(stored or dummy_password_hash(), password)
    with transaction() as s:
        signed_in = (s.get(AdminUser, user_id, populate_existing=True)
                     if user_id is not None else None)
        # the account as checked: not reset (another hash) nor disabled meanwhile
        if (signed_in is None or not password_ok or not signed_in.active
                or signed_in.password_hash != stored):
            if user_id is not None and lockout.failed(s, AdminUser, user_id, now):
                return LoginResult(None, "locked_now")
            # as much work as a known account's failure (the timing tells nothing)
            s.execute(update(AdminLoginFailure).where(AdminLoginFailure.id == failure_id)
                      .values(at=now).execution_options(synchronize_session=False))
            return LoginResult(None, "bad")
        lockout.take_back(s, AdminLoginFailure, failure_id)
        lockout.succeeded(s, AdminUser, user_id)
        s.refresh(signed_in)
        signed_in.last_login_at = now
        return LoginResult(signed_in)


def throttle_of(hub: Hub) -> Throttle:
    """The throttle from config ``admin`` (``address_failure_limit``, ``_minutes``)."""
    cfg = hub.config.section("admin")
    return Throttle(failure_hash_key(hub),
                    int(cfg.get("address_failure_limit", ADDRESS_FAILURE_LIMIT)),
                    timedelta(minutes=float(cfg.get("address_failure_minutes",
                                                    ADDRESS_FAILURE_WINDOW.seconds / 60))))


def trusted_proxies(hub: Hub) -> frozenset[str]:
    """Config ``admin.trusted_proxies``: addresses of reverse proxies whose
    ``X-Forwarded-For`` is believed (none by default)."""
    raw = hub.config.section("admin").get("trusted_proxies") or []
    return frozenset(str(ipaddress.ip_address(str(a).strip())) for a in raw)


def prune_login_failures(s: Session, older_than: timedelta = LOGIN_FAILURE_RETENTION,
                         now: datetime | None = None) -> int:
    """Delete failed sign-ins recorded more than ``older_than`` ago; how many went.
    (The lock-out counts on ``admin_users.failed_logins``, not on these rows.)"""
    cutoff = (now or utcnow()) - older_than
    result = s.execute(delete(AdminLoginFailure).where(AdminLoginFailure.at < cutoff)
                       .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)


def start_session(user: AdminUser) -> None:
    session.clear()
    session["uid"] = user.id
    session["epoch"] = user.session_epoch
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    session.permanent = True


def end_session(s: Session) -> None:
    uid = session.get("uid")
    if uid is not None:
        s.execute(update(AdminUser).where(AdminUser.id == uid)
                  .values(session_epoch=AdminUser.session_epoch + 1)
                  .execution_options(synchronize_session=False))
    session.clear()


def current_principal(s: Session) -> Principal | None:
    """The signed-in principal for this request, checked against the store each time."""
    uid, epoch = session.get("uid"), session.get("epoch")
    if uid is None:
        return None
    user = s.get(AdminUser, uid)
    if user is None or not user.active or user.session_epoch != epoch:
        session.clear()
        return None
    return load_principal(s, user)


# --------------------------------------------------------------------------- CSRF


def csrf_token() -> str:
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request whose token does not match the session's."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.form.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token") or ""
    expected = session.get(CSRF_FIELD) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="CSRF 校验失败，请刷新页面后重试")


# --------------------------------------------------------------------------- decorators


def requires(function: str | None = None):  # type: ignore[no-untyped-def]
    """Require a signed-in principal (and the function, if given) for a view."""

    def decorate(view):  # type: ignore[no-untyped-def]
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
            principal: Principal | None = g.get("principal")
            if principal is None:
                return redirect(url_for("admin.login", next=request.full_path))
            if function and not principal.can(function):
                raise Forbidden(function)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def is_username(s: Session, username: str) -> bool:
    """Whether an account has this user name (for the audit of a failed sign-in)."""
    return s.scalars(select(AdminUser.id).where(AdminUser.username == username)
                     .limit(1)).first() is not None
