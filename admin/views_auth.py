"""Sign-in and sign-out pages: the local password form (while ``identity.local_password``
allows it) and single sign-on through the province (admin/sso.py)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from authlib.integrations.base_client import MismatchingStateError
from flask import current_app, flash, g, redirect, request, session, url_for
from sqlalchemy.exc import IntegrityError

from admin import auth, sso
from admin.identity_config import IdentitySettings
from admin.web import admin_path, bp, hub, render

log = logging.getLogger("cityhub.admin.sso")

_REASONS = {
    "bad": "用户名或密码不正确",
    "locked": "账户因多次登录失败已被锁定，请稍后再试或联系管理员",
    "locked_now": "登录失败次数过多，账户已被锁定",
    "throttled": "来自您所在地址的登录失败次数过多，请稍后再试",
    "no_local": "本平台已关闭用户名密码登录，请使用省统一身份认证登录",
}


def _identity() -> IdentitySettings:
    return current_app.extensions["cityhub_identity"]


def _safe_next(target: str | None) -> str:
    """A path under /admin/ only (``admin.web.admin_path``), else the dashboard."""
    return admin_path(target, url_for("admin.dashboard"))


def _login_page(error: str | None = None, status: int = 200) -> tuple[str, int]:
    identity = _identity()
    return render("login.html", error=error, sso=identity.sso,
                  local_password=identity.local_password,
                  next=_safe_next(request.args.get("next"))), status


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        if g.principal is not None:
            return redirect(url_for("admin.dashboard"))
        return _login_page()
    if not _identity().local_password:
        return _login_page(_REASONS["no_local"], 403)
    username = request.form.get("username", "").strip()[:256]
    password = request.form.get("password", "")
    h = hub()
    remote = _remote(h)
    throttle = auth.throttle_of(h)
    result = auth.authenticate(h.transaction, username, password, remote, throttle)
    with h.transaction() as s:
        if result.user is not None:
            h.audit(s, username, "login", username)
            auth.start_session(result.user)
        elif result.reason != "throttled":  # (those are logged, not each audited)
            # the name as typed only when it is an account's; else its keyed hash
            known = auth.is_username(s, username)
            key = auth.failure_key(throttle.hash_key, username)
            h.audit(s, username if known else "-", "login_failed",
                    username if known else f"key:{key[:16]}",
                    {"reason": result.reason, "remote": remote})
    if result.user is not None:
        return redirect(_safe_next(request.args.get("next")))
    return _login_page(_REASONS[result.reason], 429 if result.reason == "throttled" else 401)


# --------------------------------------------------------------------------- SSO


def _public(path: str) -> str:
    """An absolute URL of the hub built on ``public_url``, never on the Host header."""
    return hub().config.public_url.rstrip("/") + path


@bp.get("/sso/login")
def sso_login():  # type: ignore[no-untyped-def]
    """Start single sign-on: off to the province's IdP."""
    identity = _identity()
    if not identity.sso:
        return redirect(url_for("admin.login"))
    session["sso_next"] = _safe_next(request.args.get("next"))
    if identity.protocol == "oidc":
        client = current_app.extensions["cityhub_oidc"]
        try:
            return client.authorize_redirect(_public("/admin/sso/callback"))
        except Exception:
            log.warning("OIDC sign-in could not start (provider unreachable?)", exc_info=True)
            return _refused(sso.SsoRefused("failed"), "provider unreachable")
    session["sso_cas"] = secrets.token_urlsafe(16)  # the flow started here, in this browser
    return redirect(sso.cas_client(identity, _public("/admin/sso/cas")).get_login_url())


@bp.get("/sso/callback")
def sso_callback():  # type: ignore[no-untyped-def]
    """The OIDC/OAuth2 redirect back: state, PKCE, ID token (signature, iss, aud, exp,
    nonce) checked by Authlib; then the province's person mapped to a local user."""
    identity = _identity()
    if identity.protocol != "oidc":
        return redirect(url_for("admin.login"))
    client = current_app.extensions["cityhub_oidc"]
    try:
        token = client.authorize_access_token()
        claims: Any = token.get("userinfo")
        if claims is None:  # plain OAuth2 (no ID token): the userinfo endpoint
            claims = client.userinfo(token=token)
        person = sso.person_of(dict(claims))
    except MismatchingStateError:
        if g.principal is not None and session.get("sso") == "oidc":
            return _superseded()
        return _refused(sso.SsoRefused("failed"), "MismatchingStateError")
    except sso.SsoRefused as refused:
        return _refused(refused, "claims")
    except Exception as exc:  # OAuthError, JOSE errors, a provider that is down
        log.warning("OIDC sign-in failed: %s", type(exc).__name__)
        return _refused(sso.SsoRefused("failed"), type(exc).__name__)
    return _signed_in(person, "oidc")


@bp.get("/sso/cas")
def sso_cas():  # type: ignore[no-untyped-def]
    """The CAS redirect back: the ticket validated once, server-side (p3/serviceValidate)."""
    identity = _identity()
    if identity.protocol != "cas":
        return redirect(url_for("admin.login"))
    started = session.pop("sso_cas", None)
    ticket = request.args.get("ticket", "")
    if not started or not ticket or len(ticket) > 256 or not ticket.isascii():
        return _refused(sso.SsoRefused("failed"), "no flow or ticket")
    try:
        user, attributes, _ = sso.cas_client(identity, _public("/admin/sso/cas")) \
            .verify_ticket(ticket)
    except Exception as exc:
        log.warning("CAS ticket validation failed: %s", type(exc).__name__)
        return _refused(sso.SsoRefused("failed"), type(exc).__name__)
    if not user:
        return _refused(sso.SsoRefused("failed"), "ticket not valid")
    try:
        person = sso.person_of({**(attributes or {}), "sub": user})
    except sso.SsoRefused as refused:
        return _refused(refused, "claims")
    return _signed_in(person, "cas")


def _signed_in(person: sso.ProvincePerson, protocol: str):  # type: ignore[no-untyped-def]
    h = hub()
    target = _safe_next(session.get("sso_next"))
    for attempt in range(2):  # a newcomer provisioned by a parallel sign-in: found next time
        try:
            with h.transaction() as s:
                user = sso.find_operator(s, person, _identity())
                h.audit(s, user.username, "login", user.username,
                        {"via": protocol, "province_user_id": person.sub})
                auth.start_session(user)
                session["sso"] = protocol
            break
        except sso.SsoRefused as refused:
            return _refused(refused, protocol)
        except IntegrityError:  # admin_users.province_user_id is unique
            if attempt:
                raise
    return redirect(target)


def _remote(h: Any) -> str:
    """The browser's address as the sign-in audits it (``admin.trusted_proxies``)."""
    return auth.source_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                               auth.trusted_proxies(h))


def _superseded():  # type: ignore[no-untyped-def]
    """The redirect back of a flow another tab overtook: that tab's single sign-on
    renewed this browser's session (and dropped this flow's state). Nobody is signed
    in by it; the page says who is, in case that is not the person at the keyboard
    (a shared PC), and the audit keeps it."""
    h = hub()
    who = g.principal.username
    with h.transaction() as s:
        h.audit(s, who, "sso_superseded", who, {"remote": _remote(h)})
    flash(f"已以 {who} 的身份登录（另一个标签页先完成了统一身份认证）；"
          "如果这不是您的账号，请先退出再登录", "ok")
    return redirect(url_for("admin.dashboard"))


def _refused(refused: sso.SsoRefused, why: str):  # type: ignore[no-untyped-def]
    h = hub()
    with h.transaction() as s:
        h.audit(s, "-", "login_refused",
                f"province:{refused.sub}" if refused.sub else "province:-",
                {"reason": refused.reason, "detail": why[:100]})
    session.pop("sso_next", None)
    return _login_page(refused.message, 403)


# --------------------------------------------------------------------------- sign-out


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    h = hub()
    via = session.get("sso")
    with h.transaction() as s:
        if g.principal is not None:
            h.audit(s, g.principal.username, "logout", g.principal.username)
        auth.end_session(s)
    back = _public("/admin/login")
    identity = _identity()
    if via == "oidc" and identity.oidc is not None:
        client = current_app.extensions["cityhub_oidc"]
        endpoint = sso.end_session_url(client, identity)
        if endpoint:
            from urllib.parse import urlencode

            query = urlencode({"client_id": identity.oidc.client_id,
                               "post_logout_redirect_uri": back})
            return redirect(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}")
    if via == "cas" and identity.cas is not None:
        return redirect(sso.cas_client(identity, back).get_logout_url(back))
    return redirect(url_for("admin.login"))


