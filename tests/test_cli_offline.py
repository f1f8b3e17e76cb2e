"""``hub.py check`` and ``hub.py route`` read configuration only: they work on a fresh
checkout with no secrets file, no data key and no store, and say nothing about tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """The default config and the examples, as a fresh checkout has them (no var/)."""
    for name in ("config.yaml", "routes", "examples"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, tmp_path / name)
    return tmp_path


def run(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HUB_")}  # no HUB_DATA_KEY, HUB_DATABASE_URL, ...
    return subprocess.run([sys.executable, str(ROOT / "hub.py"), *args], cwd=checkout,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("config", ["config.yaml", "examples/jiangmen.yaml",
                                    "examples/zhuzhou.yaml"])
def test_check_needs_no_key_and_no_store(fresh, config):
    done = run(fresh, "--config", str(fresh / config), "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("配置无误：") and "个区县已配置路由" in done.stdout
    assert done.stderr == ""
    assert not (fresh / "var").exists()  # nothing created: no secrets, no database


def test_route_needs_no_key_and_refuses_an_unknown_county_in_one_line(fresh):
    ok = run(fresh, "--config", str(fresh / "config.yaml"), "route", "--county", "511725",
             "--item", "rental_filing")
    assert ok.returncode == 0 and "manual_excel" in ok.stdout and ok.stderr == "", ok.stderr
    bad = run(fresh, "--config", str(fresh / "config.yaml"), "route", "--county", "999999",
              "--item", "rental_filing")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "错误：未知区县 999999（不在达州市区划表中）\n"
    assert not (fresh / "var").exists()


@pytest.mark.parametrize(("change", "key"), [
    (lambda c: c.update(routing_table="routes/tables/nothere.yaml"), "routing_table"),
    (lambda c: c["partners"].update(court="abc"), "partners.court"),
    (lambda c: c["partners"]["fund"].update(timeout="abc"), "partners.fund.timeout"),
    (lambda c: c["partners"]["fund"].update(timeout=None), "partners.fund.timeout"),
    (lambda c: c["partners"]["fund"].update(timeout=10**30), "partners.fund.timeout"),
    (lambda c: c.update(inbound=5), "inbound"),
    (lambda c: c.update(database_url=5), "database_url"),
    (lambda c: c["retry_policies"].update(query=5), "retry_policies.query"),
    (lambda c: c.update(listen={"port": "abc"}), "listen.port"),
    (lambda c: c.update(listen="abc"), "listen"),
])
def test_a_malformed_config_is_one_line_naming_the_key(fresh, change, key):
    import yaml

    path = fresh / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(config)
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    done = run(fresh, "--config", str(path), "check")
    assert done.returncode == 2 and done.stdout == "", done.stderr
    [line] = done.stderr.splitlines()  # never a traceback
    assert line.startswith("错误：配置有误") and f"{path}: {key}" in line, line
