"""Every item of the province contract, end to end over real servers: a signed request
from the simulated province → the hub → the simulated county smart platform → its
signed stage callbacks → the pushes the simulated province records, in order."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.sim.county import CountySim, SimConfig
from adapters.sim.province import ProvinceClient, ProvinceSim
from mapping.items import ITEMS, ItemKind, province_items
from tests.county_support import secret, served
from tests.hubserver import application
from tests.support import wait_until

COUNTY = "511702"
DEVELOPER = {"developer_name": "达州新城置业有限公司", "developer_uscc": "91350100M000100Y43",
             "project_name": "新城一期"}
PARTIES = {"buyer_name": "张三", "buyer_id_no": "11010519491231002X", "seller_name": "李四",
           "seller_id_no": "110105198001011238", "house_id": "H-0001",
           "address": "通川区朝阳路1号"}
DATA: dict[str, dict[str, Any]] = {
    "presale_contract_cancel": {"contract_no": "YS-2026-0001", "buyer_name": "张三"},
    "presale_contract_filing": PARTIES,
    "resale_contract_filing": PARTIES,
    "presale_scope_query": DEVELOPER,
    "presale_permit_application": {**DEVELOPER, "presale_scope": "1-3号楼",
                                   "address": "通川区新城路8号", "house_ids": ["H-0001", "H-0002"]},
}
STAGES = ["accepted", "approved", "completed"]


@pytest.fixture
def world(make_hub, store_url):
    province = ProvinceSim(secret("province")).start()
    county = CountySim(SimConfig(hub_url="http://127.0.0.1:9",
                                 secrets={COUNTY: secret(f"county_{COUNTY}")},
                                 delays=(0.05, 0.05, 0.05))).start()
    partners = {f"county_{COUNTY}": {"base_url": county.county_url(COUNTY), "division": COUNTY},
                "province": {"base_url": province.base_url}}
    hub = make_hub(store_url, inbound=["province", "county_smart"], partners=partners)
    hub.start_workers(2)
    with served(hub) as url:
        county.config.hub_url = url
        yield hub, ProvinceClient(url, secret("province")), county, province
    county.stop()
    province.stop()


def pushes(province, operation, case_no):
    got = [p for p in province.state.pushes(operation) if p.body.get("case_no") == case_no]
    return [p.body for p in sorted(got, key=lambda p: int(p.message_id or 0))]


@pytest.mark.parametrize("item", [i.code for i in province_items()])
def test_item_end_to_end(world, item):
    hub, client, county, province = world
    body = application(item, apply_no=f"510000-20261125-{item[:20]}", counties=(COUNTY,),
                       **DATA.get(item, {}))
    answer = client.submit(item, body)
    assert answer.status == 200 and answer.body["code"] == "0000", answer.body
    kind = ITEMS[item].kind
    if kind is ItemKind.SYNC_QUERY:
        # answered in the same call, from the county's own data
        assert answer.body["data"].get("status") != "pending", answer.body
        assert [r.item for r in county.received] == [item]
        assert county.callbacks == []
        return
    [sub] = answer.body["data"]["sub_cases"]
    assert sub["county_code"] == COUNTY
    case_no = sub["case_no"]
    wait_until(lambda: [b["stage"] for b in pushes(province, "status", case_no)] == STAGES
               or None, timeout=30, what=f"{STAGES} pushed for {item}")
    stages = pushes(province, "status", case_no)
    assert all(b["apply_no"] == body["apply_no"] and b["item"] == item for b in stages)
    [delivered] = [r for r in county.received if r.body.get("case_no") == case_no]
    assert delivered.app_id == "cityhub_511700" and delivered.body["county_code"] == COUNTY
    if item in ("rental_filing", "presale_contract_filing", "resale_contract_filing"):
        assert stages[-1]["filing_no"], "a filing item completes with its filing number"
    if kind is ItemKind.ASYNC_RESULT:
        wait_until(lambda: pushes(province, "results", case_no), what="the result pushed")
        [result] = pushes(province, "results", case_no)
        assert result["data"]["summaries"], result
    # every push arrived signed by the hub (the simulator refuses anything else)
    assert all(p.app_id == "cityhub_511700" for p in province.state.pushes("status"))
