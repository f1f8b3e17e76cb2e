"""Sign-in hardening through the real server, on SQLite and PostgreSQL: failed sign-ins
across many user names throttle their source address (for every user name, known or
not), X-Forwarded-For believed only from a configured proxy, failure rows keep no user
name in plaintext, the per-user lock-out still works; and the session cookie's flags."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from admin import auth
from admin.settings import set_setting
from store.admin_models import AdminLoginFailure, AdminUser
from store.models import AuditEntry
from tests.test_admin_fixtures import (
    ALL_FUNCTIONS,
    PASSWORD,
    Client,
    Served,
    add_operator,
    serve_app,
)


@pytest.fixture
def serve(make_hub, store_url) -> Iterator[Callable[..., Served]]:  # type: ignore[no-untyped-def]
    """``serve(**config)``: a hub on the store under test, served by waitress."""
    stops: list[Callable[[], None]] = []

    def start(**config: Any) -> Served:
        hub = make_hub(store_url, inbound=[], **config)
        url, stop = serve_app(hub)
        stops.append(stop)
        return Served(hub, url)

    yield start
    for stop in stops:
        stop()


def _fail(url: str, username: str, headers: dict[str, str] | None = None) -> int:
    c = Client(url)
    c.get("/admin/login", headers=headers or {})
    resp = c.post("/admin/login", {"username": username, "password": "wrong-password-1"},
                  headers=headers or {})
    return resp.status_code


def _failures(served: Served) -> list[tuple[str, str | None]]:
    with served.hub.transaction() as s:
        return [(f.username, f.remote_addr) for f in s.scalars(select(AdminLoginFailure))]


def test_failures_across_user_names_throttle_the_address(serve):  # type: ignore[no-untyped-def]
    served = serve()
    hub = served.hub
    add_operator(hub, "alice", ALL_FUNCTIONS)
    add_operator(hub, "bob", ALL_FUNCTIONS)
    names = ["alice", "bob"] + [f"guess{i}" for i in range(auth.ADDRESS_FAILURE_LIMIT - 2)]
    # concurrent failures, each a different user name, from one address: each counts
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = list(pool.map(lambda n: _fail(served.url, n), names))
    assert codes == [401] * len(names)
    rows = _failures(served)
    assert len(rows) == auth.ADDRESS_FAILURE_LIMIT
    # no user name in plaintext: the keyed hash of each
    key = auth.failure_hash_key(hub)
    assert sorted(u for u, _ in rows) == sorted(auth.failure_key(key, n) for n in names)
    for username, _ in rows:
        assert len(username) == 64 and not any(n == username for n in names)
    with hub.transaction() as s:
        audit_text = " ".join(f"{a.actor} {a.target} {a.detail}" for a in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "login_failed")))
    assert "guess" not in audit_text
    # the address is now refused for every user name, the right password included
    answers = set()
    for username, password in (("alice", PASSWORD), ("bob", "wrong-password-1"),
                               ("nobody", "wrong-password-1")):
        c = Client(served.url)
        resp = c.login(username, password)
        assert resp.status_code == 429 and "稍后再试" in resp.text, username
        assert "首页统计" not in resp.text and not resp.history  # not signed in
        answers.add(re.sub(r'name="csrf_token" value="[^"]+"', "", resp.text))
    assert len(answers) == 1  # the same answer whether the user exists or not
    assert len(_failures(served)) == auth.ADDRESS_FAILURE_LIMIT  # refused ones not stored
    # nor do they count toward the per-user lock-out
    with hub.transaction() as s:
        alice = s.scalars(select(AdminUser).where(AdminUser.username == "alice")).one()
        assert alice.failed_logins == 1 and alice.locked_until is None
    # once the window has moved on (the failures are 16 minutes old), it signs in
    with hub.transaction() as s:
        s.execute(update(AdminLoginFailure).values(
            at=AdminLoginFailure.at - timedelta(minutes=16)))
    resp = Client(served.url).login("alice")
    assert resp.status_code == 200 and "首页统计" in resp.text


def test_forwarded_for_is_ignored_without_a_trusted_proxy(serve):  # type: ignore[no-untyped-def]
    """Not configured: the header is anyone's to send, so the peer's address counts."""
    limit = 5
    direct = serve(admin={"address_failure_limit": limit})
    add_operator(direct.hub, "alice", ALL_FUNCTIONS)
    for i in range(limit):
        assert _fail(direct.url, f"x{i}", {"X-Forwarded-For": f"203.0.113.{i}"}) == 401
    assert {r for _, r in _failures(direct)} == {"127.0.0.1"}
    c = Client(direct.url)
    c.get("/admin/login", headers={"X-Forwarded-For": "198.51.100.1"})
    resp = c.post("/admin/login", {"username": "alice", "password": PASSWORD},
                  headers={"X-Forwarded-For": "198.51.100.1"})
    assert resp.status_code == 429 and "稍后再试" in resp.text


def test_forwarded_for_from_a_trusted_proxy_names_the_client(serve):  # type: ignore[no-untyped-def]
    """Behind a configured proxy: the client's address from the header."""
    limit = 5
    proxied = serve(admin={"address_failure_limit": limit, "trusted_proxies": ["127.0.0.1"]})
    add_operator(proxied.hub, "alice", ALL_FUNCTIONS)
    attacker = {"X-Forwarded-For": "203.0.113.5"}
    for i in range(limit):
        assert _fail(proxied.url, f"x{i}", attacker) == 401
    # a forged entry in front of the chain does not move the attacker elsewhere
    assert _fail(proxied.url, "y", {"X-Forwarded-For": "198.51.100.9, 203.0.113.5"}) == 429
    assert {r for _, r in _failures(proxied)} == {"203.0.113.5"}
    other = Client(proxied.url)
    other.get("/admin/login", headers={"X-Forwarded-For": "198.51.100.7"})
    resp = other.post("/admin/login", {"username": "alice", "password": PASSWORD},
                      headers={"X-Forwarded-For": "198.51.100.7"})
    assert resp.status_code == 200 and "首页统计" in resp.text


def test_per_user_lock_out_across_addresses(serve):  # type: ignore[no-untyped-def]
    """The per-user lock-out counts one account's failures from any address."""
    served = serve(admin={"trusted_proxies": ["127.0.0.1"]})
    add_operator(served.hub, "carol", ALL_FUNCTIONS)
    for i in range(4):
        assert _fail(served.url, "carol", {"X-Forwarded-For": f"203.0.113.{i}"}) == 401
    c = Client(served.url)
    c.get("/admin/login", headers={"X-Forwarded-For": "203.0.113.9"})
    resp = c.post("/admin/login", {"username": "carol", "password": "wrong-password-1"},
                  headers={"X-Forwarded-For": "203.0.113.9"})
    assert "已被锁定" in resp.text
    resp = Client(served.url).login("carol")
    assert resp.status_code == 401 and "锁定" in resp.text
    key = auth.failure_key(auth.failure_hash_key(served.hub), "carol")
    assert [u for u, _ in _failures(served)] == [key] * 5


def _set_cookie(resp) -> str:  # type: ignore[no-untyped-def]
    found = [v for k, v in resp.raw.headers.items() if k.lower() == "set-cookie"
             and v.startswith("cityhub_admin=")]
    assert found, resp.headers
    return found[0]


@pytest.mark.parametrize("public_url,secure", [("https://hub.example.gov.cn", True),
                                               ("http://127.0.0.1:8080", False)])
def test_session_cookie_flags_follow_public_url(serve, public_url, secure):  # type: ignore[no-untyped-def]
    served = serve(public_url=public_url)
    add_operator(served.hub, "alice", ALL_FUNCTIONS)
    c = Client(served.url)
    first = c.get("/admin/login")
    signed_in = [_set_cookie(first)]
    # a browser sends a Secure cookie only over https: hand it back as the proxy would
    value = first.cookies.get("cityhub_admin") or c.http.cookies.get("cityhub_admin")
    c.http.cookies.clear()
    c.http.cookies.set("cityhub_admin", value)
    login = c.post("/admin/login", {"username": "alice", "password": PASSWORD}, follow=False)
    assert login.status_code == 302, login.text[:300]
    signed_in.append(_set_cookie(login))
    for cookie in signed_in:
        flags = [f.strip().lower() for f in cookie.split(";")]
        assert "httponly" in flags and "samesite=strict" in flags
        assert ("secure" in flags) is secure, cookie
        assert "path=/admin" in flags


def _guess(url: str, username: str, forwarded: str, barrier: threading.Barrier) -> str:
    """One wrong password, sent when every guess of the burst is ready; the page's reason."""
    c = Client(url)
    headers = {"X-Forwarded-For": forwarded}
    c.get("/admin/login", headers=headers)
    barrier.wait(timeout=30)
    text = c.post("/admin/login", {"username": username, "password": "wrong-password-1"},
                  headers=headers).text
    reasons = {"用户名或密码不正确": "bad", "已被锁定，请稍后再试": "locked",
               "账户已被锁定": "locked_now", "来自您所在地址": "throttled"}
    return next((r for words, r in reasons.items() if words in text), text[:200])


def test_a_burst_of_guesses_is_checked_at_most_threshold_times(serve):  # type: ignore[no-untyped-def]
    """Sixteen wrong passwords for one account at the same moment, from sixteen addresses:
    each password check is counted before it runs, so no more than the threshold are
    checked (the others are refused as locked without a check) and the right password
    is refused afterwards."""
    served = serve(admin={"trusted_proxies": ["127.0.0.1"]})
    add_operator(served.hub, "dave", ALL_FUNCTIONS)
    with served.hub.transaction() as s:
        set_setting(s, "lockout_threshold", "3", "test")
    burst = 16
    barrier = threading.Barrier(burst)
    with ThreadPoolExecutor(burst) as pool:
        reasons = list(pool.map(lambda i: _guess(served.url, "dave", f"198.51.100.{i}",
                                                 barrier), range(burst)))
    checked = [r for r in reasons if r in ("bad", "locked_now")]
    assert len(checked) <= 3 and reasons.count("locked_now") == 1, reasons
    assert sorted(set(reasons) - {"bad", "locked_now"}) == ["locked"], reasons
    resp = Client(served.url).login("dave")
    assert resp.status_code == 401 and "锁定" in resp.text
    key = auth.failure_key(auth.failure_hash_key(served.hub), "dave")
    assert [u for u, _ in _failures(served)] == [key] * len(checked)


def test_a_burst_from_one_address_never_passes_its_throttle(serve):  # type: ignore[no-untyped-def]
    """Sixteen wrong sign-ins at once from one address, each for another user name: the
    address's failures are counted under one lock, so only the limit's worth are checked
    and recorded; the rest are throttled (429)."""
    served = serve(admin={"address_failure_limit": 4, "trusted_proxies": ["127.0.0.1"]})
    burst = 16
    barrier = threading.Barrier(burst)
    with ThreadPoolExecutor(burst) as pool:
        reasons = list(pool.map(lambda i: _guess(served.url, f"nobody{i}", "203.0.113.77",
                                                 barrier), range(burst)))
    assert sorted(reasons) == ["bad"] * 4 + ["throttled"] * 12, reasons
    assert [a for _, a in _failures(served)] == ["203.0.113.77"] * 4
