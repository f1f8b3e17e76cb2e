"""The last administrator (an active city-wide user holding 用户管理 through a role) and
the last role granting 用户管理 cannot be deleted, disabled or stripped of it: refused
with a message at the form over real HTTP, and enforced in the database transaction, so
two operators acting at once cannot both succeed."""

from __future__ import annotations

import threading
import time

from sqlalchemy import select

from admin import people
from store.admin_models import AdminRole, AdminUser
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    Client,
    add_operator,
    county_peer,
    served,
)


def _id(hub, model, column, value) -> int:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return s.scalars(select(model.id).where(column == value)).one()


def test_last_administrator_and_last_user_role_refused_over_http(served):  # noqa: F811
    hub = served.hub
    add_operator(hub, "root", ALL_FUNCTIONS)
    add_operator(hub, "second", ALL_FUNCTIONS)
    c = Client(served.url)
    c.login("root")
    c.get("/admin/users")
    second = _id(hub, AdminUser, AdminUser.username, "second")
    root_role = _id(hub, AdminRole, AdminRole.name, "role-root")
    second_role = _id(hub, AdminRole, AdminRole.name, "role-second")

    # two administrators: disabling the other one is fine
    resp = c.post(f"/admin/users/{second}", {"action": "disable"})
    assert "已保存" in resp.text
    # now root is the last: its own role may not lose 用户管理 nor be deleted
    without = [f for f in ALL_FUNCTIONS if f != "manage_users"]
    resp = c.post("/admin/roles", {"role_id": str(root_role), "name": "role-root",
                                   "function": without})
    assert "最后一个可用的全市系统管理员" in resp.text
    part = resp.text.split('<h2 id="roles">')[1].split("<h2")[0]
    assert "最后一个可用的全市系统管理员" in part  # shown at the roles form
    resp = c.post("/admin/roles", {"role_id": str(root_role), "action": "delete"})
    assert "最后一个可用的全市系统管理员" in resp.text or "最后一个含“用户管理”" in resp.text
    # nor may root give up its roles or its city-wide scope
    resp = c.post(f"/admin/users/{_id(hub, AdminUser, AdminUser.username, 'root')}",
                  {"action": "save", "division": "511702"})
    assert "最后一个可用的全市系统管理员" in resp.text
    # the other role granting 用户管理 is held by a disabled user: deleting it is fine,
    # and then root's role is the last one granting 用户管理
    assert "已保存角色" in c.post("/admin/roles", {"role_id": str(second_role),
                                                  "action": "delete"}).text
    with hub.transaction() as s:
        assert people.administrators(s) == 1 and people.user_admin_roles(s) == 1
        assert s.get(AdminRole, root_role) is not None
        assert set(people.role_functions(s, root_role)) == set(ALL_FUNCTIONS)
        root = s.scalars(select(AdminUser).where(AdminUser.username == "root")).one()
        assert root.active and root.all_divisions


def _disable(hub, username: str, hold: threading.Event | None = None,  # type: ignore[no-untyped-def]
             locked: threading.Event | None = None) -> None:
    """What the users page does to disable ``username`` (admin/views_people.py)."""
    with hub.transaction() as s:
        people.lock_people(s)
        if locked is not None:
            locked.set()
        had = people.administrators(s) > 0
        user = s.scalars(select(AdminUser).where(AdminUser.username == username)
                         .with_for_update()).one()
        user.active = False
        people.check_administrators_remain(s, had)
        if hold is not None:
            assert hold.wait(30)


def test_two_operators_disabling_the_last_two_administrators_at_once(make_hub, store_url):
    hub = make_hub(store_url)
    add_operator(hub, "alpha", ALL_FUNCTIONS)
    add_operator(hub, "beta", ALL_FUNCTIONS)
    hold, locked = threading.Event(), threading.Event()
    outcomes: dict[str, BaseException | None] = {}

    def run(name: str, **kw) -> None:  # type: ignore[no-untyped-def]
        try:
            _disable(hub, name, **kw)
            outcomes[name] = None
        except BaseException as exc:  # noqa: BLE001 (reported below)
            outcomes[name] = exc

    first = threading.Thread(target=run, args=("alpha",), kwargs={"hold": hold,
                                                                   "locked": locked})
    first.start()
    assert locked.wait(30)
    second = threading.Thread(target=run, args=("beta",))
    second.start()
    time.sleep(0.5)
    assert second.is_alive(), "the second change must wait for the first"
    hold.set()
    first.join(30)
    second.join(30)
    assert outcomes["alpha"] is None
    assert isinstance(outcomes["beta"], people.PeopleError), outcomes["beta"]
    with hub.transaction() as s:
        assert people.administrators(s) == 1
        active = {u.username: u.active for u in s.scalars(select(AdminUser))}
    assert active == {"alpha": False, "beta": True}
