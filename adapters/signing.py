"""The request-signing scheme of ``contracts/province.md`` (province, counties, the hub).

``X-Signature`` is the lowercase hex HMAC of
``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256HEX(BODY)`` under the partner's secret, with
HMAC-SHA256 by default or HMAC-SM3 (国密) when ``X-Sign-Method: HMAC-SM3`` says so.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from mapping.validators import nonce_ok

DEFAULT_ALGORITHM = "HMAC-SHA256"
SM3_ALGORITHM = "HMAC-SM3"
ALGORITHMS = (DEFAULT_ALGORITHM, SM3_ALGORITHM)
DEFAULT_WINDOW = 300

H_APP_ID = "X-App-Id"
H_TIMESTAMP = "X-Timestamp"
H_NONCE = "X-Nonce"
H_SIGNATURE = "X-Signature"
H_SIGN_METHOD = "X-Sign-Method"

BAD_SIGNATURE = "1001"
STALE_TIMESTAMP = "1002"
#: Digits of a Unix time in seconds (until the year 33658).
MAX_TIMESTAMP_DIGITS = 12



class SignatureError(Exception):
    """A refused request; ``code`` is the response code of the contract (1001 or 1002)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def string_to_sign(method: str, path: str, timestamp: str | int, nonce: str, body: bytes) -> bytes:
    """The signed text. ``path`` is taken without its query string, as the contract says."""
    path = path.split("?", 1)[0]
    digest = hashlib.sha256(body or b"").hexdigest()
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n{digest}".encode()


def signature(
    secret: bytes,
    method: str,
    path: str,
    timestamp: str | int,
    nonce: str,
    body: bytes,
    algorithm: str = DEFAULT_ALGORITHM,
) -> str:
    """Lowercase hex HMAC of the string to sign with ``algorithm`` (HMAC-SHA256 or HMAC-SM3)."""
    message = string_to_sign(method, path, timestamp, nonce, body)
    if algorithm == DEFAULT_ALGORITHM:
        return hmac.new(secret, message, hashlib.sha256).hexdigest()
    if algorithm == SM3_ALGORITHM:
        mac = crypto_hmac.HMAC(secret, hashes.SM3())
        mac.update(message)
        return mac.finalize().hex()
    raise ValueError(f"unknown signing algorithm {algorithm!r}; expected one of {ALGORITHMS}")


def new_nonce(length: int = 32) -> str:
    """A random nonce of ``length`` (16–64) hex characters, a subset of [A-Za-z0-9]."""
    return secrets.token_hex((length + 1) // 2)[:length]


def signed_headers(
    app_id: str,
    secret: bytes,
    method: str,
    path: str,
    body: bytes,
    algorithm: str = DEFAULT_ALGORITHM,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The headers that sign one outgoing request."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = new_nonce() if nonce is None else nonce
    headers = {
        H_APP_ID: app_id,
        H_TIMESTAMP: timestamp,
        H_NONCE: nonce,
        H_SIGNATURE: signature(secret, method, path, timestamp, nonce, body, algorithm),
    }
    if algorithm != DEFAULT_ALGORITHM:
        headers[H_SIGN_METHOD] = algorithm
    return headers


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive lookup, for plain dicts as well as framework header objects."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def check_signature(
    headers: Mapping[str, str],
    method: str,
    path: str,
    body: bytes,
    secret_for: Callable[[str], bytes | None],
    now: float,
    window: int = DEFAULT_WINDOW,
    algorithm_for: Callable[[str], str | None] | None = None,
) -> tuple[str, str]:
    """Authenticate an incoming request; return ``(app_id, nonce)`` or raise ``SignatureError``.

    Checks, in order: headers present and well-formed, app id known, sign method known (and
    the one the partner is configured for, when ``algorithm_for`` names one), signature —
    all 1001 — then the timestamp within ``window`` seconds of ``now`` (1002). The
    signature comes first so an unauthenticated caller learns nothing about our clock.

    Nonce replay (1003) is NOT checked here: it needs the store. The caller must record the
    returned nonce for the app id and refuse one seen within the last 600 s.
    """
    app_id = _header(headers, H_APP_ID)
    timestamp = _header(headers, H_TIMESTAMP)
    nonce = _header(headers, H_NONCE)
    provided = _header(headers, H_SIGNATURE)
    if not app_id or not timestamp or not nonce or not provided:
        raise SignatureError(BAD_SIGNATURE, "missing signature headers")
    secret = secret_for(app_id)
    if not secret:
        raise SignatureError(BAD_SIGNATURE, "unknown app id")
    algorithm = _header(headers, H_SIGN_METHOD) or DEFAULT_ALGORITHM
    if algorithm not in ALGORITHMS:
        raise SignatureError(BAD_SIGNATURE, f"unknown {H_SIGN_METHOD}")
    required = algorithm_for(app_id) if algorithm_for is not None else None
    if required and algorithm != required:
        raise SignatureError(BAD_SIGNATURE, f"this app must sign with {required}")
    if not nonce_ok(nonce):
        raise SignatureError(BAD_SIGNATURE, "malformed nonce")
    expected = signature(secret, method, path, timestamp, nonce, body, algorithm)
    if not hmac.compare_digest(expected.encode(), provided.encode("utf-8", "replace")):
        raise SignatureError(BAD_SIGNATURE, "wrong signature")
    # Bounded before it is converted: 1e309, -1, nan or 10 000 digits are simply not a
    # time within the window (int() of a huge string is slow, past 4300 digits an error).
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= MAX_TIMESTAMP_DIGITS):
        raise SignatureError(STALE_TIMESTAMP, f"{H_TIMESTAMP} is not Unix seconds within "
                                              f"{window} s of the clock")
    if abs(now - int(timestamp)) > window:
        raise SignatureError(STALE_TIMESTAMP, f"timestamp more than {window} s off the clock")
    return app_id, nonce
