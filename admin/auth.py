"""Sign-in: hashed passwords, lock-out after repeated failures, the session cookie,
CSRF tokens on every form, and the ``login_required`` / ``requires`` decorators."""

from __future__ import annotations

import functools
import hmac
import os
import secrets
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

MIN_PASSWORD_LENGTH = 10
CSRF_FIELD = "csrf_token"
#: How long rows of ``admin_login_failures`` are kept (``prune_login_failures``).
LOGIN_FAILURE_RETENTION = timedelta(days=90)


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


# --------------------------------------------------------------------------- sign-in


class LoginResult:
    def __init__(self, user: AdminUser | None, reason: str = "") -> None:
        self.user, self.reason = user, reason


def authenticate(s: Session, username: str, password: str, remote: str | None) -> LoginResult:
    """Check a password; count failures and lock the account after too many."""
    now = utcnow()
    user = s.scalars(select(AdminUser).where(AdminUser.username == username)).first()
    if user is not None and lockout.is_locked(user, now):
        return LoginResult(None, "locked")
    # Always one hash check (against a dummy hash for an unknown user), so the answer's
    # timing does not tell whether the user name exists.
    password_ok = check_password_hash(
        user.password_hash if user is not None else dummy_password_hash(), password)
    if user is None or not user.active or not password_ok:
        s.add(AdminLoginFailure(username=username[:64], remote_addr=remote, at=now))
        if user is not None and lockout.count_failure(s, AdminUser, user, now):
            return LoginResult(None, "locked_now")
        return LoginResult(None, "bad")
    lockout.clear_failures(user)
    user.last_login_at = now
    return LoginResult(user)


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
