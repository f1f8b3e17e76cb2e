"""Signed JSON over HTTP: the transport of the province and county adapters.

POST ``{partner.base_url}/{operation}`` with the canonical payload, signed as the
contracts say under the hub's own app id. ``0000`` is success; a ``2xxx``/``4xxx``
answer means the message itself is wrong and will not get better by retrying
(permanent); anything else — other codes, HTTP errors, timeouts, refused
connections — is retried by the outbox policy.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import urllib3

from adapters.base import Adapter, DeliveryResult, OutgoingMessage, Partner
from adapters.deadline import DeadlinePoolManager, deadline, settle
from adapters.lease import connect_timeout
from adapters.signing import signed_headers
from mapping import json_limits

MAX_RESPONSE_BYTES = 8 * 1024 * 1024


def is_permanent(code: str | None) -> bool:
    return bool(code) and code[0] in "24"


class JsonClient:
    """A pooled, thread-safe HTTP client that signs each request for its partner."""

    def __init__(self, app_id: str, pool_size: int = 8) -> None:
        self.app_id = app_id
        self.pool = DeadlinePoolManager(maxsize=pool_size, block=False, retries=False)

    def post(
        self, partner: Partner, operation: str, payload: Any, timeout: float,
        message_id: int | None = None,
    ) -> DeliveryResult:
        url = f"{partner.base_url.rstrip('/')}/{operation.lstrip('/')}"
        try:
            body = json_limits.dumps(payload)
        except ValueError as exc:  # NaN or an infinity: never sent, and no retry mends it
            return DeliveryResult(ok=False, permanent=True, request=None,
                                  error=f"payload is not strict JSON, not sent: {exc}")
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if partner.secret is not None:
            headers.update(
                signed_headers(self.app_id, partner.secret, "POST", urlsplit(url).path, body,
                               algorithm=partner.sign_method)
            )
        if message_id is not None:
            headers["X-Message-Id"] = str(message_id)
        connect = connect_timeout(timeout)
        with deadline(connect + timeout) as watch:  # the whole call, headers and body
            try:
                resp = self.pool.request(
                    "POST", url, body=body, headers=headers,
                    timeout=urllib3.Timeout(connect=connect, read=timeout),
                    preload_content=False,
                )
                raw = resp.read(MAX_RESPONSE_BYTES + 1)
                if settle(watch):  # before the pool has it: then it may be another call's
                    resp.close()  # its socket is shut: not back into the pool
                else:
                    resp.release_conn()
                failed = None
            except urllib3.exceptions.HTTPError as exc:
                failed = f"{type(exc).__name__}: {exc}"
        if watch.fired:
            return DeliveryResult(ok=False, request=payload, error=(
                f"ReadTimeoutError: no whole answer within {connect + timeout:g} s "
                "(connect + read timeout, headers and body together)"))
        if failed is not None:
            return DeliveryResult(ok=False, error=failed, request=payload)
        if len(raw) > MAX_RESPONSE_BYTES:
            return DeliveryResult(ok=False, error="response too large", request=payload)
        try:
            answer = json_limits.loads(raw)
        except json_limits.JsonRejected as exc:
            return DeliveryResult(
                ok=False, error=f"HTTP {resp.status}: answer is not JSON ({exc.reason})",
                request=payload,
                response=raw[:2000].decode("utf-8", "replace"),
            )
        code = str(answer.get("code"))[:16] if isinstance(answer, dict) else None
        if code == "0000":
            return DeliveryResult(ok=True, code=code, request=payload, response=answer)
        message = answer.get("message") if isinstance(answer, dict) else None
        return DeliveryResult(
            ok=False, permanent=is_permanent(code), code=code or str(resp.status),
            error=f"HTTP {resp.status} code {code}: {message}", request=payload, response=answer,
        )

    def close(self) -> None:
        self.pool.clear()


class HttpJsonAdapter(Adapter):
    """Generic signed JSON POST to a partner; the operation is the URL's last segment."""

    alias = "http"

    def client(self, partner: Partner) -> JsonClient:
        """The partner's one client, kept on the hub (``adapters.calls``) and shared with
        the sync calls; the hub closes it."""
        return self.hub.calls.client(partner.app_id)

    def deliver(self, message: OutgoingMessage) -> DeliveryResult:
        return self.client(message.partner).post(
            message.partner, message.operation, message.payload, message.timeout, message.id
        )
