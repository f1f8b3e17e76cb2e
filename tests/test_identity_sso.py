"""Operators sign in through the province's identity provider, in Debian's chromium:
OIDC (discovery, PKCE, ID token) and CAS 3.0 against the simulated providers of
adapters/sim/ on loopback; an unknown province user is refused in Chinese and the
refusal is audited; sign-out ends the session at the hub and at the provider."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from adapters.sim.cas import CasSim
from adapters.sim.oidc import OidcSim
from admin.people import create_user, set_role_functions, set_user_access
from store.admin_models import AdminRole, AdminUnit, AdminUser
from store.models import AuditEntry
from tests.hubserver import HubServer
from tests.test_admin_fixtures import COUNTY_FUNCTIONS, PASSWORD

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
sync_api = pytest.importorskip("playwright.sync_api")

IDP_SECRET = "idp-client-secret-0123456789"
USERS = {
    "p.zhang": {"password": "zhang-pass-1", "name": "张经办", "unit_id": "P-UNIT-TC"},
    "p.stranger": {"password": "stranger-pass-1", "name": "陌生人", "unit_id": "P-UNIT-TC"},
    "p.other-unit": {"password": "other-pass-1", "name": "李经办", "unit_id": "P-UNIT-XX"},
}


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _operator(hub, username: str, sub: str) -> None:
    """A 通川区 operator of the unit the province knows as P-UNIT-TC."""
    with hub.transaction() as s:
        unit = s.scalars(select(AdminUnit).where(AdminUnit.name == "通川区住建局")).first()
        if unit is None:
            unit = AdminUnit(name="通川区住建局", province_unit_id="P-UNIT-TC", division="511702")
            s.add(unit)
            s.flush()
        role = AdminRole(name=f"role-{username}")
        s.add(role)
        s.flush()
        set_role_functions(s, role, COUNTY_FUNCTIONS)
        user = create_user(s, username, "张经办", PASSWORD, unit_id=unit.id,
                           province_user_id=sub)
        set_user_access(s, user, [role.id], ("511702",), hub.city.counties)


def _served(make_hub, sqlite_url, identity, monkeypatch):
    monkeypatch.setenv("HUB_SECRET_IDP", IDP_SECRET)
    hub = make_hub(sqlite_url, inbound=[], identity=identity)
    server = HubServer(hub).start()
    return hub, server


@pytest.fixture
def oidc_hub(make_hub, sqlite_url, monkeypatch):
    sim = OidcSim(USERS, "cityhub_511700", IDP_SECRET, ()).start()
    hub, server = _served(make_hub, sqlite_url, {
        "protocol": "oidc", "local_password": True,
        "oidc": {"issuer": sim.issuer, "client_id": "cityhub_511700"}}, monkeypatch)
    sim.state.redirect_prefixes = (hub.config.public_url + "/admin",)
    yield hub, server, sim
    server.stop()
    sim.stop()


@pytest.fixture
def cas_hub(make_hub, sqlite_url, monkeypatch):
    sim = CasSim(USERS, ()).start()
    hub, server = _served(make_hub, sqlite_url, {
        "protocol": "cas", "local_password": False, "cas": {"server": sim.server_url}},
        monkeypatch)
    sim.state.service_prefixes = (hub.config.public_url + "/admin",)
    yield hub, server, sim
    server.stop()
    sim.stop()


def _provider_sign_in(page, sub: str) -> None:
    page.fill("input[name=username]", sub)
    page.fill("input[name=password]", USERS[sub]["password"])
    page.click("#idp-submit")


def _audit(hub, action: str) -> list[AuditEntry]:
    with hub.db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_oidc_sign_in_lands_on_dashboard_with_division_scope_and_sign_out_ends_both(
        oidc_hub, browser):
    hub, server, sim = oidc_hub
    _operator(hub, "zhang", "p.zhang")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(server.url + "/admin/")
    page.click("#sso-login")
    assert page.url.startswith(sim.issuer + "/authorize")
    assert "code_challenge=" in page.url and "nonce=" in page.url and "state=" in page.url
    _provider_sign_in(page, "p.zhang")
    page.wait_for_selector("text=首页统计")
    assert "数据范围：通川区" in page.inner_text("main")
    assert "zhang" in page.inner_text(".who")
    assert sim.signed_in_subs() == ["p.zhang"]
    login = _audit(hub, "login")
    assert [e.actor for e in login] == ["zhang"] and "oidc" in login[0].detail
    # sign out: the hub's session ends and the browser is sent to the provider's logout
    page.click(".who button[type=submit]")
    page.wait_for_url(server.url + "/admin/login")
    assert sim.signed_in_subs() == [] and sim.state.logouts == 1
    page.goto(server.url + "/admin/")
    assert page.url.startswith(server.url + "/admin/login")
    # signing in again asks the provider for the password again
    page.click("#sso-login")
    page.wait_for_selector("#idp-submit")


def test_oidc_unknown_province_user_is_refused_in_chinese_and_audited(oidc_hub, browser):
    hub, server, sim = oidc_hub
    _operator(hub, "zhang", "p.zhang")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(server.url + "/admin/login")
    page.click("#sso-login")
    _provider_sign_in(page, "p.stranger")
    assert "未在本平台开通" in page.inner_text("#login-error")
    refused = _audit(hub, "login_refused")
    assert len(refused) == 1 and refused[0].target == "province:p.stranger"
    with hub.db.session() as s:  # nothing was created
        assert s.scalars(select(AdminUser.username)).all() == ["zhang"]
    page.goto(server.url + "/admin/")
    assert page.url.startswith(server.url + "/admin/login")


def test_oidc_unit_mismatch_refused(oidc_hub, browser):
    hub, server, _ = oidc_hub
    _operator(hub, "li", "p.other-unit")  # the province says another unit
    page = browser.new_page()
    page.goto(server.url + "/admin/login")
    page.click("#sso-login")
    _provider_sign_in(page, "p.other-unit")
    assert "所属单位" in page.inner_text("#login-error")


def test_oidc_callback_without_the_flow_state_is_refused(oidc_hub, browser):
    """A forged redirect back (another browser's code and state) signs nobody in."""
    hub, server, sim = oidc_hub
    _operator(hub, "zhang", "p.zhang")
    page = browser.new_page()
    page.goto(server.url + "/admin/sso/callback?code=forged&state=forged")
    assert "未能完成" in page.inner_text("#login-error")
    page.goto(server.url + "/admin/")
    assert page.url.startswith(server.url + "/admin/login")


def test_a_second_tab_signing_in_first_leaves_the_first_tab_signed_in(oidc_hub, browser):
    """Two tabs of one browser both start single sign-on; the second finishes first, and
    its sign-in renews the session, which drops the first tab's flow. The first tab's
    redirect back then lands on the pages, signed in (it was refused with 403
    「未能完成」 before), says who is signed in (a shared PC: it may not be the person at
    the keyboard) and is audited; it signs nobody in. A forged one in a browser not
    signed in by single sign-on is still refused."""
    hub, server, sim = oidc_hub
    _operator(hub, "zhang", "p.zhang")
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    for page in (first, second):
        page.goto(server.url + "/admin/login")
        page.click("#sso-login")
        page.wait_for_selector("#idp-submit")
    _provider_sign_in(second, "p.zhang")
    second.wait_for_selector("text=首页统计")
    _provider_sign_in(first, "p.zhang")
    first.wait_for_selector("text=首页统计")
    assert first.query_selector("#login-error") is None
    assert "/sso/" not in first.url and "zhang" in first.inner_text(".who")
    assert "已以 zhang 的身份登录（另一个标签页先完成了统一身份认证）" in first.inner_text("main")
    assert len(_audit(hub, "login")) == 1 and _audit(hub, "login_refused") == []
    assert [(e.actor, e.target) for e in _audit(hub, "sso_superseded")] == [("zhang", "zhang")]
    forged = context.new_page()
    forged.goto(server.url + "/admin/sso/callback?code=forged&state=forged")
    assert forged.query_selector("#login-error") is None  # signed in: nothing to refuse
    context.clear_cookies()
    forged.goto(server.url + "/admin/sso/callback?code=forged&state=forged")
    assert "未能完成" in forged.inner_text("#login-error")
    assert len(_audit(hub, "login")) == 1
    context.close()


def test_cas_sign_in_refusal_and_sign_out(cas_hub, browser):
    hub, server, sim = cas_hub
    _operator(hub, "zhang", "p.zhang")
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.goto(server.url + "/admin/login")
    assert page.locator("#local-login").count() == 0  # identity.local_password: false
    page.click("#sso-login")
    assert page.url.startswith(sim.server_url + "/login?service=")
    _provider_sign_in(page, "p.zhang")
    page.wait_for_selector("text=首页统计")
    assert "数据范围：通川区" in page.inner_text("main")
    assert sim.state.validations == 1
    page.click(".who button[type=submit]")
    page.wait_for_url(server.url + "/admin/login")
    assert sim.signed_in_users() == []
    page.goto(server.url + "/admin/")
    assert page.url.startswith(server.url + "/admin/login")
    # an unknown province user, through CAS
    page.click("#sso-login")
    _provider_sign_in(page, "p.stranger")
    assert "未在本平台开通" in page.inner_text("#login-error")
    assert [e.target for e in _audit(hub, "login_refused")] == ["province:p.stranger"]


def test_cas_ticket_is_validated_once(cas_hub, browser):
    """Replaying the redirect back with the same ticket signs nobody in."""
    hub, server, sim = cas_hub
    _operator(hub, "zhang", "p.zhang")
    page = browser.new_page()
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url) if "ticket=" in r.url else None)
    page.goto(server.url + "/admin/login")
    page.click("#sso-login")
    _provider_sign_in(page, "p.zhang")
    page.wait_for_selector("text=首页统计")
    other = browser.new_page()
    other.goto(server.url + "/admin/login")
    other.goto(urls[0])
    assert "未能完成" in other.inner_text("#login-error")


def test_local_password_refused_when_switched_off(cas_hub):
    import requests

    hub, server, _ = cas_hub
    _operator(hub, "zhang", "p.zhang")
    http = requests.Session()
    page = http.get(server.url + "/admin/login").text
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    resp = http.post(server.url + "/admin/login",
                     data={"username": "zhang", "password": PASSWORD,
                           "csrf_token": token.group(1) if token else ""})
    assert resp.status_code in (400, 403)
    assert http.get(server.url + "/admin/", allow_redirects=False).status_code == 302


def test_plain_oauth2_without_discovery_uses_the_userinfo_endpoint(
        make_hub, sqlite_url, monkeypatch, browser):
    sim = OidcSim(USERS, "cityhub_511700", IDP_SECRET, ()).start()
    base = sim.issuer
    try:
        hub, server = _served(make_hub, sqlite_url, {"protocol": "oidc", "oidc": {
            "issuer": base, "client_id": "cityhub_511700",
            "authorize_url": base + "/authorize", "token_url": base + "/token",
            "userinfo_url": base + "/userinfo", "end_session_url": base + "/logout"}},
            monkeypatch)
        sim.state.redirect_prefixes = (hub.config.public_url + "/admin",)
        _operator(hub, "zhang", "p.zhang")
        page = browser.new_page()
        page.goto(server.url + "/admin/login")
        page.click("#sso-login")
        assert "nonce=" not in page.url and "code_challenge=" in page.url
        _provider_sign_in(page, "p.zhang")
        page.wait_for_selector("text=首页统计")
        page.click(".who button[type=submit]")
        page.wait_for_url(server.url + "/admin/login")
        assert sim.signed_in_subs() == []
        server.stop()
    finally:
        sim.stop()


@pytest.mark.parametrize("tamper", ["aud", "iss", "nonce", "expired", "key"])
def test_a_wrong_id_token_signs_nobody_in(oidc_hub, tamper):
    """The ID token's audience, issuer, nonce, expiry and signature are each checked."""
    import requests

    hub, server, sim = oidc_hub
    _operator(hub, "zhang", "p.zhang")
    sim.state.tamper = tamper
    http = requests.Session()
    form = http.get(server.url + "/admin/sso/login", timeout=10)
    assert form.url.startswith(sim.issuer + "/authorize") and "idp-submit" in form.text
    back = http.post(form.url, data={"username": "p.zhang",
                                     "password": USERS["p.zhang"]["password"]}, timeout=10)
    assert back.status_code == 403 and "省统一身份认证未能完成" in back.text
    assert http.get(server.url + "/admin/", allow_redirects=False).status_code == 302
    assert [e.detail for e in _audit(hub, "login")] == []
    assert len(_audit(hub, "login_refused")) == 1
    sim.state.tamper = None  # the same flow with a good token works
    form = http.get(server.url + "/admin/sso/login", timeout=10)
    assert "首页统计" in form.text


def test_a_lost_flow_in_a_browser_signed_in_by_password_is_still_refused(oidc_hub):
    """Only a session that single sign-on opened is taken as the overtaking tab's: a
    redirect back with no flow, into a browser signed in by password, is refused."""
    from tests.test_admin_fixtures import Client

    hub, server, _ = oidc_hub
    _operator(hub, "zhang", "p.zhang")
    c = Client(server.url)
    c.login("zhang")
    resp = c.get("/admin/sso/callback?code=forged&state=forged")
    assert resp.status_code == 403 and "未能完成" in resp.text
    assert _audit(hub, "sso_superseded") == [] and len(_audit(hub, "login_refused")) == 1
