"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import g, redirect, request, url_for

from admin import auth
from admin.web import bp, hub, render

_REASONS = {
    "bad": "用户名或密码不正确",
    "locked": "账户因多次登录失败已被锁定，请稍后再试或联系管理员",
    "locked_now": "登录失败次数过多，账户已被锁定",
    "throttled": "来自您所在地址的登录失败次数过多，请稍后再试",
}


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:256]
        password = request.form.get("password", "")
        h = hub()
        remote = auth.source_address(request.remote_addr,
                                     request.headers.get("X-Forwarded-For"),
                                     auth.trusted_proxies(h))
        throttle = auth.throttle_of(h)
        with h.transaction() as s:
            result = auth.authenticate(s, username, password, remote, throttle)
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
        error = _REASONS[result.reason]
    elif g.principal is not None:
        return redirect(url_for("admin.dashboard"))
    status = 200 if error is None else 429 if result.reason == "throttled" else 401
    return render("login.html", error=error), status


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    h = hub()
    with h.transaction() as s:
        if g.principal is not None:
            h.audit(s, g.principal.username, "logout", g.principal.username)
        auth.end_session(s)
    return redirect(url_for("admin.login"))
