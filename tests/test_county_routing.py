"""Auto or manual is configuration: a new routing table moves new cases; cases already
under way keep the route stored on their sub-case."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import yaml

from adapters.manual_excel import export_workbook, mark_stage
from store.crypto import new_master_key
from tests.county_support import case_of, event, new_case, post_signed, served, stages_of
from tests.support import DEAD_URL, ROOT


def switched_table(tmp_path: Path) -> Path:
    """渠县 (511725) gets a platform for rental filings; 通川区 (511702) goes manual."""
    table = yaml.safe_load((ROOT / "routes" / "tables" / "dazhou.yaml").read_text("utf-8"))
    table["counties"]["511725"]["items"] = {
        "rental_filing": {"adapter": "county_smart", "mode": "auto", "partner": "county_511725"}}
    table["counties"]["511702"] = {"adapter": "manual_excel", "mode": "manual"}
    path = tmp_path / "switched.yaml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True), encoding="utf-8")
    return path


def test_switch_moves_new_cases_only(make_hub, store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_DATA_KEY", new_master_key())  # two hubs, one store, one key
    partners = {"county_511725": {"base_url": f"{DEAD_URL}/county/511725", "division": "511725"}}
    before = make_hub(store_url, inbound=["county_smart"], partners=partners)
    old_manual = new_case(before, "rental_filing", "511725", apply_no="OLD-1")
    old_auto = new_case(before, "rental_filing", "511702", apply_no="OLD-2")

    after = make_hub(store_url, inbound=["county_smart"], partners=partners,
                     routing_table=str(switched_table(tmp_path)))
    assert after.routes.resolve("511725", "rental_filing").mode == "auto"
    assert after.routes.resolve("511702", "rental_filing").mode == "manual"
    new_auto = new_case(after, "rental_filing", "511725", apply_no="NEW-1")
    new_manual = new_case(after, "rental_filing", "511702", apply_no="NEW-2")

    routes = {n: (case_of(after, n).route_adapter, case_of(after, n).route_mode)
              for n in (old_manual, old_auto, new_auto, new_manual)}
    assert routes == {old_manual: ("manual_excel", "manual"), old_auto: ("county_smart", "auto"),
                      new_auto: ("county_smart", "auto"), new_manual: ("manual_excel", "manual")}

    # the old manual case is still in the operators' queue, the new auto one is not
    xlsx, _ = export_workbook(after, divisions=["511725", "511702"], with_materials=False)
    ws = openpyxl.load_workbook(io.BytesIO(xlsx))["房屋租赁备案"]
    assert sorted(r[0] for r in ws.iter_rows(min_row=2, values_only=True)) == sorted(
        [old_manual, new_manual])
    assert mark_stage(after, old_manual, "accepted", "op").recorded
    # and 通川区's platform still moves the case it was sent before the switch
    with served(after) as url:
        r = post_signed(url, "/api/county/v1/events",
                        event(old_auto, "rental_filing", "511702", "accepted"), "county_511702")
        assert r.json()["data"]["recorded"] is True
    assert stages_of(after, old_auto) == ["accepted"]
