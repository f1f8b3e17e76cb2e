"""Operator commands of fund supervision, run as the real ``hub.py`` process."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import select

from adapters.fund.auth import verify_password
from hub import Hub, load_config
from store.fund_models import FundHouse, FundInstruction, FundLogin, SupervisedAccount
from tests.support import ROOT, hub_command

BANK_PARTNERS = {"bank_icbc_dazhou": {"base_url": "http://127.0.0.1:9/", "bank_code": "ICBC"}}


def run(config, *args, stdin=None, env=None):
    return subprocess.run(hub_command(config, *args), cwd=ROOT, input=stdin, text=True,
                          capture_output=True, timeout=60,
                          env={**os.environ, "HUB_ACTOR": "op-wang", **(env or {})})


def test_logins_accounts_houses_and_instructions_from_the_command_line(make_config, sqlite_url):
    config = make_config(sqlite_url, inbound=["bank_soap", "pos"], partners=BANK_PARTNERS)
    r = run(config, "bank-account", "add", "--bank-code", "ICBC", "--username", "front",
            env={"HUB_BANK_PASSWORD": "a-long-bank-password"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "已设置中国工商银行（ICBC）的银行前置登录账号 front", r.stdout
    r = run(config, "bank-account", "add", "--bank-code", "ICBC", "--username", "pos1", "--pos",
            stdin="another-long-password\n")
    assert r.returncode == 0, r.stderr
    short = run(config, "bank-account", "add", "--bank-code", "ICBC", "--username", "x",
                stdin="short\n")
    assert short.returncode == 2 and short.stderr.strip().splitlines()[-1] == (
        "错误：银行登录账号未添加：密码至少需要 12 个字符，请换一个更长的密码")
    r = run(config, "fund-account", "add", "--account-no", "6217000000000777", "--bank-code",
            "ICBC", "--division", "511702", "--project-name", "滨河花园")
    assert r.returncode == 0, r.stderr
    assert run(config, "fund-account", "add", "--account-no", "6217000000000777",
               "--permit-no", "达预2026001").returncode == 0  # an operator's edit
    other = run(config, "fund-account", "add", "--account-no", "X", "--bank-code", "ICBC",
                "--division", "440703")  # not a county of Dazhou
    assert other.returncode == 2 and other.stderr.strip().splitlines()[-1] == (
        "错误：未知区县 '440703'：不是达州市的区县，请在 --division 填写区划表中的区县代码")
    new = run(config, "fund-account", "add", "--account-no", "6217000000000999")
    assert new.returncode == 2 and new.stderr.strip().splitlines()[-1].startswith(
        "错误：监管账户 6217000000000999 是新账户：请同时填写 --bank-code")
    unknown = run(config, "fund-instruction", "cancel", "--account-no", "6217000000000999",
                  "--reason", "竣工")
    assert unknown.returncode == 2 and unknown.stderr.strip().splitlines()[-1].startswith(
        "错误：未知监管账户 '6217000000000999'")
    house = run(config, "fund-house", "add", "--house-code", "H-1", "--account-no",
                "6217000000000777")
    assert house.returncode == 0 and house.stdout.strip() == (
        "已保存房屋 H-1 → 监管账户 6217000000000777（在售）"), house.stdout
    held = run(config, "fund-held", "list")
    assert held.returncode == 0 and held.stdout.startswith("编号\t时间（北京时间）\t银行"), held
    r = run(config, "fund-instruction", "cancel", "--account-no", "6217000000000777",
            "--reason", "竣工")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("已排队发送取消监管指令（CancelSupervisionInstruction）"), r.stdout
    assert "答复期限 20" in r.stdout
    listing = run(config, "fund-account", "list").stdout
    assert listing.splitlines()[0] == "监管账号\t银行\t区县\t状态\t项目\t余额（元）"
    assert ("6217000000000777\t中国工商银行（ICBC）\t通川区（511702）\t监管中（active）\t"
            "滨河花园\t0.00") in listing, listing
    hub = Hub(load_config(config))
    try:
        with hub.db.session() as s:
            logins = {x.username: x for x in s.scalars(select(FundLogin))}
            assert logins["front"].kind == "bank" and logins["pos1"].kind == "pos"
            assert "a-long-bank-password" not in logins["front"].password_hash
            assert verify_password("a-long-bank-password", logins["front"].password_hash)
            acc = s.scalar(select(SupervisedAccount))
            assert (acc.permit_no, acc.updated_by) == ("达预2026001", "op-wang")
            assert s.get(FundHouse, "H-1").account_no == acc.account_no
            ins = s.scalar(select(FundInstruction))
            assert (ins.type_code, ins.division, ins.created_by) == ("02", "511702", "op-wang")
    finally:
        hub.close()
