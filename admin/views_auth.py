"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import g, redirect, request, url_for

from admin import auth
from admin.web import bp, hub, render

_REASONS = {
    "bad": "用户名或密码不正确",
    "locked": "账户因多次登录失败已被锁定，请稍后再试或联系管理员",
    "locked_now": "登录失败次数过多，账户已被锁定",
}


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not target.startswith("//"):
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    error = None
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        h = hub()
        with h.transaction() as s:
            result = auth.authenticate(s, username, password, request.remote_addr)
            if result.user is not None:
                h.audit(s, username, "login", username)
                auth.start_session(result.user)
            else:
                h.audit(s, username or "-", "login_failed", username,
                        {"reason": result.reason, "remote": request.remote_addr})
        if result.user is not None:
            return redirect(_safe_next(request.args.get("next")))
        error = _REASONS[result.reason]
    elif g.principal is not None:
        return redirect(url_for("admin.dashboard"))
    return render("login.html", error=error), 200 if error is None else 401


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    h = hub()
    with h.transaction() as s:
        if g.principal is not None:
            h.audit(s, g.principal.username, "logout", g.principal.username)
        auth.end_session(s)
    return redirect(url_for("admin.login"))
