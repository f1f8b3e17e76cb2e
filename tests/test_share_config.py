"""Departments in the config: checked at start-up, each mistake named ``file: key: why``."""

from __future__ import annotations

import pytest

from hub import ConfigError
from mapping.departments import asker


@pytest.mark.parametrize(("partner", "key"), [
    ({"department": "bnk"}, "partners.bank_icbc.department"),
    ({"department": "bank", "scope": {"kinds": ["rental"]}}, "partners.bank_icbc.scope.kinds"),
    ({"department": "bank", "rate_per_minute": 0}, "partners.bank_icbc.rate_per_minute"),
    ({"department": "bank", "scope": {"colour": 1}}, "partners.bank_icbc.scope.colour"),
])
def test_a_wrong_department_stops_start_up(make_hub, sqlite_url, partner, key):
    with pytest.raises(ConfigError, match=rf"config\.yaml: {key}: "):
        make_hub(sqlite_url, partners={"bank_icbc": partner})


def test_check_reports_a_wrong_department_as_start_up_does(tmp_path, sqlite_url):
    """``hub.py check`` (no store, no data key) names the same ``file: key: why``."""
    import subprocess

    from tests.support import ROOT, hub_command, write_config

    config = write_config(tmp_path / "cfg", sqlite_url,
                          partners={"bank_icbc": {"department": "bank", "rate_per_minute": 0}})
    proc = subprocess.run(hub_command(config, "check"), capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 2, proc.stdout
    assert f"{config}: partners.bank_icbc.rate_per_minute: " in proc.stderr
    assert "Traceback" not in proc.stderr
    good = write_config(tmp_path / "ok", sqlite_url, partners={"bank_icbc": {"department": "bank"}})
    done = subprocess.run(hub_command(good, "check"), capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0 and "配置无误：达州市（511700）" in done.stdout, done.stderr


def test_a_scope_never_widens_the_contract(make_hub, sqlite_url):
    with pytest.raises(ConfigError, match=r"partners\.police\.scope\.price: "):
        make_hub(sqlite_url, partners={"police": {"department": "police",
                                                  "scope": {"price": True}}})


def test_the_default_config_lists_one_department_of_each_kind(make_hub, sqlite_url):
    import yaml

    from tests.support import ROOT

    partners = yaml.safe_load((ROOT / "config.yaml").read_text())["partners"]
    kinds = {p["department"]: a for a, p in partners.items() if "department" in p}
    assert kinds == {"bank": "bank_icbc", "fund": "fund", "tax": "tax", "police": "police",
                     "court": "court"}
    hub = make_hub(sqlite_url, partners={a: partners[a] for a in kinds.values()})
    assert set(hub.sharing.pushes) == {"tax", "fund"}  # the routing table's sharing block
    assert "presale_contract_cancel" in hub.sharing.pushes["tax"].items


@pytest.mark.parametrize("headers", [
    {}, {"X-Operator-Id": "op 1", "X-Purpose": "x"}, {"X-Operator-Id": "op", "X-Purpose": ""},
    {"X-Operator-Id": "op", "X-Purpose": "%FF"}, {"X-Operator-Id": "op", "X-Purpose": "%0A"},
    {"X-Operator-Id": "操作员", "X-Purpose": "x"},
])
def test_operator_and_purpose_refused(headers):
    who, errors = asker(headers)
    assert who is None and errors


def test_purpose_decoded():
    who, errors = asker({"X-Operator-Id": "op-1",
                         "X-Purpose": "%E6%89%A7%E8%A1%8C%E6%A1%88%E4%BB%B6%20(2026)"})
    assert errors == [] and who.purpose == "执行案件 (2026)"
