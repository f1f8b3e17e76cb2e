"""End to end, real servers only: hub (WSGI + delivery workers) → simulated county smart
platform → its signed callbacks → stages → pushes the simulated province records; and the
same item kinds through a manual county's operators."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from adapters.manual_excel import mark_stage
from adapters.sim.county import CountySim, SimConfig
from adapters.sim.province import ProvinceSim
from store.models import CallLogEntry, OutboxMessage
from tests.county_support import (
    OWNER_ID_NO,
    case_of,
    new_case,
    province_messages,
    secret,
    served,
    stages_of,
)
from tests.support import wait_until

SMART = ("511702", "511703", "511722")


@pytest.fixture
def world(make_hub, store_url):
    """(hub, hub_url, county simulator, province simulator), all on loopback."""
    province = ProvinceSim(secret("province")).start()
    county = CountySim(SimConfig(hub_url="http://127.0.0.1:9",  # set once the hub serves
                                 secrets={c: secret(f"county_{c}") for c in SMART},
                                 delays=(0.05, 0.05, 0.05))).start()
    partners = {f"county_{c}": {"base_url": county.county_url(c), "division": c} for c in SMART}
    partners["province"] = {"base_url": province.base_url}
    hub = make_hub(store_url, inbound=["county_smart"], partners=partners)
    hub.start_workers(2)
    with served(hub) as url:
        county.config.hub_url = url
        yield hub, url, county, province
    county.stop()
    province.stop()


def pushed(province, case_no, operation="status"):
    """What the province recorded for a case, in the hub's order (outbox message ids):
    two delivery threads may deliver neighbouring messages in either order."""
    got = [p for p in province.state.pushes(operation) if p.body.get("case_no") == case_no]
    return [p.body for p in sorted(got, key=lambda p: int(p.message_id or 0))]


def wait_stages(hub, province, case_no, expected):
    wait_until(lambda: [b["stage"] for b in pushed(province, case_no)] == expected
               or None, timeout=20, what=f"{expected} pushed for {case_no}")


def test_smart_application_filing(world):
    hub, _url, county, province = world
    case_no = new_case(hub, "rental_filing", "511702")
    wait_stages(hub, province, case_no, ["accepted", "approved", "completed"])
    [got] = [r for r in county.received if r.body["case_no"] == case_no]
    assert got.app_id == "cityhub_511700" and got.item == "rental_filing"
    assert got.body["county_code"] == "511702" and "county_codes" not in got.body
    assert stages_of(hub, case_no) == ["accepted", "approved", "completed"]
    queued = province_messages(hub, case_no=case_no)
    assert [p["stage"] for p in queued] == ["accepted", "approved", "completed"]
    assert queued[-1]["filing_no"].startswith("BA511702")
    assert pushed(province, case_no)[-1]["filing_no"] == queued[-1]["filing_no"]


def test_smart_async_result(world):
    hub, _url, county, province = world
    case_no = new_case(hub, "property_info_query", "511703")
    wait_stages(hub, province, case_no, ["accepted", "approved", "completed"])
    wait_until(lambda: pushed(province, case_no, "results"), what="result pushed")
    [result] = pushed(province, case_no, "results")
    assert result["data"]["summaries"][0]["house_id"] == "H-0001"  # owner is the applicant
    assert result["data"]["images"][0]["base64"].startswith("/9j/")
    assert [p["stage"] for p in province_messages(hub, case_no=case_no)] == [
        "accepted", "approved", "completed"]
    assert len(province_messages(hub, "results", case_no=case_no)) == 1
    assert OWNER_ID_NO  # the simulator's data set matches the test applicant


def test_smart_sync_query_answered_by_the_county(world):
    hub, _url, county, province = world
    case_no = new_case(hub, "presale_contract_verify", "511702")
    case_id = case_of(hub, case_no).id

    def delivered():
        with hub.transaction() as s:
            row = s.scalars(select(OutboxMessage).where(
                OutboxMessage.case_id == case_id,
                OutboxMessage.interface == "county.presale_contract_verify")).one()
            return row if row.status == "done" else None

    wait_until(delivered, what="the query delivered")
    with hub.transaction() as s:
        log = s.scalars(select(CallLogEntry).where(CallLogEntry.case_id == case_id,
                                                   CallLogEntry.direction == "out")).first()
        assert log.outcome == "ok"
        assert hub.cipher.open_json(log.response_enc)["data"] == {"filed": True}
    # not answered inline (the case was queued, not asked by the province): pushed to /results
    wait_until(lambda: pushed(province, case_no, "results"), what="result pushed")
    assert [p["data"] for p in pushed(province, case_no, "results")] == [{"filed": True}]
    assert [r.item for r in county.received] == ["presale_contract_verify"]
    assert county.callbacks == []  # a sync query has no stage callbacks


def test_smart_status_only_item(world):
    hub, _url, county, province = world
    opened = county.call_hub("511722", "/api/county/v1/apply-and-accept", {
        "item": "maintenance_fund_deposit", "county_code": "511722",
        "county_case_no": "WX511722-77", "at": "2026-11-23T09:00:00+08:00", "operator": "刘",
        "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"},
        "data": {"amount": "3200.00"}})
    assert opened.status == 200 and opened.answer["code"] == "0000", opened.answer
    case_no = opened.answer["data"]["case_no"]
    for stage in ("approved", "completed"):
        cb = county.call_hub("511722", "/api/county/v1/events", {
            "case_no": case_no, "item": "maintenance_fund_deposit", "county_code": "511722",
            "stage": stage, "at": "2026-11-23T10:00:00+08:00", "operator": "刘"})
        assert cb.answer["data"]["recorded"] is True
    wait_stages(hub, province, case_no, ["apply_and_accept", "approved", "completed"])
    # and a county speaking for another county is refused and changes nothing
    cross = county.call_hub("511722", "/api/county/v1/events", {
        "case_no": case_no, "item": "maintenance_fund_deposit", "county_code": "511703",
        "stage": "approved"}, app_id="county_511722", retries=0)
    assert cross.status == 403 and cross.answer["code"] == "1004"
    assert stages_of(hub, case_no) == ["apply_and_accept", "approved", "completed"]


MANUAL_CASES = [
    # (item, kind, marks: [(stage, extra)])
    ("rental_filing", "application",
     [("accepted", {}), ("approved", {}), ("completed", {"filing_no": "ZL-511725-9"})]),
    ("property_info_query", "async result",
     [("accepted", {}), ("completed", {"result": {"summaries": ["无房产记录"]}})]),
    ("presale_contract_verify", "sync query",
     [("accepted", {}), ("completed", {"result": {"filed": False}})]),
    ("maintenance_fund_deposit", "status only", [("accepted", {}), ("completed", {})]),
]


@pytest.mark.parametrize(("item", "kind", "marks"), MANUAL_CASES,
                         ids=[c[1] for c in MANUAL_CASES])
def test_manual_county_by_kind(world, item, kind, marks):
    hub, _url, county, province = world
    case_no = new_case(hub, item, "511725", data={} if kind == "status only" else None)
    assert case_of(hub, case_no).route_mode == "manual"
    for stage, extra in marks:
        assert mark_stage(hub, case_no, stage, "op-渠县", **extra).recorded
    stages = [m[0] for m in marks]
    wait_stages(hub, province, case_no, stages)
    assert [p["stage"] for p in province_messages(hub, case_no=case_no)] == stages
    results = [m[1]["result"] for m in marks if "result" in m[1]]
    if results:
        wait_until(lambda: pushed(province, case_no, "results"), what="result pushed")
        assert [p["data"] for p in pushed(province, case_no, "results")] == results
    assert county.received == []  # nothing went to any county platform
