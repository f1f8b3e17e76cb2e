"""The catalogue of Chinese names: every code the hub produces has one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mapping import names
from mapping.items import ITEMS, STAGES

ROOT = Path(__file__).resolve().parent.parent


def test_interfaces_partners_banks_and_statuses_have_chinese_names():
    assert names.name("interfaces", "county.rental_filing") == "房屋租赁备案 · 推送区县"
    assert names.name("interfaces", "province.in.rental_filing") == "房屋租赁备案 · 省厅来件"
    assert names.name("interfaces", "province.status") == "办理环节 · 推送省厅"
    assert names.name("interfaces", "fund.DepositNotice") == "预售资金入账通知 · 银行来件"
    assert names.name("interfaces", "bank.ReconciliationInstruction") == \
        "预售资金对账指令 · 发送银行"
    assert names.name("partners", "county_511702") == "通川区智慧平台"
    assert names.name("partners", "province") == "省厅平台"
    assert names.name("partners", "ICBC") == "中国工商银行"
    assert names.name("message_statuses", "dead") == "已停止"
    assert names.name("result_codes", "2005") == "流水号已用于不同内容"
    assert names.name("stages", "rejected") == "不予受理"
    assert names.name("alert_kinds", "no-such-kind") == "no-such-kind"  # visible, not hidden
    with pytest.raises(KeyError):
        names.name("no-such-catalogue", "x")


def _codes_in_source(pattern: str) -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("adapters/**/*.py"), *ROOT.glob("admin/**/*.py"),
                 *ROOT.glob("store/**/*.py"), ROOT / "scheduler.py", ROOT / "hub.py"]:
        found |= set(re.findall(pattern, path.read_text(encoding="utf-8")))
    return found


def test_every_alert_kind_the_code_raises_is_named():
    kinds = _codes_in_source(r'alert\(\s*s,\s*"([a-z_]+)"') | \
        _codes_in_source(r'Alert\(kind="([a-z_]+)"')
    assert kinds, "the pattern found no alert kinds: the test would prove nothing"
    assert sorted(k for k in kinds if k not in names.known("alert_kinds")) == []


def test_every_audit_action_the_code_writes_is_named():
    # admin's audit(s, "action", ...) and the hub's audit(s, actor, "action", ...)
    actions = _codes_in_source(r'audit\(\s*s,\s*(?:[^,()"]+,\s*)?"([a-z_.]+)"')
    people = (ROOT / "admin" / "views_people.py").read_text(encoding="utf-8")
    actions |= {f"user_{a}" for a in re.findall(r'action == "([a-z]+)"', people)}
    assert len(actions) > 20, actions
    assert sorted(a for a in actions if a not in names.known("audit_actions")) == []


def test_every_item_stage_and_operation_is_named_in_chinese():
    han = re.compile(r"[\u4e00-\u9fff]")
    for kind, codes in (("items", ITEMS), ("stages", STAGES)):
        for code in codes:
            assert han.search(names.name(kind, code)), (kind, code)
    for kind in ("message_statuses", "alert_kinds", "audit_actions", "banks", "result_codes"):
        for code, label in names.known(kind).items():
            assert han.search(label), (kind, code)


def test_every_interface_the_code_logs_has_its_own_chinese_name():
    """``county.events`` was named by its prefix: 「events · 推送区县」, English and the
    wrong direction (names.yaml had ``county.in.events``)."""
    codes = _codes_in_source(r'@inbound\(\s*"([a-z._-]+)"') | \
        _codes_in_source(r'_authenticate\(hub,\s*"([a-z._-]+)"') | \
        _codes_in_source(r'_county\(hub,\s*"([a-z._-]+)"')
    assert len(codes) > 8, codes
    english = {c: names.name("interfaces", c) for c in codes
               if re.search(r"[a-z]{3,}", names.name("interfaces", c))}
    assert english == {}
