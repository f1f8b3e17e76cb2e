"""Shared bits of the benchmarks: a temporary hub config and a peer process."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import free_port, write_config  # noqa: E402


def temp_config(database_url: str | None, **overrides) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """A config (and secrets) in a temporary folder; SQLite there unless a URL is given."""
    folder = Path(tempfile.mkdtemp(prefix="cityhub-bench-"))
    url = database_url or f"sqlite:///{folder / 'bench.db'}"
    return write_config(folder, url, **overrides), url


def reset_store(url: str) -> None:
    from sqlalchemy import create_engine, text

    from store.db import Database

    if url.startswith("postgresql"):
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    db = Database(url)
    db.migrate()
    db.dispose()


def start_peer(clock: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """The loopback peer in its own process, so it does not share our GIL; with ``clock``
    it also notes each message's arrival time (``bench/_clock_peer.py``)."""
    port = free_port()
    module = ["bench/_clock_peer.py"] if clock else ["-m", "adapters.sim.loopback"]
    proc = subprocess.Popen([sys.executable, *module, "--port", str(port)],
                            cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/_received", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("peer did not start")
