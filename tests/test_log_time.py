"""The hub's log lines are stamped in Beijing time, with the offset, whatever the
server's own time zone: the clerk reading ``hub.py serve``'s output on a server set to
UTC (a container's default) sees the same time as on the admin pages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import yaml

from hub import LOG_FORMAT
from tests.support import start_hub_process, stop_process, wait_until

ROOT = Path(__file__).resolve().parent.parent


def test_a_log_line_is_stamped_in_beijing_time_on_a_utc_server() -> None:
    # 2026-12-06 22:09:34.719 UTC is 06:09:34.719 the next day in Beijing
    created = datetime(2026, 12, 6, 22, 9, 34, 719000, tzinfo=UTC).timestamp()
    script = (
        "import logging, sys, logsafe\n"
        f"logsafe.install('INFO', {LOG_FORMAT!r})\n"
        "record = logging.LogRecord('cityhub', logging.INFO, 'hub.py', 1, '派件完成', None, None)\n"
        f"record.created, record.msecs = {created!r}, 719.0\n"
        "sys.stderr.write(logging.getLogger().handlers[0].format(record))\n")
    for zone in ("UTC", "America/New_York"):
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "TZ": zone}, check=True)
        assert done.stderr == "2026-12-07 06:09:34.719+08:00 INFO cityhub: 派件完成", zone


def test_hub_py_serve_stamps_its_lines_in_the_configured_zone(make_config, sqlite_url,
                                                              tmp_path) -> None:
    """A city whose operators keep another zone (config ``timezone``): ``hub.py serve``
    on a UTC server stamps its lines in that zone (Urumqi: +06:00)."""
    config = make_config(sqlite_url, inbound=[], timezone="Asia/Urumqi")
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    log = tmp_path / "serve.log"
    proc = start_hub_process(config, "serve", "--no-workers", "--no-scheduler", log=log,
                             env={"TZ": "UTC", "HUB_LOG_LEVEL": "INFO"})
    try:
        def healthy() -> bool | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return True
            except OSError:
                return None

        wait_until(healthy, timeout=30, what="hub.py serve to answer")
    finally:
        stop_process(proc)
    draining = [line for line in log.read_text(encoding="utf-8").splitlines()
                if "draining" in line]
    assert draining, log.read_text(encoding="utf-8")[-2000:]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+06:00 INFO cityhub: draining",
                    draining[0]), draining[0]
