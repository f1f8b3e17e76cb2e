"""预售项目监管 through the real server: the overdue-acceptance list shows a presale
project past its planned completion and drops it once the county reports acceptance;
scoped by division; the presale-without-permit list; the Excel export; the daily digest."""

from __future__ import annotations

import io

from openpyxl import load_workbook
from sqlalchemy import select

from store.calendar import seed_from_package
from store.models import Alert, utcnow
from store.numbering import daily_digest
from tests.numbering_support import (  # noqa: F401  (fixture)
    CHALING,
    YOUXIAN,
    numbering_env,
    presale_body,
)
from tests.test_admin_fixtures import ALL_FUNCTIONS, COUNTY_FUNCTIONS, Client, add_operator

V1 = "/api/county/v1"
PAGE = "/admin/presale-projects"


def _overdue_codes(client: Client) -> str:
    page = client.get(PAGE)
    assert page.status_code == 200, page.text[:500]
    return page.text.split('id="overdue-acceptance"')[1].split("</table>")[0]


def test_overdue_list_until_the_county_reports_acceptance(numbering_env):  # noqa: F811
    env = numbering_env
    seed_from_package(env.hub.db)
    env.hub.overrides.reload()
    late = env.post(f"{V1}/numbers/presale-permit",
                    presale_body(project="2406-430223-70-01-000101", planned="2025-06-30"))
    assert late.status_code == 200, late.text
    future = env.post(f"{V1}/numbers/presale-permit", presale_body(
        permit="430223202406200102", project="2406-430223-70-01-000102", planned="2099-12-31"))
    assert future.status_code == 200, future.text
    add_operator(env.hub, "city", ALL_FUNCTIONS)
    add_operator(env.hub, "chaling", COUNTY_FUNCTIONS, divisions=(CHALING,))
    city = Client(env.url)
    city.login("city")
    assert 'id="presale-projects-link"' in city.get("/admin/deadlines").text
    listed = _overdue_codes(city)
    assert "2406-430223-70-01-000101" in listed and "2406-430223-70-01-000102" not in listed
    assert "2025-06-30" in listed and "攸县" in listed
    assert "430223202406200101-Y01" in city.get(PAGE).text  # the number register
    found = city.get(PAGE, params={"q": "430223202406200102"}).text
    assert "430223202406200102-Y01" in found and "430223202406200101-Y01" not in \
        found.split('id="number-register"')[1]

    other = Client(env.url)
    other.login("chaling")
    assert "2406-430223-70-01-000101" not in other.get(PAGE).text  # 茶陵县 sees only its own
    assert other.get(PAGE, params={"county": YOUXIAN}).status_code == 404

    # the daily digest: one alert per county and list, once a day
    with env.hub.transaction() as s:
        today = (utcnow()).date()
        refs = daily_digest(s, today, env.hub.overrides.current().calendar, {"430223": "攸县"})
        again = daily_digest(s, today, env.hub.overrides.current().calendar, {})
    assert refs == [f"project_overdue_acceptance:{YOUXIAN}:{today:%Y%m%d}"] and again == []
    with env.hub.transaction() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "project_overdue_acceptance")).one()
        assert alert.division == YOUXIAN and "攸县：1 个预售项目" in alert.title

    xlsx = city.get(PAGE + ".xlsx")
    assert xlsx.status_code == 200
    wb = load_workbook(io.BytesIO(xlsx.content))
    assert wb.sheetnames == ["编号登记簿", "项目登记", "逾期未竣工验收", "已办预售未办施工许可"]
    overdue_rows = [r for r in wb["逾期未竣工验收"].iter_rows(min_row=2, values_only=True)]
    assert [r[0] for r in overdue_rows] == ["2406-430223-70-01-000101"]
    assert isinstance(overdue_rows[0][-1], int) and overdue_rows[0][-1] > 100  # working days

    # an acceptance is reported once it happened: a 9999-12-31 had taken the project
    # off the list for good
    ahead = env.post(f"{V1}/projects/2406-430223-70-01-000101/acceptance",
                     {"kind": "completion_filing", "date": "9999-12-31"})
    assert ahead.json()["code"] == "2002" and "after today" in ahead.text, ahead.text
    assert "2406-430223-70-01-000101" in _overdue_codes(city)
    r = env.post(f"{V1}/projects/2406-430223-70-01-000101/acceptance",
                 {"kind": "completion_filing", "date": "2025-08-01"})
    assert r.status_code == 200, r.text
    assert "2406-430223-70-01-000101" not in _overdue_codes(city)
    bad = env.post(f"{V1}/projects/2406-430223-70-01-000101/acceptance",
                   {"kind": "party", "date": "x"})
    assert bad.json()["code"] == "2002"
    assert {e["field"] for e in bad.json()["errors"]} == {"kind", "date"}
    assert env.post(f"{V1}/projects/2406-430223-70-01-009999/acceptance",
                    {"kind": "five_party", "date": "2025-08-01"}).json()["code"] == "4001"


def test_a_presale_project_without_construction_permit_is_listed(numbering_env):  # noqa: F811
    env = numbering_env
    add_operator(env.hub, "city", ALL_FUNCTIONS)
    city = Client(env.url)
    city.login("city")
    city.get(PAGE)
    r = city.post(PAGE + "/presale-only", {"county": CHALING,
                                           "project_code": "2305-430224-70-01-000009",
                                           "project_name": "=HYPERLINK(\"x\")",
                                           "developer_name": "茶陵某置业",
                                           "presale_since": "2023-05-01"})
    assert r.status_code == 200
    listed = city.get(PAGE).text.split('id="presale-without-permit"')[1].split("</table>")[0]
    assert "2305-430224-70-01-000009" in listed and "茶陵县" in listed
    wb = load_workbook(io.BytesIO(city.get(PAGE + ".xlsx").content))
    row = next(wb["已办预售未办施工许可"].iter_rows(min_row=2))
    assert row[0].value == "2305-430224-70-01-000009"
    assert row[2].data_type == "s" and row[2].quotePrefix  # text, never a formula
    # a wrong entry changes nothing
    city.post(PAGE + "/presale-only", {"county": CHALING, "project_code": "x",
                                       "project_name": "", "developer_name": "",
                                       "presale_since": "soon"})
    assert city.get(PAGE).text.count("2305-430224-70-01-000009") == 2  # its two lists only
