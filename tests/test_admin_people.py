"""Users, roles and units: a name already in use is refused with a message, over real
HTTP, and changes nothing — also when another operator takes the name between the
check and the write (the unique violation is caught)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from admin import people
from store.admin_models import AdminRole, AdminRoleFunction, AdminUnit, AdminUser
from store.models import AuditEntry
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    PASSWORD,
    add_operator,
    client,
    county_peer,
    served,
)


@pytest.fixture
def signed_in(served, client):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    assert client.login("root").status_code == 200
    client.get("/admin/users")
    return client


@pytest.fixture
def check_misses_once(monkeypatch):
    """The name check answers "free" once, as if another operator took the name just
    after it: the write then hits the unique constraint."""
    real = people.name_taken
    calls = {"n": 0}

    def name_taken(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return False if calls["n"] == 1 else real(*args, **kwargs)

    monkeypatch.setattr(people, "name_taken", name_taken)
    return calls


def _roles(hub) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return {r.name: set(s.scalars(select(AdminRoleFunction.function)
                                      .where(AdminRoleFunction.role_id == r.id)))
                for r in s.scalars(select(AdminRole))}


def _units(hub) -> dict[int, tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return {u.id: (u.name, u.province_unit_id) for u in s.scalars(select(AdminUnit))}


def _audits(hub, action: str) -> int:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry)
                        .where(AuditEntry.action == action))


def _role_id(hub, name: str) -> int:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return s.scalars(select(AdminRole.id).where(AdminRole.name == name)).one()


def test_role_name_in_use_is_refused(served, signed_in, check_misses_once):  # noqa: F811
    c = signed_in
    for name, fn in (("审核员", "resubmit"), ("查看员", "view")):
        resp = c.post("/admin/roles", {"name": name, "function": [fn]})
        assert resp.status_code == 200 and "已保存角色" in resp.text
    before, saves = _roles(served.hub), _audits(served.hub, "save_role")
    viewer = _role_id(served.hub, "查看员")
    check_misses_once["n"] = 1  # the checks below are honest

    # renaming to a name in use, and creating one: the form again, with the reason
    for role_id in (str(viewer), ""):
        resp = c.post("/admin/roles", {"role_id": role_id, "name": "审核员",
                                       "function": ["export"]})
        assert resp.status_code == 200, resp.text[:300]
        assert "角色名称 审核员 已存在" in resp.text and 'action="/admin/roles"' in resp.text
    assert _roles(served.hub) == before and _audits(served.hub, "save_role") == saves

    # the same when the name is taken between the check and the write (the race)
    for role_id in (str(viewer), ""):
        check_misses_once["n"] = 0
        resp = c.post("/admin/roles", {"role_id": role_id, "name": "审核员",
                                       "function": ["export"]})
        assert resp.status_code == 200, resp.text[:300]
        assert "角色名称 审核员 已存在" in resp.text
    assert _roles(served.hub) == before and _audits(served.hub, "save_role") == saves

    # keeping its own name is not a clash
    resp = c.post("/admin/roles", {"role_id": str(viewer), "name": "查看员",
                                   "function": ["view", "export"]})
    assert "已保存角色" in resp.text
    assert _roles(served.hub)["查看员"] == {"view", "export"}


def test_unit_name_in_use_is_refused(served, signed_in, check_misses_once):  # noqa: F811
    c = signed_in
    for name, pid in (("通川区住建局", "P-1"), ("达川区住建局", "P-2")):
        resp = c.post("/admin/units", {"name": name, "province_unit_id": pid})
        assert resp.status_code == 200 and "已保存单位" in resp.text
    before, saves = _units(served.hub), _audits(served.hub, "save_unit")
    second = next(uid for uid, (name, _) in before.items() if name == "达川区住建局")
    check_misses_once["n"] = 1

    for misses in (False, True):
        for unit_id in (str(second), ""):
            if misses:
                check_misses_once["n"] = 0
            resp = c.post("/admin/units", {"unit_id": unit_id, "name": "通川区住建局",
                                           "province_unit_id": "P-9"})
            assert resp.status_code == 200, resp.text[:300]
            assert "单位名称 通川区住建局 已存在" in resp.text
            assert 'action="/admin/units"' in resp.text
        assert _units(served.hub) == before and _audits(served.hub, "save_unit") == saves

    resp = c.post("/admin/units", {"unit_id": str(second), "name": "达川区住建局",
                                   "province_unit_id": "P-3"})
    assert "已保存单位" in resp.text and _units(served.hub)[second] == ("达川区住建局", "P-3")


def test_user_name_in_use_is_refused(served, signed_in, check_misses_once):  # noqa: F811
    c = signed_in
    add_operator(served.hub, "dora", ("view",))
    check_misses_once["n"] = 1
    with served.hub.transaction() as s:
        before = s.scalar(select(func.count()).select_from(AdminUser))
        dora_hash = s.scalars(select(AdminUser.password_hash)
                              .where(AdminUser.username == "dora")).one()
    for misses in (False, True):
        if misses:
            check_misses_once["n"] = 0
        resp = c.post("/admin/users/new", {"username": "dora", "display_name": "另一个",
                                           "password": PASSWORD + "x"})
        assert resp.status_code == 200, resp.text[:300]
        assert "用户名 dora 已存在" in resp.text and 'action="/admin/users/new"' in resp.text
    with served.hub.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AdminUser)) == before
        dora = s.scalars(select(AdminUser).where(AdminUser.username == "dora")).one()
        assert dora.display_name == "dora" and dora.password_hash == dora_hash
    assert _audits(served.hub, "create_user") == 0


def test_a_province_user_maps_to_one_operator(served, signed_in):  # noqa: F811
    """admin_users.province_user_id is unique (migration 0015_review): single sign-on
    finds one operator for a province user; the page refuses a second with the reason."""
    c = signed_in
    hub = served.hub
    for name in ("zhang", "wang"):
        add_operator(hub, name, ("view",))
    with hub.transaction() as s:
        ids = dict(s.execute(select(AdminUser.username, AdminUser.id)).all())

    def save(user: str, sub: str):  # type: ignore[no-untyped-def]
        return c.post(f"/admin/users/{ids[user]}", {
            "action": "save", "display_name": user, "all_divisions": "1",
            "province_user_id": sub})

    assert "已保存" in save("zhang", "p.zhang").text
    resp = save("wang", "p.zhang")
    assert "省平台用户ID p.zhang 已关联其他操作员" in resp.text
    with hub.transaction() as s:
        subs = dict(s.execute(select(AdminUser.username, AdminUser.province_user_id)).all())
    assert subs["zhang"] == "p.zhang" and subs["wang"] is None
    assert "已保存" in save("zhang", "p.zhang").text  # keeping one's own is no conflict
    # the database holds it too (a write that skipped the page's check)
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), hub.transaction() as s:
        s.execute(update(AdminUser).where(AdminUser.id == ids["wang"])
                  .values(province_user_id="p.zhang"))
