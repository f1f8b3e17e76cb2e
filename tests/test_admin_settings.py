"""System settings with real effect, over real HTTP (admin pages and the province's
signed API on one served hub, a county peer, the real delivery path):

* a county set to manual gets manual sub-cases and no delivery; back to the routing
  table, it is delivered again; auto is refused for a county without a partner;
* a retired county's applications are refused with 2004, others still work;
* disabling an item answers the province 3001, like its interface switch;
* modules and functions: a link function granted by a role shows in its users' nav;
  built-ins cannot be deleted; CSRF on every new form; everything audited;
* another process's change is seen after the refresh interval, not before.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.sim.province import ProvinceClient
from admin.modules import BUILTIN_FUNCTION_MODULES, BUILTIN_MODULES, ensure_builtins
from admin.perms import FUNCTIONS
from hub import main as hub_main
from store.admin_models import (
    AdminDivisionName,
    AdminDivisionRoute,
    AdminFunction,
    AdminItemSetting,
    AdminModule,
    AdminRole,
    AdminRoleFunction,
)
from store.models import AuditEntry, Case, InterfaceSwitch, OutboxMessage
from tests.hubserver import CountyPeer, ProvinceEnv, application, province_env
from tests.support import wait_until
from tests.test_admin_fixtures import (
    ALL_FUNCTIONS,
    Client,
    add_operator,
)

REFRESH = 1.0  # settings_refresh_seconds of the test hubs


@dataclass
class Env:
    """A served hub (admin pages and the province's API), the simulated province and a
    county peer: ``tests.hubserver.province_env`` with an operator signed in on demand."""

    base: ProvinceEnv

    @property
    def hub(self) -> Any:
        return self.base.hub

    @property
    def url(self) -> str:
        return self.base.server.url

    @property
    def province(self) -> ProvinceClient:
        return self.base.client

    @property
    def county(self) -> CountyPeer:
        return self.base.county

    def admin(self, username: str = "root") -> Client:
        c = Client(self.url)
        assert c.login(username).status_code == 200
        c.get("/admin/settings")
        return c

    def drain(self) -> int:
        return self.base.drain()


@pytest.fixture
def env(make_hub, sqlite_url):
    base = province_env(make_hub, sqlite_url, settings_refresh_seconds=REFRESH)
    add_operator(base.hub, "root", ALL_FUNCTIONS)
    yield Env(base)
    base.close()


def audits(hub, action: str) -> list[AuditEntry]:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == action)
                              .order_by(AuditEntry.id)))


def subs(hub, county: str) -> list[Case]:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return list(s.scalars(select(Case).where(Case.county_code == county)
                              .order_by(Case.id)))


def county_messages(hub, county: str) -> int:  # type: ignore[no-untyped-def]
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.division == county, OutboxMessage.interface.like("county.%"))) or 0


def division(c: Client, code: str, name: str, mode: str = "table",  # type: ignore[no-untyped-def]
             active: bool = True):
    form = {"code": code, "name": name, "mode": mode}
    if active:
        form["active"] = "1"
    return c.post("/admin/settings/division", form)


# --------------------------------------------------------------------------- divisions


def test_manual_override_then_back_to_the_table(env, capsys):
    hub, c = env.hub, env.admin()
    page = division(c, "511702", "通川区", "manual").text
    assert "已保存区划 通川区（511702）" in page

    # a province application afterwards: a manual sub-case, nothing for the county
    ans = env.province.submit("rental_filing", application(apply_no="SET-MANUAL-1"))
    assert ans.status == 200 and ans.body["code"] == "0000", ans.body
    [sub] = subs(hub, "511702")
    assert (sub.route_mode, sub.route_adapter) == ("manual", "manual_excel")
    assert county_messages(hub, "511702") == 0
    env.drain()
    assert env.county.items() == []
    assert sub.case_no in c.get("/admin/manual", params={"county": "511702"}).text

    # the "where would this go" form and `hub.py route` say the setting decided it
    page = c.get("/admin/interfaces/route", params={"county": "511702",
                                                    "item": "rental_filing"}).text
    assert 'id="route-override"' in page and "manual_excel" in page and "人工" in page
    assert hub_main(["--config", str(hub.config.path), "route", "--county", "511702",
                     "--item", "rental_filing"]) == 0
    out = capsys.readouterr().out
    assert "适配器：  人工办理（Excel 导出导入）（manual_excel）" in out
    assert "方式：    人工办理（manual）" in out and "区划设置：已读取数据库中的区划设置" in out

    # back to the routing table: delivered again
    division(c, "511702", "通川区", "table")
    ans = env.province.submit("rental_filing", application(apply_no="SET-MANUAL-2"))
    assert ans.status == 200, ans.body
    first, second = subs(hub, "511702")
    assert first.route_mode == "manual"  # the earlier case is untouched
    assert (second.route_mode, second.route_adapter) == ("auto", "county_smart")
    env.drain()
    assert env.county.items() == ["rental_filing"]
    assert 'id="route-override"' not in c.get("/admin/interfaces/route", params={
        "county": "511702", "item": "rental_filing"}).text

    saved = audits(hub, "save_division")
    assert [a.detail for a in saved] == [
        '{"old": {"name": "通川区", "active": true, "mode": "table"}, '
        '"new": {"name": "通川区", "active": true, "mode": "manual"}}',
        '{"old": {"name": "通川区", "active": true, "mode": "manual"}, '
        '"new": {"name": "通川区", "active": true, "mode": "table"}}']


def test_auto_needs_a_partner_in_the_routing_table(env):
    hub, c = env.hub, env.admin()
    page = division(c, "511725", "渠县", "auto").text
    assert "不能设为自动办理" in page and "没有区县接口" in page
    page = c.post("/admin/settings/division-item", {"county_code": "511725",
                                                    "item": "rental_filing", "mode": "auto"}).text
    assert "不能设为自动办理" in page
    with hub.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AdminDivisionRoute)) == 0
        assert s.get(AdminDivisionName, "511725") is None
    assert audits(hub, "save_division") == [] and audits(hub, "save_division_item") == []
    assert hub.routes.resolve("511725", "rental_filing").manual

    # 大竹县 is manual in the table but has a partner (for rental filings): auto uses it
    assert division(c, "511724", "大竹县", "auto").status_code == 200
    route = hub.routes.resolve("511724", "survey_review")
    assert (route.mode, route.adapter, route.partner) == ("auto", "county_smart",
                                                          "county_511724")
    assert route.override and "按行政区划配置：大竹县（511724）全部事项 → 自动（auto）" \
        in route.why[-1], route.why
    # one item of a county: manual wins over the county's auto
    c.post("/admin/settings/division-item", {"county_code": "511724",
                                             "item": "survey_review", "mode": "manual"})
    assert hub.routes.resolve("511724", "survey_review").manual
    assert not hub.routes.resolve("511724", "rental_filing").manual
    [a] = audits(hub, "save_division_item")
    assert a.target == "survey_review@511724" and '"new": {"mode": "manual"}' in a.detail

    # the page lists the routing table's counties and says a new one is a YAML change
    page = c.get("/admin/settings").text
    assert "新增区县须修改路由表" in page and hub.routes.source in page
    assert all(code in page for code in hub.routes.counties())


def test_retired_county_refused_with_2004_others_work(env):
    hub, c = env.hub, env.admin()
    before = env.province.submit("rental_filing", application(
        apply_no="RET-0", counties=("511703",)))
    assert before.status == 200
    division(c, "511703", "达川区", active=False)

    ans = env.province.submit("rental_filing", application(apply_no="RET-1",
                                                           counties=("511703",)))
    assert ans.status == 400 and ans.body["code"] == "2004", ans.body
    [error] = ans.body["errors"]
    assert error["field"] == "county_codes[0]" and "retired" in error["reason"]
    # no case for the county, nothing to deliver (the refusal itself is recorded as a
    # validation failure, as every 2004 is); the earlier case is untouched
    [old] = subs(hub, "511703")
    assert old.apply_no == "RET-0" and old.stage == "received"
    with hub.transaction() as s:
        refused = s.scalars(select(Case).where(Case.apply_no == "RET-1")).all()
    assert [(r.county_code, r.stage) for r in refused] == [("", "validation_failed")]
    assert county_messages(hub, "511703") == 1  # RET-0's

    # another county still works, and the county can be taken back into service
    assert env.province.submit("rental_filing", application(apply_no="RET-2")).status == 200
    division(c, "511703", "达川区", active=True)
    assert env.province.submit("rental_filing", application(
        apply_no="RET-3", counties=("511703",))).status == 200
    assert [s.apply_no for s in subs(hub, "511703")] == ["RET-0", "RET-3"]
    details = [a.detail for a in audits(hub, "save_division")]
    assert '"new": {"name": "达川区", "active": false' in details[0]
    assert '"new": {"name": "达川区", "active": true' in details[1]


def test_division_form_validation_and_names(env):
    hub, c = env.hub, env.admin()
    for form in ({"code": "999999", "name": "x"}, {"code": "511702", "name": ""},
                 {"code": "511702", "name": "通川区", "mode": "sometimes"}):
        page = c.post("/admin/settings/division", form).text
        assert 'class="flash error"' in page
    assert audits(hub, "save_division") == []
    division(c, "511702", "通川区（城区）")
    assert "通川区（城区）" in c.get("/admin/cases").text  # the display name is used


# --------------------------------------------------------------------------- items


def test_disabling_an_item_answers_3001_like_the_interface_switch(env):
    hub, c = env.hub, env.admin()
    form = {"item": "rental_filing", "display_name": "房屋租赁登记备案",
            "promised_days": "5"}  # no "enabled": switched off
    assert "已保存事项 房屋租赁登记备案" in c.post("/admin/settings/item", form).text
    ans = env.province.submit("rental_filing", application(apply_no="ITEM-1"))
    assert ans.status == 503 and ans.body["code"] == "3001"
    with hub.transaction() as s:
        switch = s.get(InterfaceSwitch, ("interface", "province.in.rental_filing"))
        assert not switch.enabled and switch.changed_by == "root"
        assert s.get(AdminItemSetting, "rental_filing").promised_days == 5
    assert "已停用" in c.get("/admin/interfaces").text.split(
        'id="if-province.in.rental_filing"')[1].split("</tr>")[0]
    # other items still work; enabling restores the item
    assert env.province.submit("survey_review", application("survey_review")).status == 200
    c.post("/admin/settings/item", {**form, "enabled": "1"})
    assert env.province.submit("rental_filing", application(apply_no="ITEM-2")).status == 200
    assert "房屋租赁登记备案" in c.get("/admin/settings").text
    [sub] = [c_ for c_ in subs(hub, "511702") if c_.apply_no == "ITEM-2"]
    page = c.get(f"/admin/cases/{sub.case_no}").text  # the display name and promised days
    assert "房屋租赁登记备案 · 承诺办结时限 5 个工作日" in page

    [first, second] = audits(hub, "save_item")
    assert '"enabled": true' in first.detail.split('"new"')[0]
    assert '"promised_days": 5, "enabled": false' in first.detail
    assert ('"new": {"name": "房屋租赁登记备案", "promised_days": 5, "enabled": true}'
            in second.detail)
    assert [a.action for a in audits(hub, "disable_interface")
            + audits(hub, "enable_interface")] == ["disable_interface", "enable_interface"]

    # refused values change nothing
    for days in ("0", "366", "abc"):
        page = c.post("/admin/settings/item", {**form, "enabled": "1",
                                               "promised_days": days}).text
        assert "承诺办结时限须为 1–365 的整数" in page
    with hub.transaction() as s:
        assert s.get(AdminItemSetting, "rental_filing").promised_days == 5
    assert len(audits(hub, "save_item")) == 2
    page = c.get("/admin/settings").text
    assert "不能在本页新增" in page


# --------------------------------------------------------------------------- modules


def test_seeded_modules_and_functions_match_the_code(env):
    """Migration 0004 seeds what the code defines; ensure_builtins then adds nothing."""
    with env.hub.transaction() as s:
        assert ensure_builtins(s) == []
        mods = {m.code: (m.name, m.builtin) for m in s.scalars(select(AdminModule))}
        fns = {f.code: (f.name, f.module_code, f.kind) for f in s.scalars(select(AdminFunction))}
    assert mods == {code: (name, True) for code, (name, _) in BUILTIN_MODULES.items()}
    assert fns == {code: (name, BUILTIN_FUNCTION_MODULES[code], "builtin")
                   for code, name in FUNCTIONS.items()}
    nav = env.admin().get("/admin/").text.split("<nav>")[1].split("</nav>")[0]
    assert [m for m in re.findall(r">([^<>]+)</a>", nav)] == [
        name for name, _ in BUILTIN_MODULES.values()]


def test_link_function_in_a_module_granted_by_a_role(env):
    hub, c = env.hub, env.admin()
    page = c.post("/admin/settings/module", {"action": "add", "code": "links",
                                             "name": "便捷链接", "sort_order": "95"}).text
    assert "已新增模块 便捷链接" in page
    for url in ("javascript:alert(1)", "http://www.sc.gov.cn/", "//evil.example/",
                "/admin/../etc"):
        page = c.post("/admin/settings/function", {
            "action": "add", "code": "gov_portal", "name": "四川政务服务网",
            "module_code": "links", "url": url, "sort_order": "10"}).text
        assert 'class="flash error"' in page, url
    page = c.post("/admin/settings/function", {
        "action": "add", "code": "gov_portal", "name": "四川政务服务网",
        "module_code": "links", "url": "https://www.sczwfw.gov.cn/", "sort_order": "10"}).text
    assert "已新增功能 四川政务服务网" in page
    c.post("/admin/settings/function", {
        "action": "add", "code": "received_cases", "name": "待办办件", "module_code": "cases",
        "url": "/admin/cases?stage=received", "sort_order": "20"})

    # a role granting the link functions (checkboxes grouped by module on the roles form)
    c.get("/admin/users")
    assert "便捷链接：" in c.get("/admin/users").text
    c.post("/admin/roles", {"name": "窗口人员",
                            "function": ["view", "gov_portal", "received_cases"]})
    c.post("/admin/roles", {"name": "只读", "function": ["view"]})
    with hub.transaction() as s:
        roles = {r.name: r.id for r in s.scalars(select(AdminRole))}
    c.post("/admin/users/new", {"username": "window1", "password": "Test-passw0rd-long",
                                "role": [str(roles["窗口人员"])], "all_divisions": "1"})
    c.post("/admin/users/new", {"username": "reader1", "password": "Test-passw0rd-long",
                                "role": [str(roles["只读"])], "all_divisions": "1"})

    window = Client(env.url)
    window.login("window1")
    nav = window.get("/admin/").text.split("<nav>")[1].split("</nav>")[0]
    assert "便捷链接" in nav and 'href="https://www.sczwfw.gov.cn/"' in nav
    assert 'href="/admin/cases?stage=received"' in nav and "待办办件" in nav
    assert "系统设置" not in nav and "用户及权限" not in nav
    reader = Client(env.url)
    reader.login("reader1")
    nav = reader.get("/admin/").text.split("<nav>")[1].split("</nav>")[0]
    assert "便捷链接" not in nav and "sczwfw" not in nav and "待办办件" not in nav
    assert "首页统计" in nav and "办件查询" in nav

    # built-in functions cannot be deleted, only renamed and moved
    page = c.post("/admin/settings/function", {"action": "delete", "code": "view"}).text
    assert "内置功能" in page and "不能删除" in page
    page = c.post("/admin/settings/function", {"action": "save", "code": "export",
                                               "name": "导出数据", "module_code": "cases",
                                               "sort_order": "30"}).text
    assert "已保存功能 导出数据" in page
    with hub.transaction() as s:
        assert s.get(AdminFunction, "view") is not None
        assert s.get(AdminFunction, "export").module_code == "cases"
    # a module with functions cannot be deleted; built-in modules neither
    page = c.post("/admin/settings/module", {"action": "delete", "code": "links"}).text
    assert "下还有功能" in page
    page = c.post("/admin/settings/module", {"action": "delete", "code": "fund"}).text
    assert "内置模块" in page

    # deleting the link function revokes it: gone from the nav
    c.post("/admin/settings/function", {"action": "delete", "code": "gov_portal"})
    with hub.transaction() as s:
        assert s.scalars(select(AdminRoleFunction).where(
            AdminRoleFunction.function == "gov_portal")).all() == []
    assert "sczwfw" not in window.get("/admin/").text
    assert c.post("/admin/settings/module", {"action": "delete", "code": "links"}
                  ).status_code == 200
    with hub.transaction() as s:
        assert s.get(AdminModule, "links") is None

    # every change is in the audit trail, with old and new values
    trail = c.get("/admin/audit").text
    for action in ("add_module", "add_function", "save_function", "delete_function",
                   "delete_module"):
        assert action in trail, action
    [deleted] = audits(hub, "delete_function")
    assert '"revoked_from_roles": [' in deleted.detail and '"new": null' in deleted.detail
    [saved] = audits(hub, "save_function")
    assert '"old": {"name": "导出", "module": "dashboard"' in saved.detail


def test_disabled_module_leaves_the_nav_and_its_pages_refuse(env):
    hub, c = env.hub, env.admin()
    page = c.post("/admin/settings/module", {"action": "save", "code": "fund",
                                             "name": "资金监管", "sort_order": "50"}).text
    assert "已保存模块 资金监管" in page  # no "enabled": disabled
    nav = c.get("/admin/").text.split("<nav>")[1].split("</nav>")[0]
    assert "资金监管" not in nav
    resp = c.get("/admin/fund")
    assert resp.status_code == 403 and "该模块已停用" in resp.text
    # renaming and reordering show in the nav
    c.post("/admin/settings/module", {"action": "save", "code": "fund", "name": "预售资金",
                                      "sort_order": "5", "enabled": "1"})
    nav = c.get("/admin/").text.split("<nav>")[1].split("</nav>")[0]
    assert nav.index("预售资金") < nav.index("首页统计")
    assert c.get("/admin/fund").status_code == 200
    # the settings module cannot be disabled
    page = c.post("/admin/settings/module", {"action": "save", "code": "settings",
                                             "name": "系统设置", "sort_order": "80"}).text
    assert "系统设置模块不能停用" in page
    with hub.transaction() as s:
        assert s.get(AdminModule, "settings").enabled
    assert [a.target for a in audits(hub, "save_module")] == ["fund", "fund"]


def test_csrf_refused_on_the_new_forms(env):
    hub, c = env.hub, env.admin()
    forms = {
        "/admin/settings/division": {"code": "511702", "name": "x", "mode": "manual"},
        "/admin/settings/division-item": {"county_code": "511702", "item": "rental_filing",
                                          "mode": "manual"},
        "/admin/settings/item": {"item": "rental_filing", "display_name": "x"},
        "/admin/settings/module": {"action": "add", "code": "links", "name": "x"},
        "/admin/settings/function": {"action": "add", "code": "x_link", "name": "x",
                                     "module_code": "dashboard", "url": "/admin/cases"},
    }
    for path, form in forms.items():
        for token in (None, "wrong-token"):
            data = dict(form) if token is None else {**form, "csrf_token": token}
            resp = c.post(path, data, csrf=token is not None)
            assert resp.status_code == 400 and "CSRF" in resp.text, path
    with hub.transaction() as s:
        assert s.scalar(select(func.count()).select_from(AdminDivisionRoute)) == 0
        assert s.get(AdminModule, "links") is None and s.get(AdminFunction, "x_link") is None
        assert s.get(AdminItemSetting, "rental_filing") is None
        assert s.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action != "login")) == 0
    assert not hub.routes.resolve("511702", "rental_filing").manual


# --------------------------------------------------------------------------- refresh


def test_another_process_change_is_seen_after_the_refresh_interval(env, make_hub):
    hub = env.hub
    other = make_hub(hub.config.database_url, settings_refresh_seconds=REFRESH)
    hub.overrides.reload()
    loaded = time.monotonic()
    with other.transaction() as s:  # as another process's admin page would
        s.add(AdminDivisionRoute(county_code="511702", item="*", mode="manual",
                                 updated_by="elsewhere"))
        s.add(AdminDivisionName(code="511703", name="达川区", active=False))
    other.overrides.reload()  # the saving process sees it at once
    assert other.routes.resolve("511702", "rental_filing").manual
    assert not other.city.in_service("511703")

    # this process: not before the interval (checked until shortly before it ends)
    while time.monotonic() - loaded < REFRESH * 0.8:
        assert not hub.routes.resolve("511702", "rental_filing").manual
        assert hub.city.in_service("511703")
        time.sleep(0.05)
    # ... and soon after it
    wait_until(lambda: hub.routes.resolve("511702", "rental_filing").manual, timeout=2,
               what="the other process's setting")
    assert time.monotonic() - loaded >= REFRESH
    assert not hub.city.in_service("511703")
    assert "elsewhere" in hub.routes.resolve("511702", "rental_filing").override
    ans = env.province.submit("rental_filing", application(apply_no="REF-1",
                                                           counties=("511703",)))
    assert ans.body["code"] == "2004"
