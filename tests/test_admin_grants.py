"""Operators' rights on the people forms, through the real server with CSRF tokens as a
browser sends them, on SQLite and PostgreSQL: a county user administrator grants only
what they hold and acts only inside their scope. Every user, role and unit POST route
and action is tried with crafted fields; each refusal answers in Chinese, changes
nothing in the store and writes no audit row."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from admin.people import create_user, set_role_functions, set_user_access
from store.admin_models import (
    AdminRole,
    AdminRoleFunction,
    AdminUnit,
    AdminUser,
    AdminUserDivision,
    AdminUserRole,
)
from store.models import AuditEntry
from tests.test_admin_fixtures import PASSWORD, Client, Served, serve_app

COUNTY_ADMIN = ("view", "resubmit", "manage_users")
USER_ACTIONS = ("save", "password", "unlock", "disable", "enable", "delete")


@pytest.fixture
def people_hub(make_hub, store_url) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    hub = make_hub(store_url, inbound=[])
    url, stop = serve_app(hub)
    yield Served(hub, url)
    stop()


def _role(s, name: str, functions: tuple[str, ...]) -> int:  # type: ignore[no-untyped-def]
    role = AdminRole(name=name)
    s.add(role)
    s.flush()
    set_role_functions(s, role, functions)
    return role.id


def _user(s, hub, name: str, roles: list[int], divisions: tuple[str, ...] | None,  # type: ignore[no-untyped-def]
          unit_id: int | None = None) -> int:
    user = create_user(s, name, name, PASSWORD, all_divisions=divisions is None,
                       unit_id=unit_id)
    set_user_access(s, user, roles, divisions or (), hub.city.counties)
    return user.id


def _setup(hub) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ids: dict[str, int] = {}
    with hub.transaction() as s:
        ids["r_county"] = _role(s, "区县用户管理员", COUNTY_ADMIN)
        ids["r_big"] = _role(s, "系统设置员", ("view", "manage_settings"))
        ids["r_viewer"] = _role(s, "查看员", ("view",))
        ids["r_mine"] = _role(s, "本县查看员", ("view",))
        ids["r_city_admin"] = _role(s, "市级用户管理员", ("view", "manage_users"))
        ids["r_shared"] = _role(s, "共用查看员", ("view",))  # held by boss, beside r_big
        for key, name, division in (("u702", "通川区住建局", "511702"),
                                    ("u703", "达川区住建局", "511703"),
                                    ("ucity", "市住建局", None)):
            unit = AdminUnit(name=name, division=division)
            s.add(unit)
            s.flush()
            ids[key] = unit.id
        ids["evil"] = _user(s, hub, "evil", [ids["r_county"]], ("511702",), ids["u702"])
        ids["mate"] = _user(s, hub, "mate", [ids["r_mine"]], ("511702",))
        ids["other"] = _user(s, hub, "other", [ids["r_viewer"]], ("511703",))
        ids["straddle"] = _user(s, hub, "straddle", [ids["r_mine"]], ("511702", "511703"))
        ids["city"] = _user(s, hub, "city", [ids["r_mine"]], None)
        ids["boss"] = _user(s, hub, "boss", [ids["r_big"], ids["r_shared"]], ("511702",))
        ids["cityadmin"] = _user(s, hub, "cityadmin", [ids["r_city_admin"]], None)
    return ids


def _snapshot(hub) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Everything the people forms can change, and the audit trail's length."""
    with hub.transaction() as s:
        return {
            "users": sorted((u.id, u.username, u.display_name, u.password_hash, u.unit_id,
                             u.province_user_id, u.active, u.all_divisions, u.failed_logins,
                             u.locked_until, u.session_epoch)
                            for u in s.scalars(select(AdminUser))),
            "user_roles": sorted((r.user_id, r.role_id) for r in s.scalars(select(AdminUserRole))),
            "user_divs": sorted((d.user_id, d.division)
                                for d in s.scalars(select(AdminUserDivision))),
            "roles": sorted((r.id, r.name, r.description) for r in s.scalars(select(AdminRole))),
            "role_fns": sorted((f.role_id, f.function)
                               for f in s.scalars(select(AdminRoleFunction))),
            "units": sorted((u.id, u.name, u.division, u.province_unit_id)
                            for u in s.scalars(select(AdminUnit))),
            "audit": s.scalar(select(func.count()).select_from(AuditEntry)),
        }


def _signed_in(served: Served, username: str) -> Client:
    c = Client(served.url)
    assert c.login(username).status_code == 200
    c.get("/admin/users")
    assert c.token
    return c


def _refused(c: Client, hub, path: str, data: dict[str, Any], why: str) -> None:  # type: ignore[no-untyped-def]
    before = _snapshot(hub)
    resp = c.post(path, data)
    assert resp.status_code == 200, (path, data, resp.status_code, resp.text[:300])
    assert 'class="flash error"' in resp.text, (path, data)
    assert why in resp.text, (path, data, why)
    assert _snapshot(hub) == before, (path, data)


def _user_form(**fields: Any) -> dict[str, Any]:
    return {"display_name": "x", "unit_id": "", "province_user_id": "", **fields}


def test_county_admin_cannot_grant_beyond_own_rights(people_hub):  # type: ignore[no-untyped-def]
    hub = people_hub.hub
    ids = _setup(hub)
    c = _signed_in(people_hub, "evil")
    new = {"username": "newbie", "password": PASSWORD + "1"}
    # -- creating a user: city-wide, other divisions, roles and units beyond their own
    for fields, why in (
        ({"all_divisions": "1", "division": ["511702"]}, "全市数据权限"),
        ({"division": ["511703"]}, "数据权限以外的区县"),
        ({"division": ["511702", "511703"]}, "数据权限以外的区县"),
        ({"division": ["511702", "999999"]}, "数据权限以外的区县"),
        ({"division": ["511702"], "role": [str(ids["r_big"])]}, "自己没有的权限"),
        ({"division": ["511702"], "role": [str(ids["r_county"]), str(ids["r_big"])]},
         "自己没有的权限"),
        ({"division": ["511702"], "role": ["999999"]}, "不存在"),
        ({"division": ["511702"], "role": ["1 OR 1=1"]}, "表单内容不正确"),
        ({"division": ["511702"], "unit_id": str(ids["u703"])}, "不在您的数据权限范围"),
        ({"division": ["511702"], "unit_id": str(ids["ucity"])}, "不在您的数据权限范围"),
        ({"division": ["511702"], "unit_id": "999999"}, "单位不存在"),
    ):
        _refused(c, hub, "/admin/users/new", _user_form(**new, **fields), why)

    # -- editing themselves: never city-wide, no other county, no role beyond their own
    me_ = f"/admin/users/{ids['evil']}"
    for fields, why in (
        ({"all_divisions": "1", "role": [str(ids["r_county"])]}, "全市数据权限"),
        ({"division": ["511702", "511703"], "role": [str(ids["r_county"])]}, "数据权限以外"),
        ({"division": ["511702"], "role": [str(ids["r_county"]), str(ids["r_big"])]},
         "自己没有的权限"),
        ({"division": ["511702"], "role": [str(ids["r_county"])],
          "unit_id": str(ids["ucity"])}, "不在您的数据权限范围"),
    ):
        _refused(c, hub, me_, _user_form(action="save", **fields), why)

    # -- editing a user of their own county: the same limits
    mate = f"/admin/users/{ids['mate']}"
    for fields, why in (
        ({"all_divisions": "1"}, "全市数据权限"),
        ({"division": ["511703"]}, "数据权限以外"),
        ({"division": ["511702"], "role": [str(ids["r_big"])]}, "自己没有的权限"),
    ):
        _refused(c, hub, mate, _user_form(action="save", **fields), why)

    _refused(c, hub, mate, {"action": "promote"}, "操作不正确")

    # -- any action on a user outside their scope: another county, straddling two
    # counties, city-wide, or holding functions they lack
    for target in ("other", "straddle", "city", "boss", "cityadmin"):
        for action in USER_ACTIONS:
            data = _user_form(action=action, division=["511702"], password=PASSWORD + "2")
            _refused(c, hub, f"/admin/users/{ids[target]}", data, "超出您的权限范围")

    # -- roles: nothing beyond their functions; no role they could not grant; no role
    # that other counties' users hold
    for data, why in (
        ({"name": "新角色", "function": ["view", "manage_settings"]}, "自己没有的权限"),
        ({"name": "新角色", "function": ["view_personal_data"]}, "自己没有的权限"),
        ({"role_id": str(ids["r_county"]), "name": "区县用户管理员",
          "function": list(COUNTY_ADMIN) + ["view_personal_data"]}, "自己没有的权限"),
        ({"role_id": str(ids["r_big"]), "name": "系统设置员", "function": ["view"]},
         "不能修改或删除"),
        ({"role_id": str(ids["r_big"]), "action": "delete"}, "不能修改或删除"),
        ({"role_id": str(ids["r_viewer"]), "name": "查看员", "function": ["view", "resubmit"]},
         "权限范围以外的用户"),
        ({"role_id": str(ids["r_viewer"]), "action": "delete"}, "权限范围以外的用户"),
        ({"role_id": str(ids["r_mine"]), "name": "本县查看员", "function": ["view"]},
         "权限范围以外的用户"),  # also held by the straddling and the city-wide user
        # held in their county, but by a user with functions beyond theirs: adding
        # manage_users to it had made boss a user manager over stronger clerks
        ({"role_id": str(ids["r_shared"]), "name": "共用查看员",
          "function": ["view", "manage_users"]}, "权限范围以外的用户"),
        ({"role_id": str(ids["r_shared"]), "action": "delete"}, "权限范围以外的用户"),
        ({"role_id": "x1", "name": "新角色", "function": ["view"]}, "表单内容不正确"),
    ):
        _refused(c, hub, "/admin/roles", data, why)

    # -- units: only in their own county
    for data, why in (
        ({"name": "新单位", "division": "511703"}, "不在您的数据权限范围"),
        ({"name": "新单位", "division": ""}, "不在您的数据权限范围"),
        ({"unit_id": str(ids["u703"]), "name": "达川区住建局", "division": "511703"},
         "不在您的数据权限范围"),
        ({"unit_id": str(ids["u703"]), "name": "达川区住建局", "division": "511702"},
         "不在您的数据权限范围"),
        ({"unit_id": str(ids["u702"]), "name": "通川区住建局", "division": "511703"},
         "不在您的数据权限范围"),
        ({"unit_id": str(ids["ucity"]), "name": "市住建局", "division": "511702"},
         "不在您的数据权限范围"),
        ({"unit_id": str(ids["u703"]), "action": "delete"}, "不在您的数据权限范围"),
        ({"unit_id": str(ids["ucity"]), "action": "delete"}, "不在您的数据权限范围"),
    ):
        _refused(c, hub, "/admin/units", data, why)

    # the listing shows only the people they may act on
    listing = c.get("/admin/users").text.split('id="user-list"')[1].split("</table>")[0]
    assert "mate" in listing and "evil" in listing
    for name in ("other", "straddle", "city", "boss", "cityadmin"):
        assert f"<td>{name}</td>" not in listing
    page = c.get("/admin/users").text
    assert "达川区住建局" not in page and "全市</label>" not in page
    assert "系统设置员" not in page and 'value="manage_settings"' not in page
    assert 'value="511703"' not in page and 'name="division" value="511702"' in page
    assert 'value="resubmit"' in page and "本县查看员" in page

    # -- and what lies inside their rights works (so the refusals above are not blanket)
    audits = _snapshot(hub)["audit"]
    resp = c.post("/admin/users/new", _user_form(
        **new, division=["511702"], role=[str(ids["r_viewer"])], unit_id=str(ids["u702"])))
    assert "已创建用户 newbie" in resp.text
    resp = c.post(mate, _user_form(action="save", display_name="同事", division=["511702"],
                                   role=[str(ids["r_mine"])]))
    assert "已保存" in resp.text
    assert "已保存" in c.post(mate, {"action": "password", "password": PASSWORD + "3"}).text
    assert "已保存角色" in c.post("/admin/roles", {"name": "县级导出", "function": ["view"]}).text
    assert "已保存单位" in c.post("/admin/units", {"unit_id": str(ids["u702"]),
                                                 "name": "通川区住房和城乡建设局",
                                                 "division": "511702"}).text
    with hub.transaction() as s:
        newbie = s.scalars(select(AdminUser).where(AdminUser.username == "newbie")).one()
        assert not newbie.all_divisions and newbie.unit_id == ids["u702"]
        assert set(s.scalars(select(AdminUserDivision.division)
                             .where(AdminUserDivision.user_id == newbie.id))) == {"511702"}
        assert s.get(AdminUser, ids["mate"]).display_name == "同事"
    assert _snapshot(hub)["audit"] == audits + 5


def test_city_admin_grants_only_functions_they_hold(people_hub):  # type: ignore[no-untyped-def]
    """City-wide but without every function: city-wide scope is theirs to give, the
    functions they lack are not."""
    hub = people_hub.hub
    ids = _setup(hub)
    c = _signed_in(people_hub, "cityadmin")
    for data, why in (
        ({"username": "n1", "password": PASSWORD + "1", "all_divisions": "1",
          "role": [str(ids["r_big"])]}, "自己没有的权限"),
        ({"username": "n1", "password": PASSWORD + "1", "role": [str(ids["r_county"])]},
         "自己没有的权限"),
    ):
        _refused(c, hub, "/admin/users/new", data, why)
    for action in USER_ACTIONS:  # boss and evil hold functions cityadmin lacks
        for target in ("boss", "evil"):
            _refused(c, hub, f"/admin/users/{ids[target]}",
                     {"action": action, "password": PASSWORD + "2"}, "超出您的权限范围")
    _refused(c, hub, "/admin/roles", {"name": "新角色", "function": ["view", "export"]},
             "自己没有的权限")
    _refused(c, hub, "/admin/roles", {"name": "新角色", "function": ["bogus"]}, "未知权限项")
    flood = [f"f{i:04d}" for i in range(500)]  # the message stays short (session cookie)
    _refused(c, hub, "/admin/roles", {"name": "新角色", "function": flood}, "f0002 等")
    resp = c.post("/admin/users/new", {"username": "n2", "password": PASSWORD + "1",
                                       "all_divisions": "1", "role": [str(ids["r_viewer"])]})
    assert "已创建用户 n2" in resp.text
    with hub.transaction() as s:
        assert s.scalars(select(AdminUser.all_divisions)
                         .where(AdminUser.username == "n2")).one() is True
