"""Helpers shared by the tests: configs on disk, free ports, waiting, hub processes."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from store.crypto import new_master_key

ROOT = Path(__file__).resolve().parent.parent
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused
DAZHOU_SMART = ("511702", "511703", "511722", "511724", "511781")


def _ephemeral_low() -> int:
    """The lowest port the kernel hands out by itself (Linux; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free port for a server to listen on later, picked below the kernel's ephemeral
    range: the ports the kernel gives to port-0 binds and to outgoing connections'
    source ports can never take it meanwhile (a parallel worker's did once, and the
    test met another server on its hub's port)."""
    high = _ephemeral_low()
    while True:
        port = random.randrange(max(1024, high - 12000), high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def default_partners() -> dict[str, dict[str, Any]]:
    partners: dict[str, dict[str, Any]] = {"province": {"base_url": f"{DEAD_URL}/province"}}
    for code in DAZHOU_SMART:
        partners[f"county_{code}"] = {"base_url": f"{DEAD_URL}/county/{code}", "division": code}
    return partners


def write_config(
    directory: Path,
    database_url: str,
    partners: dict[str, dict[str, Any]] | None = None,
    secrets: dict[str, str] | None = None,
    **overrides: Any,
) -> Path:
    """Write a config file (and its secrets file) for a test hub; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    all_partners = default_partners()
    all_partners.update(partners or {})
    secrets_file = directory / "secrets.json"
    partner_secrets = {app_id: f"secret-{app_id}-0123456789" for app_id in all_partners}
    partner_secrets.update(secrets or {})
    secrets_file.write_text(json.dumps({"data_key": new_master_key(), "partners": partner_secrets}))
    config: dict[str, Any] = {
        "city": "511700",
        "hub_app_id": "cityhub_511700",
        "database_url": database_url,
        "secrets_file": str(secrets_file),
        "routing_table": str(ROOT / "routes" / "tables" / "dazhou.yaml"),
        "files_dir": str(directory / "files"),
        "listen": {"host": "127.0.0.1", "port": free_port()},
        "retry_policies": {
            "default": {"max_attempts": 5, "min_backoff": 0.2, "max_backoff": 1.0, "jitter": 0.1},
            "query": {"max_attempts": 3, "min_backoff": 0.2, "max_backoff": 1.0, "jitter": 0.1},
            "province": {"max_attempts": 8, "min_backoff": 0.2, "max_backoff": 1.0, "jitter": 0.1},
        },
        "delivery": {"threads": 4, "batch": 10, "lease_seconds": 150, "poll_interval": 0.1},
        "scheduler": {"enabled": True, "lease_seconds": 5},
        "partners": all_partners,
        "inbound": ["province", "county_smart", "manual_excel", "bank_soap", "pos"],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def hub_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / "hub.py"), "--config", str(config), *args]


def start_hub_process(config: Path, *args: str, env: dict[str, str] | None = None,
                      log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        hub_command(config, *args), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        env={**os.environ, "HUB_LOG_LEVEL": "WARNING", **(env or {})},
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
