"""Config ``identity`` is checked at start-up: a wrong value names its key."""

from __future__ import annotations

import pytest

from admin.identity_config import IdentityConfigError, parse_identity
from hub import ConfigError, Hub, load_config


@pytest.mark.parametrize(("raw", "key"), [
    ({"protocol": "saml"}, "identity.protocol"),
    ({"protocol": "none", "local_password": False}, "identity.local_password"),
    ({"local_password": "no"}, "identity.local_password"),
    ({"protocol": "oidc", "oidc": {"issuer": "http://idp"}}, "identity.oidc.client_id"),
    ({"protocol": "oidc", "oidc": {"issuer": "ftp://idp", "client_id": "x"}},
     "identity.oidc.issuer"),
    ({"protocol": "oidc", "oidc": {"issuer": "http://idp", "client_id": "x",
                                   "authorize_url": "http://idp/a"}}, "identity.oidc.token_url"),
    ({"protocol": "oidc", "oidc": {"issuer": "http://idp", "client_id": "x",
                                   "authorize_url": "http://idp/a", "token_url": "http://idp/t"}},
     "identity.oidc.userinfo_url"),
    ({"protocol": "oidc", "oidc": {"issuer": "http://idp", "client_id": "x", "secret": "s"}},
     "identity.oidc.secret"),
    ({"protocol": "cas", "cas": {}}, "identity.cas.server"),
    ({"auto_provision": {"unit": "u"}}, "identity.auto_provision"),
    ({"entry": {"session_minutes": 0}}, "identity.entry.session_minutes"),
    ({"entry": {"max_token_bytes": 10**9}}, "identity.entry.max_token_bytes"),
    ("oidc", "identity"),
])
def test_bad_identity_settings_name_their_key(raw, key):
    with pytest.raises(IdentityConfigError) as err:
        parse_identity(raw, "cityhub_511700")
    assert str(err.value).startswith(key + ":"), err.value


def test_defaults_and_a_good_oidc_section():
    plain = parse_identity(None, "cityhub_511700")
    assert (plain.protocol, plain.local_password, plain.sso) == ("none", True, False)
    assert plain.entry.audience == "cityhub_511700" and plain.entry.session_minutes == 30
    oidc = parse_identity({"protocol": "oidc", "oidc": {"issuer": "https://idp.example/",
                                                        "client_id": "c"}}, "h")
    assert oidc.oidc is not None and oidc.oidc.issuer == "https://idp.example"
    assert oidc.oidc.discovery and oidc.oidc.pkce and "openid" in oidc.oidc.scope


def test_the_hub_refuses_to_start_with_a_bad_identity_section(make_config, sqlite_url):
    from tests.hubserver import HubServer

    hub = Hub(load_config(make_config(sqlite_url, inbound=["entry"],
                                      identity={"protocol": "kerberos"})))
    try:
        with pytest.raises(ConfigError, match=r"config.yaml: identity.protocol: one of"):
            HubServer(hub)
    finally:
        hub.close()
