"""Every settings form is scope-checked (issue 10): a county operator holding
``manage_settings`` (and ``manage_interfaces``) changes only its own county's settings;
for another county, or a setting that holds city-wide, it is refused with a message
shown at the form and nothing changes (no row, no audit entry)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from store.admin_models import (
    AdminDivisionName,
    AdminDivisionRoute,
    AdminFunction,
    AdminItemMapping,
    AdminItemSetting,
    AdminModule,
    AdminSetting,
)
from store.calendar_models import CalendarDayRow, CalendarYear
from store.models import AuditEntry, InterfaceSwitch
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    Client,
    add_operator,
    county_peer,
    served,
)

SETTINGS_FUNCTIONS = ("view", "manage_settings", "manage_interfaces")
MINE, OTHER = "511702", "511703"


def _state(hub):  # type: ignore[no-untyped-def]
    """Everything a settings form can change, and the audit trail's length."""
    with hub.transaction() as s:
        def rows(model):  # type: ignore[no-untyped-def]
            return sorted(repr(sorted((k, str(v)) for k, v in vars(r).items()
                                      if not k.startswith("_"))) for r in s.scalars(select(model)))
        return {m.__name__: rows(m) for m in (
            AdminDivisionName, AdminDivisionRoute, AdminItemMapping, AdminItemSetting,
            AdminSetting, AdminModule, AdminFunction, InterfaceSwitch, CalendarYear,
            CalendarDayRow)} | {
            "audit": s.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action != "login"))}


@pytest.fixture
def county_op(served):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    add_operator(served.hub, "set702", SETTINGS_FUNCTIONS, (MINE,))
    c = Client(served.url)
    assert c.login("set702").status_code == 200
    c.get("/admin/settings")
    return c


ATTEMPTS = [
    ("/admin/settings/division", {"code": OTHER, "name": "改名", "active": "1", "mode": "manual"},
     "divisions", "不在您的数据权限范围内"),
    ("/admin/settings/division-item",
     {"county_code": OTHER, "item": "rental_filing", "mode": "manual"}, "division-items",
     "不在您的数据权限范围内"),
    ("/admin/settings/mapping", {"item": "rental_filing", "county_code": OTHER,
                                 "county_item_code": "X-1"}, "mapping", "事项或区县不正确"),
    ("/admin/settings/item", {"item": "rental_filing", "display_name": "改名",
                              "promised_days": "3", "enabled": "1"}, "items", "只有全市范围"),
    ("/admin/settings/params", {"lockout_threshold": "19"}, "params", "只有全市范围"),
    ("/admin/settings/module", {"action": "add", "code": "m1", "name": "模块"}, "modules",
     "只有全市范围"),
    ("/admin/settings/function", {"action": "add", "code": "f1", "name": "功能",
                                  "module_code": "system", "url": "https://example.org/"},
     "functions", "只有全市范围"),
    ("/admin/settings/calendar", {"year": "2030", "days": "2030-01-01 休 元旦"}, None,
     "只有全市范围"),
    ("/admin/interfaces/switch", {"kind": "interface", "name": "county.rental_filing",
                                  "enabled": "0", "confirm": "1"}, None, "只有全市范围"),
    ("/admin/interfaces/switch", {"kind": "partner", "name": f"county_{OTHER}",
                                  "enabled": "0", "confirm": "1"}, None, "只有全市范围"),
]


@pytest.mark.parametrize(("path", "form", "section", "message"), ATTEMPTS,
                         ids=[f"{a[0].rsplit('/', 1)[1]}-{a[1].get('kind', '')}" for a in ATTEMPTS])
def test_county_operator_cannot_change_another_county_or_the_city(
        served, county_op, path, form, section, message):  # noqa: F811
    before = _state(served.hub)
    resp = county_op.post(path, form)
    assert resp.status_code == 200, resp.text[:300]
    assert message in resp.text
    if section is not None:  # the message is shown in the form's own section
        assert f'data-section="{section}">' in resp.text
        part = resp.text.split(f'<h2 id="{section}">')[1].split("<h2")[0]
        assert message in part
    assert _state(served.hub) == before


def test_county_operator_changes_its_own_county(served, county_op):  # noqa: F811
    resp = county_op.post("/admin/settings/division", {
        "code": MINE, "name": "通川区", "active": "1", "mode": "manual"})
    assert "已保存区划 通川区（511702）" in resp.text
    county_op.get("/admin/interfaces")
    county_op.post("/admin/interfaces/switch", {"kind": "partner", "name": f"county_{MINE}",
                                                "enabled": "0", "confirm": "1"})
    with served.hub.transaction() as s:
        assert s.get(AdminDivisionRoute, (MINE, "*")).mode == "manual"
        assert s.get(InterfaceSwitch, ("partner", f"county_{MINE}")).enabled is False


def test_city_wide_operator_may_change_the_city_settings(served):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    c = Client(served.url)
    c.login("root")
    c.get("/admin/settings")
    resp = c.post("/admin/settings/item", {"item": "rental_filing", "display_name": "",
                                           "promised_days": "3", "enabled": "1"})
    assert "已保存事项" in resp.text
    with served.hub.transaction() as s:
        assert s.get(AdminItemSetting, "rental_filing").promised_days == 3
