"""The hub's log lines are stamped in Beijing time, with the offset, whatever the
server's own time zone: the clerk reading ``hub.py serve``'s output on a server set to
UTC (a container's default) sees the same time as on the admin pages."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from hub import LOG_FORMAT

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
