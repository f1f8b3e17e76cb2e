"""Single sign-on through the province's identity provider (contracts/identity.md).

OIDC / OAuth2 code flow through Authlib's Flask client (state, nonce, PKCE S256, the ID
token's signature, issuer, audience and expiry all checked by Authlib), or CAS 3.0
through ``python-cas`` (the ticket validated once, server-side, at ``p3/serviceValidate``).

The province says who someone is (``sub`` / the CAS user, ``unit_id``); ``find_operator``
maps that to the local user whose ``province_user_id`` is ``sub`` (and whose unit's
province unit id is ``unit_id`` when sent). The city's roles and division scope say
what they may do. Nothing is created unless ``identity.auto_provision`` says so.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.identity_config import IDP_SECRET_ID, IdentitySettings
from store.admin_models import AdminRole, AdminUnit, AdminUser
from store.models import utcnow

if TYPE_CHECKING:
    from flask import Flask

    from hub import Hub

log = logging.getLogger("cityhub.admin.sso")

#: Seconds the hub waits for the IdP's token, userinfo, JWKS or ticket validation.
IDP_TIMEOUT = 10.0
MAX_CLAIM = 64

REFUSALS = {
    "unknown": "您的省统一身份认证账号未在本平台开通，请联系系统管理员",
    "disabled": "您的账号已被停用，请联系系统管理员",
    "unit": "您的省统一身份认证所属单位与本平台登记的单位不一致，请联系系统管理员",
    "failed": "省统一身份认证未能完成，请重新登录",
    "claims": "省统一身份认证未返回有效的用户标识，请联系系统管理员",
    "unit_claim": "省统一身份认证返回的单位标识无法识别，请联系系统管理员",
}


@dataclass(frozen=True)
class ProvincePerson:
    """Who the province says signed in."""

    sub: str
    unit_id: str | None
    name: str | None


class SsoRefused(Exception):
    def __init__(self, reason: str, sub: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.sub = reason, sub

    @property
    def message(self) -> str:
        return REFUSALS[self.reason]


def _claim(value: Any) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and len(value) <= MAX_CLAIM and value.isprintable() else None


def person_of(claims: dict[str, Any], sub_key: str = "sub") -> ProvincePerson:
    sub = _claim(claims.get(sub_key))
    if sub is None:
        raise SsoRefused("claims")
    raw_unit = claims.get("unit_id")
    if (isinstance(raw_unit, list) and raw_unit and all(isinstance(v, str) and v.strip()
                                                        for v in raw_unit)
            and len({v.strip() for v in raw_unit}) == 1):
        raw_unit = raw_unit[0]  # a multi-valued attribute with one id (CAS, OIDC)
    unit_id = _claim(raw_unit)
    blank = raw_unit is None or raw_unit == [] or (isinstance(raw_unit, str)
                                                   and not raw_unit.strip())
    if unit_id is None and not blank:
        # sent but not one printable id (too long, a list of several, a control
        # character): unreadable is not absent, and absent would skip the unit check
        raise SsoRefused("unit_claim", sub)
    name = claims.get("name")
    return ProvincePerson(sub, unit_id, name[:64] if isinstance(name, str) else None)


def find_operator(s: Session, person: ProvincePerson,
                  settings: IdentitySettings) -> AdminUser:
    """The local user the province's person is, or SsoRefused (reason code)."""
    user = s.scalars(select(AdminUser).where(AdminUser.province_user_id == person.sub)
                     .order_by(AdminUser.id).limit(1)).first()
    if user is None:
        if settings.auto_provision is None:
            raise SsoRefused("unknown", person.sub)
        return _provision(s, person, settings)
    if not user.active:
        raise SsoRefused("disabled", person.sub)
    if person.unit_id is not None:
        unit = s.get(AdminUnit, user.unit_id) if user.unit_id is not None else None
        if unit is None or unit.province_unit_id != person.unit_id:
            raise SsoRefused("unit", person.sub)
    user.last_login_at = utcnow()
    return user


def _provision(s: Session, person: ProvincePerson, settings: IdentitySettings) -> AdminUser:
    """A newcomer of the configured unit and role, with no divisions until an
    administrator grants some (the role decides functions; scope stays the city's)."""
    from admin.people import create_user, set_user_access

    auto = settings.auto_provision
    assert auto is not None
    unit = s.scalars(select(AdminUnit).where(AdminUnit.name == auto.unit)).first()
    role = s.scalars(select(AdminRole).where(AdminRole.name == auto.role)).first()
    if unit is None or role is None:
        log.warning("identity.auto_provision names a unit or role that does not exist")
        raise SsoRefused("unknown", person.sub)
    # only a person the province places in that very unit: without both ids anybody
    # the province knows (other cities too) would get the role
    if person.unit_id is None or unit.province_unit_id is None \
            or unit.province_unit_id != person.unit_id:
        raise SsoRefused("unit", person.sub)
    username = f"sso-{secrets.token_hex(6)}"
    user = create_user(s, username, person.name or username, secrets.token_urlsafe(32),
                       all_divisions=False)
    user.province_user_id, user.unit_id = person.sub, unit.id
    set_user_access(s, user, [role.id], (), ())
    user.last_login_at = utcnow()
    return user


# --------------------------------------------------------------------------- clients


class _TimeoutSession(requests.Session):
    """A requests session that never waits forever (python-cas passes no timeout)."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", IDP_TIMEOUT)
        return super().request(*args, **kwargs)


def idp_secret(hub: Hub) -> str | None:
    secret = hub.secrets.partner_secret(IDP_SECRET_ID)
    return secret.decode() if secret else None


def init_oidc(app: Flask, hub: Hub, settings: IdentitySettings) -> Any:
    """Register the province's OIDC/OAuth2 client on ``app`` (Authlib); the client."""
    from authlib.integrations.flask_client import OAuth

    o = settings.oidc
    assert o is not None
    oauth = OAuth(app)
    client_kwargs: dict[str, Any] = {"scope": o.scope, "timeout": IDP_TIMEOUT}
    if o.pkce:
        client_kwargs["code_challenge_method"] = "S256"
    kwargs: dict[str, Any] = {}
    if o.discovery:
        kwargs["server_metadata_url"] = f"{o.issuer}/.well-known/openid-configuration"
    else:
        kwargs.update(authorize_url=o.authorize_url, access_token_url=o.token_url,
                      userinfo_endpoint=o.userinfo_url)
    return oauth.register("province", client_id=o.client_id,
                          client_secret=idp_secret(hub), client_kwargs=client_kwargs,
                          **kwargs)


def end_session_url(client: Any, settings: IdentitySettings) -> str | None:
    o = settings.oidc
    if o is None:
        return None
    if o.end_session_url:
        return o.end_session_url
    if not o.discovery:
        return None
    try:
        return client.load_server_metadata().get("end_session_endpoint")
    except Exception:  # the provider is unreachable: the hub's session ends anyway
        log.warning("OIDC discovery failed while signing out")
        return None


def cas_client(settings: IdentitySettings, service_url: str) -> Any:
    from cas import CASClient

    assert settings.cas is not None
    return CASClient(version=3, service_url=service_url,
                     server_url=settings.cas.server + "/", session=_TimeoutSession())
