"""Sign-in, CSRF refusal, lock-out, sign-out and create-admin, over real HTTP."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import select

from store.admin_models import AdminUser
from store.models import AuditEntry
from tests.support import hub_command, write_config
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    PASSWORD,
    Client,
    add_operator,
    client,
    county_peer,
    served,
)


def test_sign_in_cookie_flags_and_sign_out(served, client):  # noqa: F811
    add_operator(served.hub, "alice", ALL_FUNCTIONS)
    assert "登录" in client.get("/admin/").text  # redirected to the sign-in page
    resp = client.login("alice")
    assert resp.status_code == 200 and "首页统计" in resp.text
    cookie = next(h for k, h in resp.history[0].headers.items() if k == "Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    old_cookie = client.http.cookies.get("cityhub_admin")
    client.post("/admin/logout")
    assert "id=\"login-submit\"" in client.get("/admin/").text
    # the cookie from before sign-out no longer works
    replay = Client(served.url)
    replay.http.cookies.set("cityhub_admin", old_cookie)
    resp = replay.get("/admin/", follow=False)
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]


def test_wrong_password_and_csrf_refused(served, client):  # noqa: F811
    add_operator(served.hub, "bob", ALL_FUNCTIONS)
    assert client.login("bob", "wrong-password-1").status_code == 401
    client.get("/admin/login")
    resp = client.post("/admin/login", {"username": "bob", "password": PASSWORD}, csrf=False)
    assert resp.status_code == 400 and "CSRF" in resp.text
    assert client.login("bob").status_code == 200
    # a signed-in form without (or with a wrong) token is refused and changes nothing
    for token in (None, "forged"):
        data = {"key": "lockout_threshold", "lockout_threshold": "9"}
        if token:
            data["csrf_token"] = token
        resp = client.post("/admin/settings/params", data, csrf=False)
        assert resp.status_code == 400
    assert 'value="5"' in client.get("/admin/settings").text
    resp = client.post("/admin/settings/params", {"lockout_threshold": "9"})
    assert resp.status_code == 200 and 'value="9"' in resp.text


def test_lock_out_after_repeated_failures(served, client):  # noqa: F811
    add_operator(served.hub, "carol", ALL_FUNCTIONS)
    for _ in range(4):
        assert client.login("carol", "not-the-password-1").status_code == 401
    resp = client.login("carol", "not-the-password-1")
    assert "已被锁定" in resp.text
    # the right password is refused while locked
    resp = client.login("carol")
    assert resp.status_code == 401 and "锁定" in resp.text
    with served.hub.transaction() as s:
        user = s.scalars(select(AdminUser).where(AdminUser.username == "carol")).one()
        assert user.locked_until is not None
        failures = s.scalars(select(AuditEntry).where(AuditEntry.action == "login_failed")).all()
        assert len(failures) == 6
    # an administrator unlocks the account
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    admin_client = Client(served.url)
    admin_client.login("root")
    admin_client.get("/admin/users")
    with served.hub.transaction() as s:
        uid = s.scalars(select(AdminUser.id).where(AdminUser.username == "carol")).one()
    admin_client.post(f"/admin/users/{uid}", {"action": "unlock"})
    assert client.login("carol").status_code == 200


def test_create_admin_reads_password_from_env_or_stdin(sqlite_url, tmp_path):
    config = write_config(tmp_path / "cfg", sqlite_url, inbound=[])
    env = {k: v for k, v in os.environ.items() if k != "HUB_ADMIN_PASSWORD"}
    cmd = hub_command(config, "create-admin", "--username", "root")
    empty = subprocess.run(cmd, input="", capture_output=True, text=True, env=env, timeout=60)
    assert empty.returncode == 2 and "错误：没有密码" in empty.stderr
    weak = subprocess.run(cmd, input="short\n", capture_output=True, text=True, env=env,
                          timeout=60)
    assert weak.returncode == 2
    [line] = weak.stderr.strip().splitlines()
    assert line.startswith("错误：") and "密码" in line, weak.stderr
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                        env={**env, "HUB_ADMIN_PASSWORD": PASSWORD})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "已创建管理员 root（角色：系统管理员，数据权限：全市所有区划）"
    again = subprocess.run(cmd, input=PASSWORD + "\n", capture_output=True, text=True,
                           env=env, timeout=60)
    assert again.returncode == 2 and again.stderr.strip() == "错误：用户名 root 已存在"


def test_unknown_user_costs_the_same_hash_check(served, client, monkeypatch):  # noqa: F811
    from admin import auth
    from store.admin_models import AdminLoginFailure

    add_operator(served.hub, "bob", ALL_FUNCTIONS)
    add_operator(served.hub, "gone", ALL_FUNCTIONS)
    with served.hub.transaction() as s:
        s.scalars(select(AdminUser).where(AdminUser.username == "gone")).one().active = False
        hashes = {u.username: u.password_hash for u in s.scalars(select(AdminUser))}
    checked: list[str] = []
    real_check = auth.check_password_hash

    def check(pwhash: str, password: str) -> bool:
        checked.append(pwhash)
        return real_check(pwhash, password)

    monkeypatch.setattr(auth, "check_password_hash", check)
    answers = {}
    for username in ("bob", "ghost", "gone"):
        checked.clear()
        resp = client.login(username, "wrong-password-1")
        answers[username] = (resp.status_code, resp.text)
        # one hash check each: the user's own hash, or for an unknown user the dummy one,
        # made by the same function (same method and cost) as real ones
        expected = hashes.get(username) or auth.dummy_password_hash()
        assert checked == [expected], username
    dummy = auth.dummy_password_hash()
    assert dummy.split("$")[0] == hashes["bob"].split("$")[0]
    assert dummy not in hashes.values()
    assert answers["ghost"] == answers["bob"] == answers["gone"]
    assert answers["bob"][0] == 401 and "用户名或密码不正确" in answers["bob"][1]
    with served.hub.transaction() as s:
        failures = {f.username: f.remote_addr for f in s.scalars(select(AdminLoginFailure))}
        audits = {a.actor: (a.target, a.detail) for a in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "login_failed"))}
    # the failures' user names are stored as keyed hashes, never as typed
    key = auth.failure_hash_key(served.hub)
    assert failures == {auth.failure_key(key, name): "127.0.0.1"
                        for name in ("bob", "ghost", "gone")}
    # the audit names accounts that exist; a name no account has is only its hash
    assert {name: detail for name, (_, detail) in audits.items()} == {
        name: '{"reason": "bad", "remote": "127.0.0.1"}' for name in ("bob", "-", "gone")}
    assert audits["-"][0] == "key:" + auth.failure_key(key, "ghost")[:16]


def test_prune_login_failures(served):  # noqa: F811
    from datetime import datetime, timedelta

    from admin.auth import LOGIN_FAILURE_RETENTION, prune_login_failures
    from store.admin_models import AdminLoginFailure
    from store.models import utcnow

    now = datetime(2024, 6, 1, 12, 0, 0)
    ages = {"a": timedelta(days=400), "b": timedelta(days=91), "c": timedelta(days=89),
            "d": timedelta(days=31), "e": timedelta(days=29), "f": timedelta(0)}
    with served.hub.transaction() as s:
        s.add_all(AdminLoginFailure(username=name, remote_addr="10.0.0.1", at=now - age)
                  for name, age in ages.items())
    with served.hub.transaction() as s:
        assert prune_login_failures(s, LOGIN_FAILURE_RETENTION, now=now) == 2
    with served.hub.transaction() as s:
        assert sorted(s.scalars(select(AdminLoginFailure.username))) == ["c", "d", "e", "f"]
        assert prune_login_failures(s, timedelta(days=30), now=now) == 2
        assert prune_login_failures(s, timedelta(days=30), now=now) == 0
    with served.hub.transaction() as s:
        assert sorted(s.scalars(select(AdminLoginFailure.username))) == ["e", "f"]
        # by default: the retention, counted from the current time
        s.add(AdminLoginFailure(username="g", remote_addr="10.0.0.1", at=utcnow()))
        s.flush()
        assert prune_login_failures(s) == 2
        assert list(s.scalars(select(AdminLoginFailure.username))) == ["g"]
