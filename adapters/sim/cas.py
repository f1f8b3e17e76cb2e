"""A simulated province identity provider speaking CAS 3.0 (tests and the demo only):
``/cas/login?service=…`` (its own sign-in session, cookie ``sim_cas``), service tickets
validated once at ``/cas/p3/serviceValidate`` (bound to their service, attributes
``unit_id`` and ``name``), and ``/cas/logout?service=…``."""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from flask import Flask, Response, abort, redirect, render_template, request

from adapters.sim.idp_server import FlaskPeer

PREFIX = "/cas"
COOKIE = "sim_cas"
NS = "http://www.yale.edu/tp/cas"


@dataclass
class CasState:
    users: dict[str, dict[str, str]]
    service_prefixes: tuple[str, ...]
    sessions: dict[str, str] = field(default_factory=dict)  # TGC -> user
    tickets: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # ST -> ...
    validations: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _service_ok(state: CasState, service: str | None) -> bool:
    return bool(service) and any(service.startswith(p) for p in state.service_prefixes)  # type: ignore[union-attr]


def _xml(body: str) -> Response:
    return Response(f'<cas:serviceResponse xmlns:cas="{NS}">{body}</cas:serviceResponse>',
                    mimetype="application/xml")


def make_app(state: CasState) -> Flask:
    app = Flask("sim_cas", template_folder=os.path.join(os.path.dirname(__file__), "templates"))

    @app.route(f"{PREFIX}/login", methods=["GET", "POST"])
    def login():  # type: ignore[no-untyped-def]
        service = request.args.get("service")
        if not _service_ok(state, service):
            abort(400)
        error = None
        if request.method == "POST":
            name = request.form.get("username", "")
            user = state.users.get(name)
            if user and hmac.compare_digest(user["password"].encode(),
                                            request.form.get("password", "").encode()):
                tgc = secrets.token_urlsafe(24)
                with state.lock:
                    state.sessions[tgc] = name
                resp = redirect(request.full_path)
                resp.set_cookie(COOKIE, tgc, httponly=True, samesite="Lax", path=PREFIX)
                return resp
            error = "用户名或密码错误"
        with state.lock:
            name = state.sessions.get(request.cookies.get(COOKIE, ""))
        if name is None:
            return render_template("sim_idp_login.html", title="省统一身份认证 CAS（模拟）",
                                   error=error)
        ticket = f"ST-{secrets.token_urlsafe(24)}"
        with state.lock:
            state.tickets[ticket] = (name, service, time.time())  # type: ignore[assignment]
        sep = "&" if "?" in service else "?"  # type: ignore[operator]
        return redirect(f"{service}{sep}{urlencode({'ticket': ticket})}")

    @app.get(f"{PREFIX}/p3/serviceValidate")
    def validate():  # type: ignore[no-untyped-def]
        ticket, service = request.args.get("ticket", ""), request.args.get("service", "")
        with state.lock:
            state.validations += 1
            found = state.tickets.pop(ticket, None)  # a ticket is validated once
        if found is None or found[1] != service or time.time() - found[2] > 60:
            return _xml('<cas:authenticationFailure code="INVALID_TICKET">'
                        f'{escape(ticket[:64])}</cas:authenticationFailure>')
        name = found[0]
        user = state.users[name]
        attrs = "".join(f"<cas:{k}>{escape(v)}</cas:{k}>" for k, v in user.items()
                        if k in ("unit_id", "name") and v)
        return _xml(f"<cas:authenticationSuccess><cas:user>{escape(name)}</cas:user>"
                    f"<cas:attributes>{attrs}</cas:attributes></cas:authenticationSuccess>")

    @app.get(f"{PREFIX}/logout")
    def logout():  # type: ignore[no-untyped-def]
        with state.lock:
            state.sessions.pop(request.cookies.get(COOKIE, ""), None)
        service = request.args.get("service")
        resp: Any = redirect(service) if _service_ok(state, service) else Response(
            "已退出省统一身份认证", mimetype="text/plain")
        resp.delete_cookie(COOKIE, path=PREFIX)
        return resp

    return app


class CasSim(FlaskPeer):
    """The simulated CAS server; its server URL is ``url + /cas``."""

    def __init__(self, users: dict[str, dict[str, str]], service_prefixes: tuple[str, ...],
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = CasState(users, service_prefixes)
        super().__init__(make_app(self.state), host, port)

    @property
    def server_url(self) -> str:
        return self.url + PREFIX

    def signed_in_users(self) -> list[str]:
        with self.state.lock:
            return sorted(self.state.sessions.values())
