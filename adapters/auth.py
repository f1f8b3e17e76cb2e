"""Inbound authentication, shared by every signed endpoint (province, county callbacks).

``authenticate`` runs before anything of the request is interpreted: the signature
(1001), the clock window (1002), the nonce (1003), then what this app id may call
(1004), then the operator's switch for the interface (3001). The body is read once,
bounded, by ``read_body`` (2001 if it is too large), because the signature covers it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Request, request
from werkzeug.exceptions import RequestEntityTooLarge

from adapters.base import Partner
from adapters.signing import DEFAULT_WINDOW, SignatureError, check_signature
from adapters.web import ApiError, call_context
from store.nonces import remember
from store.outbox import interface_disabled
from store.resilience import retry_on_disconnect

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from hub import Hub

BAD_SIGNATURE, REPLAYED, NOT_ALLOWED = "1001", "1003", "1004"
BAD_BODY, DISABLED = "2001", "3001"


def read_body(limit: int, req: Request | None = None) -> bytes:
    """The raw body, at most ``limit`` bytes (2001 beyond, without reading the rest)."""
    req = req or request
    if req.content_length is not None and req.content_length > limit:
        raise ApiError(BAD_BODY, f"request body larger than {limit} bytes")
    chunked = "chunked" in req.headers.get("Transfer-Encoding", "").lower()
    if req.content_length == 0 or (req.content_length is None and not chunked):
        # no body (a signed GET): under waitress and gunicorn werkzeug's bounded stream
        # would refuse even an empty read against a limit of 0
        return b""
    req.max_content_length = limit  # also bounds a chunked body without Content-Length
    try:
        return req.get_data(cache=True)
    except RequestEntityTooLarge:
        raise ApiError(BAD_BODY, f"request body larger than {limit} bytes") from None


def authenticate(
    hub: Hub, body: bytes, *, allow: Callable[[Partner], bool] | None = None,
    item: str | None = None, interface: str | None = None, req: Request | None = None,
) -> Partner:
    """The partner that signed this request, or ``ApiError`` with the contract's code.

    ``allow`` says which partners may use the endpoint at all (else 1004); ``item`` is
    checked against the partner's ``items`` allow-list; ``interface`` against the
    operator's switches (``interface_switches``, kind ``interface``).
    """
    partner, pending = authenticate_deferred(hub, body, allow=allow, item=item,
                                             interface=interface, req=req)
    pending.settle()
    return partner


@dataclass
class PendingNonce:
    """A signed request's nonce, checked but not yet recorded.

    A hot path records it inside its own write transaction (``claim``), so the nonce
    commits with the business rows; ``settle`` records it in a transaction of its own
    (what ``authenticate`` does at once) unless a claiming transaction has committed.
    Either way the order of the answers is the same: replay (1003), then the switch
    (3001), then anything about the body.
    """

    hub: Hub
    app_id: str
    nonce: str
    interface: str | None
    committed: bool = False

    def disabled_error(self) -> ApiError:
        return ApiError(DISABLED, f"interface {self.interface} is disabled by an operator")

    def claim(self, session: Session | Connection) -> None:
        """Record the nonce in ``session``'s transaction: 1003 if replayed, 3001 if the
        interface is switched off (the caller's transaction then rolls back, and
        ``settle`` records the nonce by itself as ``authenticate`` would have)."""
        window = self.hub.config.scheduler.nonce_window_seconds
        if not remember(session, self.app_id, self.nonce, window):
            raise ApiError(REPLAYED, "nonce already used")
        if self.interface is not None and interface_disabled(session, self.interface):
            raise self.disabled_error()

    def settle(self) -> None:
        """Record the nonce now unless a claiming transaction committed it."""
        if self.committed:
            return
        hub = self.hub
        window = hub.config.scheduler.nonce_window_seconds

        def record() -> tuple[bool, bool]:
            with hub.db.session() as s:
                fresh = remember(s, self.app_id, self.nonce, window)
                return fresh, fresh and self.interface is not None and interface_disabled(
                    s, self.interface)

        fresh, disabled = retry_on_disconnect(record, "nonce")
        self.committed = True
        if not fresh:
            raise ApiError(REPLAYED, "nonce already used")
        if disabled:
            raise self.disabled_error()


def authenticate_deferred(
    hub: Hub, body: bytes, *, allow: Callable[[Partner], bool] | None = None,
    item: str | None = None, interface: str | None = None, req: Request | None = None,
) -> tuple[Partner, PendingNonce]:
    """``authenticate`` up to the nonce: the signature, the clock and the allow-lists are
    checked; the nonce and the switch are left to ``PendingNonce.claim``/``settle``."""
    req = req or request

    def secret_for(app_id: str) -> bytes | None:
        partner = hub.partners.get(app_id)
        return partner.secret if partner is not None else None

    def algorithm_for(app_id: str) -> str | None:
        partner = hub.partners.get(app_id)
        return partner.sign_method if partner is not None else None

    try:
        app_id, nonce = check_signature(
            req.headers, req.method, (req.root_path or "") + req.path, body, secret_for,
            now=time.time(), window=DEFAULT_WINDOW, algorithm_for=algorithm_for,
        )
    except SignatureError as exc:
        raise ApiError(exc.code, exc.message) from None
    partner = hub.partners[app_id]
    call_context().party = app_id
    if allow is not None and not allow(partner):
        raise ApiError(NOT_ALLOWED, f"app {app_id} may not call this endpoint")
    if item is not None and partner.items is not None and item not in partner.items:
        raise ApiError(NOT_ALLOWED, f"app {app_id} may not call item {item}")
    return partner, PendingNonce(hub, app_id, nonce, interface)
