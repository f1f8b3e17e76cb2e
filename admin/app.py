"""The operator admin page: ``register(app, hub)`` adds the ``/admin`` blueprint."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from admin import auth, masking, sso
from admin.identity_config import identity_of
from admin.modules import ModuleDisabled, catalogue, ensure_builtins_once, module_of_endpoint
from admin.perms import FUNCTIONS, Forbidden
from admin.settings import get_setting, item_names
from admin.web import bp, hub, names, render, to_local
from mapping import delivery_errors
from mapping.validators import first_not_text
from store.alerts import WORDED_BY_HUB

if TYPE_CHECKING:
    from hub import Hub

_OPEN_ENDPOINTS = {"admin.login", "admin.static", "admin.sso_login", "admin.sso_callback",
                   "admin.sso_cas"}


def register(app: Flask, hub_: Hub) -> None:
    """Configure the session cookie and add the admin blueprint to ``app`` (once)."""
    if "admin" in app.blueprints:
        return
    app.secret_key = auth.secret_key(hub_)
    auth.trusted_proxies(hub_), auth.throttle_of(hub_)  # a bad ``admin`` config fails here
    admin_cfg = hub_.config.section("admin")
    identity = identity_of(hub_.config)  # a bad ``identity`` config fails here
    app.extensions["cityhub_identity"] = identity
    if identity.oidc is not None:
        app.extensions["cityhub_oidc"] = sso.init_oidc(app, hub_, identity)
    app.config.update(
        SESSION_COOKIE_NAME="cityhub_admin",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax with single sign-on: the provider's redirect back (a cross-site top-level
        # GET) must carry the cookie that holds the flow's state; every form has a CSRF
        # token regardless.
        SESSION_COOKIE_SAMESITE="Lax" if identity.sso else "Strict",
        # Secure whenever the hub is reached over https (``public_url``), or if forced.
        SESSION_COOKIE_SECURE=bool(admin_cfg.get("secure_cookie", False))
        or hub_.config.public_url.lower().startswith("https://"),
        SESSION_COOKIE_PATH="/admin",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    from admin import (  # noqa: F401  (each module adds its views to ``bp``)
        views_audit,
        views_auth,
        views_calendar,
        views_cases,
        views_dashboard,
        views_deadlines,
        views_fund,
        views_interfaces,
        views_manual,
        views_messages,
        views_numbering,  # 预售项目监管 (Hunan profile only)
        views_people,
        views_settings,
        views_share,
    )

    app.register_blueprint(bp)
    ensure_builtins_once(hub_.db)  # built-in modules and functions a newer version adds
    if hub_.jobs is None:  # the manual queue's exports and imports (admin/jobs.py)
        from admin.jobs import JobRunner

        hub_.jobs = JobRunner(hub_)


#: Methods the catch-all answers (HEAD comes with GET, OPTIONS is automatic).
_ANY_METHOD = ("GET", "POST", "PUT", "PATCH", "DELETE")


@bp.route("/<path:rest>", methods=_ANY_METHOD)
def not_found(rest: str):  # type: ignore[no-untyped-def]
    """Any other URL under /admin/: the admin's own 404 page (signed-in, like every page)
    rather than the app's JSON 404, which a routing miss would otherwise get (blueprint
    error handlers never see routing errors). The more specific rules (every page,
    ``/static/...``) win over this one; only a real rule with another method means 405."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = set()
    for method in _ANY_METHOD:
        if method == request.method:
            continue
        try:
            endpoint, _ = adapter.match(request.path, method=method)
        except (NotFound, MethodNotAllowed):
            continue
        except HTTPException:  # e.g. a redirect to the slash-ended URL: a real page
            allowed.add(method)
            continue
        if endpoint != "admin.not_found":
            allowed.add(method)
    if allowed:
        abort(405, valid_methods=sorted(allowed))
    abort(404)


@bp.before_request
def _before() -> object | None:
    """Refuse a parameter that is not text, load the principal, expire idle sessions,
    check CSRF on every form."""
    g.principal = None
    bad = (first_not_text((request.view_args or {}).items(), request.args.items(multi=True))
           or first_not_text(request.form.items(multi=True), lines=True))  # textareas
    if bad is not None:
        abort(400, description="提交的内容含有控制字符（如空字符），无法处理；"
                               f"请删除后重试（字段 {bad[:32]}）")
    with hub().db.session() as s:
        principal = auth.current_principal(s)
        idle = int(get_setting(s, "session_idle_minutes")) * 60
        if principal is not None:  # the navigation, and the items' display names
            g.catalogue = catalogue(s, principal)
            g.item_names = item_names(s)
    now = time.time()
    if principal is not None:
        if now - float(session.get("seen", now)) > idle:
            session.clear()
            principal = None
        else:
            session["seen"] = now
    g.principal = principal
    auth.check_csrf()
    if principal is None and request.endpoint not in _OPEN_ENDPOINTS:
        return redirect(url_for("admin.login", next=request.full_path))
    if principal is not None and module_of_endpoint(request.endpoint) in g.catalogue.disabled:
        raise ModuleDisabled(request.endpoint)
    return None


@bp.after_request
def _headers(resp):  # type: ignore[no-untyped-def]
    resp.headers.setdefault("Cache-Control", "no-store")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
    return resp


@bp.context_processor
def _context() -> dict[str, object]:
    cat = g.get("catalogue") if g.get("principal") is not None else None
    return {"me": g.get("principal"), "csrf_token": auth.csrf_token, "names": names(),
            "FUNCTIONS": FUNCTIONS, "city": hub().city, "nav": cat.nav if cat else []}


@bp.app_template_filter("local")
def _local(value):  # type: ignore[no-untyped-def]
    return to_local(value)


@bp.app_template_filter("masked")
def _masked(value):  # type: ignore[no-untyped-def]
    """Free text (errors, reasons, titles) through the masker unless revealing."""
    return masking.show_text(value)


@bp.app_template_filter("delivery_error")
def _delivery_error(value, limit: int = 160):  # type: ignore[no-untyped-def]
    """An outbox row's ``last_error`` in Chinese (mapping/delivery_errors.py), the raw
    text (masked) in its tooltip for whoever asks the engineers."""
    if not value:
        return ""
    shown = delivery_errors.explain(str(value), quoted=masking.show_text)
    return Markup('<span title="{}">{}</span>').format(
        masking.show_text(str(value))[:1000], shown[:limit])


@bp.app_template_filter("masked_title")
def _masked_title(value):  # type: ignore[no-untyped-def]
    return masking.show_title(value)


@bp.app_template_filter("masked_detail")
def _masked_detail(value):  # type: ignore[no-untyped-def]
    """A stored JSON detail (alerts, audit rows) through the masker unless revealing."""
    return masking.show_detail(value)


@bp.app_template_filter("alert_detail")
def _alert_detail(alert):  # type: ignore[no-untyped-def]
    """An alert's detail: the hub's own words read as written, anything else masked."""
    if alert.kind in WORDED_BY_HUB:
        return masking.show_title(alert.detail)
    return masking.show_detail(alert.detail)


@bp.errorhandler(Forbidden)
def _forbidden(exc: Forbidden):  # type: ignore[no-untyped-def]
    return render("error.html", code=403, message="没有权限执行此操作"), 403


@bp.errorhandler(ModuleDisabled)
def _module_disabled(exc: ModuleDisabled):  # type: ignore[no-untyped-def]
    return render("error.html", code=403, message="该模块已停用，请联系系统管理员"), 403


def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    messages = {404: "没有找到，或不在您的数据权限范围内", 400: exc.description,
                403: "您没有使用此功能的权限，请联系系统管理员",
                405: "不支持这种访问方式，请从页面上的链接或按钮进入",
                413: "上传的文件太大", 429: "操作过于频繁，请稍后再试",
                500: "系统内部错误，已记入日志；请稍后重试，仍不行请联系系统管理员",
                503: "系统暂时不可用，请稍后再试"}
    headers = {"Allow": ", ".join(exc.valid_methods)} if isinstance(
        exc, MethodNotAllowed) and exc.valid_methods else {}
    return render("error.html", code=exc.code,
                  message=messages.get(exc.code or 0, exc.name)), exc.code, headers


# By code, so they win over the app's JSON handlers for the same codes (API envelope).
for _code in (400, 403, 404, 405, 413):
    bp.register_error_handler(_code, _http_error)
bp.register_error_handler(HTTPException, _http_error)
