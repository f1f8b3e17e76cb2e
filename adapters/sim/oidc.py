"""A simulated province identity provider speaking OpenID Connect (for tests and the
demo; never production). Authorization-code flow with discovery, PKCE (S256), ID tokens
signed RS256 (joserfc), userinfo, JWKS and RP-initiated logout; the provider keeps its
own sign-in session (cookie ``sim_idp``), so signing out at the provider can be seen.

Users are ``{sub: {"password", "name", "unit_id"}}``; one registered client.

    python -m adapters.sim.oidc --port 8094   (client secret from HUB_SECRET_IDP)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Flask, Response, abort, jsonify, redirect, render_template, request
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.sim.idp_server import FlaskPeer

PREFIX = "/oidc"
COOKIE = "sim_idp"


@dataclass
class OidcState:
    users: dict[str, dict[str, str]]
    client_id: str
    client_secret: str
    #: The hub's addresses the provider may send a browser back to (prefixes).
    redirect_prefixes: tuple[str, ...]
    sessions: dict[str, str] = field(default_factory=dict)  # sid -> sub
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> sub
    logouts: int = 0
    #: For tests of the hub's checks: the next ID tokens are wrong in this way
    #: (``aud``, ``iss``, ``nonce``, ``expired``, ``key``: signed by another key).
    tamper: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _redirect_ok(state: OidcState, uri: str | None) -> bool:
    return bool(uri) and any(uri == p or uri.startswith(p.rstrip("/") + "/")  # type: ignore[union-attr]
                             for p in state.redirect_prefixes)


def make_app(state: OidcState, key: RSAKey, issuer_of: Any) -> Flask:
    app = Flask("sim_oidc", template_folder=os.path.join(os.path.dirname(__file__), "templates"))

    def issuer() -> str:
        return issuer_of()

    def signed_in() -> str | None:
        sid = request.cookies.get(COOKIE)
        with state.lock:
            return state.sessions.get(sid or "")

    @app.get(f"{PREFIX}/.well-known/openid-configuration")
    def discovery():  # type: ignore[no-untyped-def]
        base = issuer()
        return jsonify({
            "issuer": base, "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token", "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}/jwks", "end_session_endpoint": f"{base}/logout",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "scopes_supported": ["openid", "profile"],
        })

    @app.get(f"{PREFIX}/jwks")
    def jwks():  # type: ignore[no-untyped-def]
        return jsonify({"keys": [key.as_dict(private=False)]})

    @app.route(f"{PREFIX}/authorize", methods=["GET", "POST"])
    def authorize():  # type: ignore[no-untyped-def]
        args = request.args
        if args.get("client_id") != state.client_id or not _redirect_ok(
                state, args.get("redirect_uri")) or args.get("response_type") != "code":
            abort(400)
        error = None
        if request.method == "POST":  # the provider's own sign-in form
            sub = request.form.get("username", "")
            user = state.users.get(sub)
            if user and hmac.compare_digest(user["password"].encode(),
                                            request.form.get("password", "").encode()):
                sid = secrets.token_urlsafe(24)
                with state.lock:
                    state.sessions[sid] = sub
                resp = redirect(request.full_path)
                resp.set_cookie(COOKIE, sid, httponly=True, samesite="Lax", path=PREFIX)
                return resp
            error = "用户名或密码错误"
        sub = signed_in()
        if sub is None:
            return render_template("sim_idp_login.html", title="省统一身份认证（模拟）",
                                   error=error)
        code = secrets.token_urlsafe(24)
        with state.lock:
            state.codes[code] = {"sub": sub, "nonce": args.get("nonce"),
                                 "redirect_uri": args.get("redirect_uri"),
                                 "challenge": args.get("code_challenge"),
                                 "method": args.get("code_challenge_method"),
                                 "at": time.time()}
        query = {"code": code}
        if args.get("state") is not None:
            query["state"] = args["state"]
        return redirect(f"{args['redirect_uri']}?{urlencode(query)}")

    def client_ok() -> bool:
        auth = request.authorization
        cid, secret = (auth.username, auth.password) if auth else (
            request.form.get("client_id"), request.form.get("client_secret"))
        return cid == state.client_id and hmac.compare_digest(
            (secret or "").encode(), state.client_secret.encode())

    @app.post(f"{PREFIX}/token")
    def token():  # type: ignore[no-untyped-def]
        if not client_ok():
            return jsonify({"error": "invalid_client"}), 401
        with state.lock:
            grant = state.codes.pop(request.form.get("code", ""), None)  # used once
        if grant is None or time.time() - grant["at"] > 60 or \
                request.form.get("redirect_uri") != grant["redirect_uri"]:
            return jsonify({"error": "invalid_grant"}), 400
        if grant["challenge"]:
            verifier = request.form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if grant["method"] != "S256" or not hmac.compare_digest(digest, grant["challenge"]):
                return jsonify({"error": "invalid_grant", "error_description": "PKCE"}), 400
        sub = grant["sub"]
        user = state.users[sub]
        now = int(time.time())
        claims = {"iss": issuer(), "sub": sub, "aud": state.client_id, "iat": now,
                  "exp": now + 300, "name": user.get("name"), "unit_id": user.get("unit_id")}
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        signer = key
        if state.tamper == "aud":
            claims["aud"] = "another-client"
        elif state.tamper == "iss":
            claims["iss"] = "https://evil.example/oidc"
        elif state.tamper == "nonce":
            claims["nonce"] = "replayed-nonce"
        elif state.tamper == "expired":
            claims["iat"], claims["exp"] = now - 1000, now - 600
        elif state.tamper == "key":
            signer = RSAKey.generate_key(2048, parameters={"kid": key.kid})
        id_token = jwt.encode({"alg": "RS256", "kid": key.kid}, claims, signer)
        access = secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[access] = sub
        return jsonify({"access_token": access, "token_type": "Bearer", "expires_in": 300,
                        "id_token": id_token, "scope": "openid profile"})

    @app.route(f"{PREFIX}/userinfo", methods=["GET", "POST"])
    def userinfo():  # type: ignore[no-untyped-def]
        header = request.headers.get("Authorization", "")
        with state.lock:
            sub = state.tokens.get(header.removeprefix("Bearer ").strip())
        if sub is None:
            return jsonify({"error": "invalid_token"}), 401
        user = state.users[sub]
        return jsonify({"sub": sub, "name": user.get("name"), "unit_id": user.get("unit_id")})

    @app.get(f"{PREFIX}/logout")
    def logout():  # type: ignore[no-untyped-def]
        sid = request.cookies.get(COOKIE, "")
        with state.lock:
            state.sessions.pop(sid, None)
            state.logouts += 1
        back = request.args.get("post_logout_redirect_uri")
        resp: Response = redirect(back) if _redirect_ok(state, back) else Response(
            "已退出省统一身份认证", mimetype="text/plain")
        resp.delete_cookie(COOKIE, path=PREFIX)
        return resp

    return app


class OidcSim(FlaskPeer):
    """The simulated provider; its issuer is ``url + /oidc``."""

    def __init__(self, users: dict[str, dict[str, str]], client_id: str, client_secret: str,
                 redirect_prefixes: tuple[str, ...], host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.state = OidcState(users, client_id, client_secret, redirect_prefixes)
        self.key = RSAKey.generate_key(2048, parameters={"kid": f"sim-{secrets.token_hex(4)}"})
        super().__init__(make_app(self.state, self.key, lambda: self.issuer), host, port)

    @property
    def issuer(self) -> str:
        return self.url + PREFIX

    def signed_in_subs(self) -> list[str]:
        with self.state.lock:
            return sorted(self.state.sessions.values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8094)
    p.add_argument("--client-id", default="cityhub_511700")
    p.add_argument("--hub", default="http://127.0.0.1:8080")
    p.add_argument("--user", default="demo.operator")
    p.add_argument("--unit", default="P-UNIT-DEMO")
    args = p.parse_args()
    secret = os.environ.get("HUB_SECRET_IDP")
    if not secret:
        p.error("set HUB_SECRET_IDP (the hub's client secret)")
    password = secrets.token_urlsafe(9)
    sim = OidcSim({args.user: {"password": password, "name": "演示经办人", "unit_id": args.unit}},
                  args.client_id, secret, (args.hub + "/admin",), port=args.port)
    print(f"simulated OIDC provider {sim.issuer}: {args.user} / {password}", flush=True)
    assert urlsplit(sim.issuer).hostname
    sim.server.run()


if __name__ == "__main__":
    main()
