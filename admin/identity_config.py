"""Config ``identity`` (contracts/identity.md): single sign-on through the province's
identity provider, break-glass local passwords, and the 一网通办 entry. Read once at
start-up; a wrong value fails with ``file: identity.key: why``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from hub import Config

PROTOCOLS = ("none", "oidc", "cas")
#: The secret the hub authenticates itself to the IdP with: ``HUB_SECRET_IDP`` (or
#: ``partners.idp`` of the secrets file), never config.yaml.
IDP_SECRET_ID = "idp"
OIDC_URLS = ("authorize_url", "token_url", "userinfo_url", "end_session_url")


@dataclass(frozen=True)
class AutoProvision:
    """Newcomers the province vouches for become users of this unit with this role."""

    unit: str
    role: str


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    client_id: str
    #: Default "openid profile" with discovery; "profile" for plain OAuth2 (no ID token).
    scope: str = "openid profile"
    #: Explicit endpoints for a provider without discovery (plain OAuth2 code flow).
    authorize_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    end_session_url: str | None = None
    pkce: bool = True

    @property
    def discovery(self) -> bool:
        return self.authorize_url is None


@dataclass(frozen=True)
class CasSettings:
    server: str


@dataclass(frozen=True)
class EntrySettings:
    """The 一网通办 entry: who signs handover tokens (the province partner's secret)."""

    issuer: str = "province"
    audience: str = ""
    partner: str = "province"
    session_minutes: int = 30
    max_token_bytes: int = 8192


@dataclass(frozen=True)
class IdentitySettings:
    protocol: str = "none"
    local_password: bool = True
    auto_provision: AutoProvision | None = None
    oidc: OidcSettings | None = None
    cas: CasSettings | None = None
    entry: EntrySettings = field(default_factory=EntrySettings)

    @property
    def sso(self) -> bool:
        return self.protocol != "none"


class IdentityConfigError(ValueError):
    pass


def _url(value: Any, where: str) -> str:
    text = str(value or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise IdentityConfigError(f"{where}: must be an http(s) URL with a host and no query")
    return text.rstrip("/")


def _mapping(raw: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise IdentityConfigError(f"{where}: must be a mapping")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise IdentityConfigError(f"{where}.{unknown[0]}: unknown setting")
    return raw


def _bool(value: Any, where: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise IdentityConfigError(f"{where}: must be true or false")
    return value


def parse_identity(raw: Any, hub_app_id: str, where: str = "identity") -> IdentitySettings:
    """The ``identity`` section checked; raises IdentityConfigError naming the key."""
    raw = _mapping(raw, where, {"protocol", "local_password", "auto_provision", "oidc",
                                "cas", "entry"})
    protocol = str(raw.get("protocol") or "none")
    if protocol not in PROTOCOLS:
        raise IdentityConfigError(f"{where}.protocol: one of {', '.join(PROTOCOLS)}")
    local = _bool(raw.get("local_password"), f"{where}.local_password", True)
    if protocol == "none" and not local:
        raise IdentityConfigError(f"{where}.local_password: false needs a protocol "
                                  "(nobody could sign in)")
    auto = None
    if raw.get("auto_provision") is not None:
        ap = _mapping(raw["auto_provision"], f"{where}.auto_provision", {"unit", "role"})
        unit, role = str(ap.get("unit") or "").strip(), str(ap.get("role") or "").strip()
        if not unit or not role:
            raise IdentityConfigError(f"{where}.auto_provision: names a unit and a role")
        auto = AutoProvision(unit, role)
    oidc = cas = None
    if protocol == "oidc":
        o = _mapping(raw.get("oidc"), f"{where}.oidc",
                     {"issuer", "client_id", "scope", "pkce", *OIDC_URLS})
        client_id = str(o.get("client_id") or "").strip()
        if not client_id:
            raise IdentityConfigError(f"{where}.oidc.client_id: required")
        urls = {k: _url(o[k], f"{where}.oidc.{k}") for k in OIDC_URLS if o.get(k)}
        if ("authorize_url" in urls) != ("token_url" in urls):
            raise IdentityConfigError(f"{where}.oidc.token_url: authorize_url and token_url "
                                      "go together (or neither, for discovery)")
        if "authorize_url" in urls and "userinfo_url" not in urls:
            raise IdentityConfigError(f"{where}.oidc.userinfo_url: required without discovery")
        oidc = OidcSettings(issuer=_url(o.get("issuer"), f"{where}.oidc.issuer"),
                            client_id=client_id,
                            scope=str(o.get("scope") or ("profile" if urls.get("authorize_url")
                                                         else "openid profile")),
                            pkce=_bool(o.get("pkce"), f"{where}.oidc.pkce", True), **urls)
    elif protocol == "cas":
        c = _mapping(raw.get("cas"), f"{where}.cas", {"server"})
        cas = CasSettings(_url(c.get("server"), f"{where}.cas.server"))
    e = _mapping(raw.get("entry"), f"{where}.entry",
                 {"issuer", "audience", "partner", "session_minutes", "max_token_bytes"})
    minutes = e.get("session_minutes", 30)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= 120:
        raise IdentityConfigError(f"{where}.entry.session_minutes: a whole number 1-120")
    max_bytes = e.get("max_token_bytes", 8192)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or \
            not 512 <= max_bytes <= 65536:
        raise IdentityConfigError(f"{where}.entry.max_token_bytes: a whole number 512-65536")
    entry = EntrySettings(issuer=str(e.get("issuer") or "province"),
                          audience=str(e.get("audience") or hub_app_id),
                          partner=str(e.get("partner") or "province"),
                          session_minutes=minutes, max_token_bytes=max_bytes)
    return IdentitySettings(protocol, local, auto, oidc, cas, entry)


def identity_of(config: Config) -> IdentitySettings:
    """The checked settings of ``config`` (ConfigError ``file: identity.key: why``)."""
    from hub import ConfigError

    try:
        return parse_identity(config.raw.get("identity"), config.hub_app_id)
    except IdentityConfigError as exc:
        raise ConfigError(f"{config.path}: {exc}") from None
