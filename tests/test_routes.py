"""Routing tables: the shipped tables load; every kind of mistake stops start-up with
one message naming the file and the key; the `route` command explains a decision."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hub import adapter_problem
from mapping.divisions import Divisions
from mapping.items import ITEMS
from routes.policy import RetryPolicy
from routes.table import RouteTableError, load_table
from tests.support import ROOT, default_partners, hub_command, write_config

DIVISIONS = Divisions.load()
POLICIES = {"default": RetryPolicy(), "query": RetryPolicy(max_attempts=3)}
DAZHOU = ROOT / "routes" / "tables" / "dazhou.yaml"
JIANGMEN = ROOT / "routes" / "tables" / "jiangmen.yaml"


def load(path: Path, partners=None, city=None):
    return load_table(path, DIVISIONS, ITEMS, adapter_problem,
                      partners or default_partners(), POLICIES, city_code=city)


def broken(tmp_path: Path, mutate) -> Path:
    table = yaml.safe_load(DAZHOU.read_text(encoding="utf-8"))
    mutate(table)
    path = tmp_path / "table.yaml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True))
    return path


def test_dazhou_table_routes_every_county_and_item():
    table = load(DAZHOU, city="511700")
    assert table.counties() == sorted(DIVISIONS.city("511700").counties)
    smart = table.resolve("511702", "rental_filing")
    assert (smart.adapter, smart.partner, smart.mode) == ("county_smart", "county_511702", "auto")
    manual = table.resolve("511725", "rental_filing")
    assert (manual.adapter, manual.mode, manual.partner) == ("manual_excel", "manual", None)
    # a per-item override inside a manual county
    override = table.resolve("511724", "rental_filing")
    assert (override.adapter, override.mode) == ("county_smart", "auto")
    assert table.resolve("511724", "survey_review").mode == "manual"
    assert table.resolve("511702", "presale_contract_verify").timeout == 5
    assert table.resolve("511702", "presale_contract_verify").retry.max_attempts == 3
    assert table.resolve("511781", "rental_filing").retry.max_attempts == 15


def test_jiangmen_table_loads_without_code_changes():
    partners = {f"county_{c}": {} for c in ("440703", "440704", "440705", "440784")}
    table = load(JIANGMEN, partners=partners, city="440700")
    assert table.city.name == "江门市"
    assert table.resolve("440781", "rental_filing").mode == "manual"
    assert table.resolve("440703", "rental_filing").partner == "county_440703"


@pytest.mark.parametrize("mutate, key, words", [
    (lambda t: t["counties"].update({"511799": {"partner": "county_511702"}}),
     "counties.511799", "unknown code"),
    (lambda t: t["counties"].update({"440703": {"partner": "county_511702"}}),
     "counties.440703", "江门市"),
    (lambda t: t["counties"]["511702"]["items"].update({"no_such_item": {}}),
     "counties.511702.items.no_such_item", "unknown item"),
    (lambda t: t["counties"]["511725"].update({"adapter": "carrier_pigeon"}),
     "counties.511725.adapter", "unknown adapter"),
    (lambda t: t["counties"].pop("511723"),
     "counties", "no route for 511723"),
    (lambda t: t["counties"]["511702"].update({"partner": "county_nowhere"}),
     "counties.511702.partner", "unknown partner"),
    (lambda t: t["counties"]["511702"].update({"mode": "sometimes"}),
     "counties.511702.mode", "auto, manual"),
    (lambda t: t["counties"]["511702"].update({"retry": "no_such_policy"}),
     "counties.511702.retry", "unknown retry policy"),
    (lambda t: t.update({"city": "440700"}),
     "city", "not the hub's city"),
])
def test_wrong_tables_name_file_and_key(tmp_path, mutate, key, words):
    path = broken(tmp_path, mutate)
    with pytest.raises(RouteTableError) as err:
        load(path, city="511700")
    message = str(err.value)
    assert message.startswith(f"{path}: {key}:"), message
    assert words in message


def test_hub_start_stops_on_a_wrong_table(tmp_path, sqlite_url):
    table = broken(tmp_path, lambda t: t["counties"].pop("511781"))
    config = write_config(tmp_path / "cfg", sqlite_url, routing_table=str(table))
    proc = subprocess.run(hub_command(config, "check"), capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("错误：配置有误，请改正后重试")
    assert f"{table}: counties: no route for 511781 (万源市)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_route_command_dry_run(tmp_path, sqlite_url):
    config = write_config(tmp_path / "cfg", sqlite_url)
    ok = subprocess.run(hub_command(config, "route", "--county", "511725", "--item",
                                    "rental_filing"),
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "511725 渠县 / 房屋租赁备案（rental_filing）" in ok.stdout
    assert "适配器：  人工办理（Excel 导出导入）（manual_excel）" in ok.stdout
    assert "方式：    人工办理（manual）" in ok.stdout and "超时：" in ok.stdout
    assert ("依据：    区县 511725 渠县 → 适配器 manual_excel，方式 manual；"
            "设置来自 counties.511725") in ok.stdout
    bad = subprocess.run(hub_command(config, "route", "--county", "440703", "--item",
                                     "rental_filing"),
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode != 0
    assert bad.returncode == 2
    # (INFO log lines of start-up may precede it: the operator's line is the last one)
    assert bad.stderr.splitlines()[-1] == ("错误：区县 蓬江区 440703 属于江门市，"
                                           "不是本市（达州市）的区县")
    assert bad.stderr.count("错误：") == 1 and "Traceback" not in bad.stderr
