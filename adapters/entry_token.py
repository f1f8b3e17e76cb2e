"""The province's 一网通办 handover token (contracts/identity.md), checked without side
effects: a JWS compact JWT, HS256 only (``none``, RS*/ES* and every other algorithm are
refused before any key is used), signed with the province's shared secret; ``iss``,
``aud``, ``iat``, ``exp`` (at most 300 s after ``iat``), ``jti``, ``item`` (the path's),
``apply_no``, ``county_code`` (a county of this city) and ``applicant`` checked. The
single use of ``jti`` is the store's (``entry_handovers.jti`` is unique)."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from mapping.json_limits import loads
from mapping.province_in import applicant_errors
from mapping.validators import apply_no_ok, text_ok

ALGORITHM = "HS256"
MAX_LIFETIME = 300
LEEWAY = 30
APPLICANT_KEYS = ("name", "id_type", "id_no", "uscc", "phone")

#: Chinese messages of the refusals (the error page shows them).
REFUSALS = {
    "malformed": "办理凭证无效，请返回省政务服务网重新进入",
    "signature": "办理凭证校验失败，请返回省政务服务网重新进入",
    "audience": "办理凭证不是发给本平台的，请返回省政务服务网重新进入",
    "expired": "办理凭证已过期，请返回省政务服务网重新进入",
    "reused": "办理凭证已使用过，请返回省政务服务网重新进入",
    "item": "本平台不办理该事项，请返回省政务服务网选择其他事项",
    "county": "所选区县不属于本市，请返回省政务服务网重新选择",
    "session": "办理会话已过期或无效，请返回省政务服务网重新进入",
    "early": "办理凭证尚未生效，请返回省政务服务网重新进入",
    "applicant": "省政务服务网传来的申请人信息不完整或有误，请返回省政务服务网核对后重新进入",
    "spent": "证件号码后几位多次输入错误，本次办理凭证已作废，请返回省政务服务网重新进入",
}


class HandoverRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def message(self) -> str:
        return REFUSALS[self.reason]


@dataclass(frozen=True)
class Handover:
    jti: str
    item: str
    apply_no: str
    county_code: str
    exp: int
    applicant: dict[str, str | None]

    def claims(self) -> dict[str, Any]:
        return {"jti": self.jti, "item": self.item, "apply_no": self.apply_no,
                "county_code": self.county_code, "exp": self.exp, "applicant": self.applicant}


def _text(value: Any, max_len: int) -> str | None:
    """``value`` if it is a string of 1 to ``max_len`` characters of text: no control
    character (a NUL no store column can hold) and no lone surrogate, which the token's
    JSON may carry as an escape and no UTF-8 (the sealed columns, the page) can hold."""
    return (value if isinstance(value, str) and 0 < len(value) <= max_len
            and text_ok(value) else None)


def _segments_ok(token: str) -> bool:
    """The token's header and claims are JSON objects within the hub's limits
    (``mapping.json_limits``: depth, size, no repeated key, no NaN), read before joserfc
    reads them: a signed token of 3,000 nested arrays made joserfc's parser recurse past
    the interpreter's limit (a 500), and a repeated ``iss`` would be read as its last."""
    for segment in token.split(".")[:2]:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            if not isinstance(loads(raw), dict):
                return False
        except (ValueError, binascii.Error):  # JsonRejected is a ValueError
            return False
    return True


def verify(token: str, path_item: str, *, secret: bytes, issuer: str, audience: str,
           items: set[str] | frozenset[str], is_county: Any, max_bytes: int = 8192,
           now: float | None = None) -> Handover:
    """The handover of ``token`` for ``POST /entry/{path_item}``, or HandoverRefused."""
    if not token or len(token) > max_bytes or not token.isascii() or token.count(".") != 2:
        raise HandoverRefused("malformed")
    if not _segments_ok(token):
        raise HandoverRefused("malformed")
    try:
        decoded = jwt.decode(token, OctKey.import_key(secret), algorithms=[ALGORITHM])
    except JoseError as exc:
        name = type(exc).__name__
        raise HandoverRefused("signature" if "Signature" in name or "Algorithm" in name
                              or "Unsupported" in name else "malformed") from None
    except (ValueError, TypeError):
        raise HandoverRefused("malformed") from None
    if decoded.header.get("alg") != ALGORITHM:  # belt and braces: the registry pins it
        raise HandoverRefused("signature")
    claims = decoded.claims
    if not isinstance(claims, dict):
        raise HandoverRefused("malformed")
    if claims.get("iss") != issuer:
        raise HandoverRefused("signature")
    aud = claims.get("aud")
    if not (aud == audience or (isinstance(aud, list) and aud == [audience])):
        raise HandoverRefused("audience")
    at = time.time() if now is None else now
    iat, exp = claims.get("iat"), claims.get("exp")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise HandoverRefused("malformed")
    if exp - iat > MAX_LIFETIME or exp < iat or iat > at + LEEWAY:  # type: ignore[operator]
        raise HandoverRefused("malformed")
    if exp <= at:  # type: ignore[operator]
        raise HandoverRefused("expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int) or isinstance(nbf, bool)):
        raise HandoverRefused("malformed")
    if nbf is not None and nbf > at + LEEWAY:  # RFC 7519 4.1.5: not before
        raise HandoverRefused("early")
    jti = _text(claims.get("jti"), 128)
    if jti is None or not jti.isprintable():
        raise HandoverRefused("malformed")
    item = claims.get("item")
    if item != path_item or item not in items:
        raise HandoverRefused("item")
    county = claims.get("county_code")
    if not isinstance(county, str) or not is_county(county):
        raise HandoverRefused("county")
    apply_no = claims.get("apply_no")
    if not apply_no_ok(apply_no):
        raise HandoverRefused("malformed")
    raw = claims.get("applicant")
    if not isinstance(raw, dict):
        raise HandoverRefused("malformed")
    applicant: dict[str, str | None] = {}
    for key in APPLICANT_KEYS:
        value = raw.get(key)
        if value is not None and _text(value, 100) is None:
            raise HandoverRefused("malformed")
        applicant[key] = value
    if applicant_errors(applicant):  # a session no submit could ever use
        raise HandoverRefused("applicant")
    return Handover(jti, item, apply_no, county, exp, applicant)  # type: ignore[arg-type]
