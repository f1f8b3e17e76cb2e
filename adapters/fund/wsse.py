"""Inbound WS-Security UsernameToken (OASIS UsernameToken Profile 1.0) for banks that ask.

A bank partner opts in with ``wsse_in``; the password is the partner's secret
(``HUB_SECRET_<APP_ID>`` or the secrets file, as for outbound ``wsse``), never config::

    partners:
      bank_icbc_dazhou:
        bank_code: ICBC
        wsse_in: {username: icbc-front, max_age_seconds: 300}   # or: wsse_in: true

``wsse_in: true`` takes the bank code as the user name. Both password types are
checked: PasswordText (constant-time compare) and PasswordDigest
(Base64(SHA-1(nonce + created + password)), which must carry Nonce and Created).
Created must be within ``max_age_seconds`` of now (either way, for clock skew) and a
nonce is accepted once per bank (``store.nonces``, the signing nonces' table).
A Security header naming no configured user is "not processed": the SOAP layer then
answers ``MustUnderstand`` if the header demanded it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from store.models import utcnow
from store.nonces import remember

if TYPE_CHECKING:
    from adapters.base import Partner
    from hub import Hub

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
TEXT, DIGEST = f"{_PROFILE}#PasswordText", f"{_PROFILE}#PasswordDigest"
SECURITY = f"{{{WSSE}}}Security"
DEFAULT_MAX_AGE = 300


class WsseError(Exception):
    """The UsernameToken of a configured bank is wrong: answered 1001, nothing booked."""


@dataclass(frozen=True)
class WsseBank:
    app_id: str
    bank_code: str
    username: str
    secret: bytes | None
    max_age: int


def configured(partners: dict[str, Partner]) -> dict[str, WsseBank]:
    """User name → bank, for the bank partners with ``wsse_in``."""
    out: dict[str, WsseBank] = {}
    for app_id, partner in sorted(partners.items()):
        opt = partner.options.get("wsse_in")
        if not opt:
            continue
        opt = opt if isinstance(opt, dict) else {}
        code = str(partner.options["bank_code"])
        username = str(opt.get("username") or code)
        try:
            max_age = int(opt.get("max_age_seconds") or DEFAULT_MAX_AGE)
            if not 0 < max_age <= 86400 or username in out:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"partners.{app_id}.wsse_in: username must be unique and "
                             "max_age_seconds between 1 and 86400") from None
        out[username] = WsseBank(app_id, code, username, partner.secret, max_age)
    return out


def banks_requiring(banks: dict[str, WsseBank]) -> frozenset[str]:
    return frozenset(b.bank_code for b in banks.values())


def find_bank(security: Any, banks: dict[str, WsseBank]) -> WsseBank | None:
    """The configured bank the header's UsernameToken names, or None (not for us)."""
    username = security.findtext(f"{{{WSSE}}}UsernameToken/{{{WSSE}}}Username")
    return banks.get((username or "").strip())


def verify(hub: Hub, security: Any, bank: WsseBank) -> None:
    """Check the UsernameToken for ``bank``; raise WsseError when it does not hold."""
    token = security.find(f"{{{WSSE}}}UsernameToken")
    password = token.find(f"{{{WSSE}}}Password")
    if bank.secret is None:
        raise WsseError(f"银行 {bank.bank_code} 配置了 WS-Security，但没有密钥")
    if password is None:
        raise WsseError("WS-Security UsernameToken 缺少 Password")
    kind = password.get("Type") or TEXT
    given = (password.text or "").strip()
    nonce_text = (token.findtext(f"{{{WSSE}}}Nonce") or "").strip()
    created_text = (token.findtext(f"{{{WSU}}}Created") or "").strip()
    if kind == DIGEST:
        if not nonce_text or not created_text:
            raise WsseError("PasswordDigest 必须带 Nonce 和 Created")
        try:
            nonce = base64.b64decode(nonce_text, validate=True)
        except (binascii.Error, ValueError):
            raise WsseError("Nonce 不是 Base64") from None
        expected = base64.b64encode(hashlib.sha1(
            nonce + created_text.encode() + bank.secret).digest()).decode()
        ok = hmac.compare_digest(given.encode(), expected.encode())
    elif kind == TEXT:
        ok = hmac.compare_digest(given.encode(), bank.secret)
    else:
        raise WsseError(f"不支持的密码类型 {kind}")
    if not ok:
        raise WsseError("WS-Security 用户名或密码错误")
    if created_text:
        _fresh(created_text, bank.max_age)
    if nonce_text:
        key = hashlib.sha256(nonce_text.encode()).hexdigest()
        with hub.transaction() as s:  # its own commit: a nonce once seen stays seen
            if not remember(s, f"wsse:{bank.app_id}"[:64], key, 2 * bank.max_age):
                raise WsseError("WS-Security Nonce 重放")


def _fresh(created_text: str, max_age: int) -> None:
    try:
        created = datetime.fromisoformat(created_text.replace("Z", "+00:00"))
    except ValueError:
        raise WsseError("Created 不是 ISO 8601 时间") from None
    if created.tzinfo is None:
        raise WsseError("Created 必须带时区（如 Z）")
    now = utcnow().replace(tzinfo=UTC)
    if abs(now - created) > timedelta(seconds=max_age):
        raise WsseError(f"Created 超出 {max_age} 秒的有效期")
