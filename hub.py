"""cityhub — the engine and composition root, and the command line.

Loads ``config.yaml``, builds the store, the routing table, the adapters, the web app,
the delivery workers and the scheduler. ``python hub.py --help`` lists the commands.
"""

from __future__ import annotations

import argparse
import errno
import gc
import getpass
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

import logsafe
from adapters.base import Adapter, AdapterNotFound, Partner, resolve_adapter
from cliwords import OneLineParser, whole_number
from mapping.divisions import City, Divisions
from mapping.items import ITEMS
from mapping.numbering import NumberingSettings
from routes.explain import why_unrouted
from routes.overrides import Overrides
from routes.policy import RetryPolicy, policy_fields
from routes.table import RouteTableError, RoutingTable, load_table
from store.calllog_buffer import CallLogBuffer
from store.crypto import DataCipher, decode_master_key, new_master_key
from store.db import SQLITE_SYNCHRONOUS, Database
from store.group_commit import GroupCommit
from store.models import AuditEntry
from store.outbox import NewMessage, enqueue, enqueue_many, on_new_rows
from store.private import private_dir
from store.sealed import bind_cipher

log = logging.getLogger("cityhub")
ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "config.yaml"
DEFAULT_INBOUND: tuple[str, ...] = ()
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: A partner's call timeout, in seconds (the delivery lease is checked against it too).
MAX_CALL_TIMEOUT = 600


class ConfigError(ValueError):
    """The configuration is wrong; the message names the file and the key."""


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1024 * 1024
    max_material_bytes: int = 10 * 1024 * 1024
    max_soap_bytes: int = 512 * 1024
    #: Materials are decoded at upload and rendered at export within these bounds
    #: (``store.content.ContentLimits``): an image's pixels (from its header, before
    #: decoding), a PDF's pages and page side in points, a rendered page's pixels.
    max_image_pixels: int = 25_000_000
    max_pdf_pages: int = 100
    max_pdf_page_points: int = 5000
    max_render_pixels: int = 16_000_000

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name}: must be a positive whole number, not {value!r}")


@dataclass(frozen=True)
class DeliveryConfig:
    threads: int = 4
    #: Rows claimed per statement; ``lease_seconds`` must cover a batch of the slowest
    #: calls (checked at start-up: adapters/lease.py).
    batch: int = 20
    lease_seconds: float = 300.0
    poll_interval: float = 0.5
    #: On SIGTERM: seconds to finish the calls under way before handing their rows back.
    drain_seconds: float = 30.0

    def __post_init__(self) -> None:
        for name in ("threads", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name}: must be a whole number >= 1, not {value!r}")
        for name in ("lease_seconds", "poll_interval", "drain_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise TypeError(f"{name}: must be a positive number of seconds, not {value!r}")


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True
    lease_seconds: float = 30.0
    housekeeping_hour: int = 3
    nonce_window_seconds: int = 600
    call_log_retention_days: int = 730
    #: Delivered outbox rows move to outbox_archive after this many days (store/retention.py).
    outbox_archive_days: int = 30
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("outbox_archive_days", "call_log_retention_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name}: must be a whole number of days >= 1, not {value!r}")


@dataclass(frozen=True)
class Config:
    path: Path
    city: str
    hub_app_id: str
    database_url: str
    secrets_file: Path
    routing_table: Path
    files_dir: Path
    host: str
    port: int
    limits: Limits
    delivery: DeliveryConfig
    scheduler: SchedulerConfig
    retry_policies: dict[str, RetryPolicy]
    partners: dict[str, dict[str, Any]]
    inbound: tuple[str, ...]
    raw: dict[str, Any]
    #: The hub's address as its partners reach it (``https://hub.example.gov.cn``): every
    #: URL the hub hands out (material urls, the WSDL's service address) is built on it,
    #: never on a request's Host header. Default: ``http://{listen.host}:{listen.port}``.
    public_url: str = ""
    #: SQLite's ``PRAGMA synchronous`` (FULL: an answered application survives a power
    #: failure; README "SQLite durability").
    sqlite_synchronous: str = "FULL"
    #: The zone of every time and day boundary operators see (stored times stay UTC).
    timezone: str = "Asia/Shanghai"

    def section(self, name: str) -> dict[str, Any]:
        """A free-form section for an adapter's own settings (e.g. ``bank``)."""
        value = self.raw.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self.path}: {name}: must be a mapping")
        return value


def _typed(cls, raw: Any, where: str):  # type: ignore[no-untyped-def]
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping")
    names = set(cls.__dataclass_fields__)
    unknown = set(raw) - names
    if unknown and "extra" not in names:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown setting")
    known = {k: v for k, v in raw.items() if k in names}
    if "extra" in names:
        known["extra"] = {k: v for k, v in raw.items() if k not in names}
    try:
        return cls(**known)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _timezone(value: Any, where: str) -> str:
    """An IANA zone name (``Asia/Shanghai``), checked against the zone database."""
    if value is None or value == "":
        return "Asia/Shanghai"
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: not a known time zone (e.g. Asia/Shanghai): "
                          f"{str(value)[:60]!r}") from None
    return str(value)


def load_config(path: str | Path | None = None) -> Config:
    """Read the config file (``--config``, else ``HUB_CONFIG``, else ./config.yaml)."""
    path = Path(path or os.environ.get("HUB_CONFIG") or DEFAULT_CONFIG).resolve()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    base = path.parent

    def rel(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else (base / p).resolve()

    for key in ("city", "routing_table"):
        if not raw.get(key):
            raise ConfigError(f"{path}: {key}: required")
    for key in ("routing_table", "database_url", "secrets_file", "files_dir", "public_url",
                "hub_app_id"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(f"{path}: {key}: must be text (got {raw[key]!r:.40})")
    policies = {"default": RetryPolicy()}
    retry_policies = raw.get("retry_policies") or {}
    if not isinstance(retry_policies, dict):
        raise ConfigError(f"{path}: retry_policies: must map policy names to settings")
    for name, fields in retry_policies.items():
        if fields is not None and not isinstance(fields, dict):
            raise ConfigError(f"{path}: retry_policies.{name}: must be a mapping of settings "
                              "(max_attempts, min_backoff, max_backoff, jitter)")
        try:
            policies[name] = RetryPolicy().merged(
                policy_fields(fields or {}, where=f"retry_policies.{name}")
            )
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    partners = raw.get("partners") or {}
    if not isinstance(partners, dict):
        raise ConfigError(f"{path}: partners: must map app ids to settings")
    for app_id, settings in partners.items():
        if settings is not None and not isinstance(settings, dict):
            raise ConfigError(f"{path}: partners.{app_id}: must be a mapping of settings "
                              "(base_url, timeout, ...)")
    inbound = raw.get("inbound") or DEFAULT_INBOUND
    if not isinstance(inbound, list | tuple) or not all(isinstance(i, str) for i in inbound):
        raise ConfigError(f"{path}: inbound: must be a list of inbound adapter names")
    routing_table = rel(str(raw["routing_table"]))
    if not routing_table.is_file():
        raise ConfigError(f"{path}: routing_table: no such file {routing_table}")
    listen = raw.get("listen") or {}
    db_url = os.environ.get("HUB_DATABASE_URL") or raw.get("database_url") or "sqlite:///var/cityhub.db"
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        db_url = "sqlite:///" + str(rel(db_url[len("sqlite:///"):]))
    city = str(raw["city"])
    if not isinstance(listen, dict):
        raise ConfigError(f"{path}: listen: must be a mapping with host and port")
    host, port = str(listen.get("host", "127.0.0.1")), listen.get("port", 8080)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{path}: listen.port: a port number from 1 to 65535 (got {port!r:.40})")
    public_url = _public_url(raw.get("public_url") or f"http://{host}:{port}",
                             f"{path}: public_url")
    synchronous = str(raw.get("sqlite_synchronous") or "FULL").upper()
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise ConfigError(f"{path}: sqlite_synchronous: one of {', '.join(SQLITE_SYNCHRONOUS)}"
                          f" (got {raw.get('sqlite_synchronous')!r})")
    timezone = _timezone(raw.get("timezone"), f"{path}: timezone")
    return Config(
        path=path,
        city=city,
        hub_app_id=str(raw.get("hub_app_id") or f"cityhub_{city}"),
        database_url=db_url,
        secrets_file=rel(raw.get("secrets_file") or "var/secrets.json"),
        routing_table=routing_table,
        files_dir=rel(raw.get("files_dir") or "var/files"),
        host=host,
        port=port,
        limits=_typed(Limits, raw.get("limits"), f"{path}: limits"),
        delivery=_typed(DeliveryConfig, raw.get("delivery"), f"{path}: delivery"),
        scheduler=_typed(SchedulerConfig, raw.get("scheduler"), f"{path}: scheduler"),
        retry_policies=policies,
        partners={str(k): dict(v or {}) for k, v in partners.items()},
        inbound=tuple(inbound),
        raw=raw,
        public_url=public_url,
        sqlite_synchronous=synchronous,
        timezone=timezone,
    )


def _public_url(value: Any, where: str) -> str:
    """An absolute http(s) URL with a host and no query or fragment, without a trailing /."""
    from urllib.parse import urlsplit

    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{where}: must be an http(s) URL with a host and no query, "
                          f"fragment or credentials (got {text!r})")
    return text.rstrip("/")


# --------------------------------------------------------------------------- secrets


def env_key(app_id: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in app_id).upper()


class Secrets:
    """Partner secrets and the data key: environment first, then the local secrets file."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._file: dict[str, Any] = read_secrets_file(config.secrets_file)

    def data_key(self) -> bytes:
        text = os.environ.get("HUB_DATA_KEY") or self._file.get("data_key")
        if not text:
            raise ConfigError(
                f"{self.config.secrets_file}: 没有数据密钥：请设置 HUB_DATA_KEY，"
                "或运行 .venv/bin/python hub.py init-secrets 生成密钥文件"
            )
        return decode_master_key(text)

    def partner_secret(self, app_id: str) -> bytes | None:
        text = os.environ.get(f"HUB_SECRET_{env_key(app_id)}") or (
            self._file.get("partners") or {}
        ).get(app_id)
        return text.encode() if text else None


def read_secrets_file(path: Path) -> dict[str, Any]:
    """The local secrets file's content ({} when there is none); a file that is not the
    JSON object ``init-secrets`` writes is a ``ConfigError`` (one line, no traceback)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: 密钥文件不可读或不是 JSON（{type(exc).__name__}）："
                          "请修复或移走该文件后运行 hub.py init-secrets") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 密钥文件应为 JSON 对象：请修复或移走该文件后运行 "
                          "hub.py init-secrets")
    return data


def data_cipher(config: Config, required: bool = True) -> DataCipher | None:
    """The data cipher of ``config``'s key; None when there is no key and not ``required``."""
    secrets = Secrets(config)
    if not required and not (os.environ.get("HUB_DATA_KEY") or secrets._file.get("data_key")):
        return None
    return DataCipher(secrets.data_key())


def init_secrets(config: Config, extra_app_ids: tuple[str, ...] = ()) -> Path:
    """Create (or complete) the local secrets file: a data key and a secret per partner."""
    import secrets as pysecrets

    path = config.secrets_file
    data = read_secrets_file(path)
    data.setdefault("data_key", new_master_key())
    partners = data.setdefault("partners", {})
    for app_id in [*config.partners, *extra_app_ids]:
        partners.setdefault(app_id, pysecrets.token_urlsafe(32))
    try:
        private_dir(path.parent)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    except OSError as exc:
        raise CliError(f"不能写入密钥文件 {path}：{exc.strerror}（请检查目录权限）") from None
    return path


# --------------------------------------------------------------------------- the hub


def load_partners(config: Config, city: City, secrets: Secrets) -> dict[str, Partner]:
    """The partners of the configuration (their secrets from the environment or the
    secrets file; no data key needed)."""
    partners: dict[str, Partner] = {}
    for app_id, raw in config.partners.items():
        where = f"{config.path}: partners.{app_id}"
        url = os.environ.get(f"HUB_PARTNER_{env_key(app_id)}_URL") or raw.get("base_url", "")
        items = raw.get("items")
        if items is not None and not isinstance(items, list):
            raise ConfigError(f"{where}.items: must be a list of item codes")
        division = raw.get("division")
        if division is not None and not city.is_county(str(division)):
            raise ConfigError(f"{where}.division: {division} is not a county of this city")
        timeout = raw.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                or not 0 < timeout <= MAX_CALL_TIMEOUT:
            raise ConfigError(f"{where}.timeout: seconds, a number above 0 and at most "
                              f"{MAX_CALL_TIMEOUT}")
        known = {"base_url", "timeout", "sign_method", "items", "division"}
        partners[app_id] = Partner(
            app_id=app_id,
            base_url=str(url),
            timeout=float(timeout),
            sign_method=str(raw.get("sign_method", "HMAC-SHA256")),
            items=tuple(items) if items is not None else None,
            division=str(division) if division is not None else None,
            options={k: v for k, v in raw.items() if k not in known},
            secret=secrets.partner_secret(app_id),
        )
    return partners


@dataclass(frozen=True)
class Topology:
    """What the configuration alone decides — the city, its partners, the routing table —
    built without the store or the data key (``hub.py check`` and ``route`` use only this;
    the operators' division settings apply on top of it in a running hub)."""

    divisions: Divisions
    city: City
    partners: dict[str, Partner]
    routes: RoutingTable


def load_topology(config: Config, secrets: Secrets | None = None) -> Topology:
    divisions = Divisions.load()
    if config.city not in divisions.cities:
        raise ConfigError(f"{config.path}: city: {config.city} is not in the division table")
    city = divisions.city(config.city)
    partners = load_partners(config, city, secrets or Secrets(config))
    numbering_settings(config, partners)  # checked here too, so `hub.py check` reports it
    from adapters.departments import load_departments  # and the departments (Sharing)
    from mapping.departments import DepartmentConfigError

    try:
        load_departments(config, partners)
    except DepartmentConfigError as exc:
        raise ConfigError(str(exc)) from None
    routes = load_table(config.routing_table, divisions, items=ITEMS,
                        adapter_problem=adapter_problem, partners=partners,
                        policies=config.retry_policies, city_code=config.city)
    return Topology(divisions, city, partners, routes)


def numbering_settings(config: Config, partners: dict[str, Partner]) -> NumberingSettings:
    """The ``numbering:`` section (contracts/numbering.md): the profile, the QR caption font."""
    where = f"{config.path}: numbering"
    try:
        settings = NumberingSettings.parse(config.raw.get("numbering"), where)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.enabled and "province" not in partners:
        raise ConfigError(f"{where}.profile: the province issues the numbers: "
                          "partners.province is required")
    return settings


def check_delivery_lease(config: Config, topology: Topology) -> None:
    """Refuse a lease a batch of the slowest calls could outlive (adapters/lease.py)."""
    from adapters.lease import lease_problem

    timeouts = [(f"route {r.county}/{r.item}", r.timeout)
                for r in topology.routes.routes.values() if r.partner]
    timeouts += [(f"partner {p.app_id}", p.timeout) for p in topology.partners.values()]
    why = lease_problem(config.delivery.lease_seconds, config.delivery.batch, timeouts)
    if why:
        raise ConfigError(f"{config.path}: delivery.lease_seconds: {why}")




class Hub:
    """Everything a request, a worker or a job needs, built once from the config."""

    def __init__(self, config: Config, db: Database | None = None) -> None:
        self.config = config
        logsafe.use_zone(config.timezone)  # this process's log lines in the operators' zone
        self.secrets = Secrets(config)
        self.cipher = DataCipher(self.secrets.data_key())
        topology = load_topology(config, self.secrets)
        check_delivery_lease(config, topology)
        self.divisions, self.city = topology.divisions, topology.city
        self.partners = topology.partners
        self.numbering = numbering_settings(config, self.partners)  # adapters/numbering.py
        self.routes: RoutingTable = topology.routes
        self.db = db or Database(config.database_url, pool_size=config.delivery.threads + 8,
                                 sqlite_synchronous=config.sqlite_synchronous)
        bind_cipher(self.db.engine, self.cipher)  # sealed columns (store/sealed.py)
        # a commit that queued messages wakes this process's delivery workers
        on_new_rows(self.db.engine, self._new_rows)
        private_dir(config.files_dir)
        # Call-log rows the store could not take when their call ended (store.calllog_buffer)
        self.call_log_buffer = CallLogBuffer(self.db, self.cipher)
        #: Set on SIGTERM: /healthz answers 503 so a load balancer stops sending requests.
        self.draining = False
        # Concurrent intake transactions of this process share commits (store/group_commit.py)
        self.group_commit = GroupCommit(self.db.engine)
        # Operators' division settings (mode overrides, retired counties): routes/overrides.py
        deadlines = config.section("deadlines")
        self.overrides = Overrides(self.db, config.raw.get("settings_refresh_seconds", 5),
                                   where=f"{config.path}: settings_refresh_seconds",
                                   default_promised_days=deadlines.get("default_promised_days"),
                                   tz=config.timezone)
        self.routes = self.overrides.bind(self.routes)
        self.city = self.overrides.city(self.city)
        from adapters.departments import Sharing  # the data-sharing gateway's departments

        self.sharing = Sharing(self)
        from adapters.calls import Calls  # one JSON client per partner, the logged sync calls

        self.calls = Calls(self)
        self._adapters: dict[str, Adapter] = {}
        self._adapters_lock = threading.Lock()
        self.workers = None  # DeliveryWorkers, when this process delivers
        self.scheduler = None  # HubScheduler, when this process schedules
        self.jobs = None  # admin.jobs.JobRunner, when this process serves the admin page

    # -- lookups

    def partner(self, app_id: str) -> Partner:
        try:
            return self.partners[app_id]
        except KeyError:
            raise LookupError(f"unknown partner {app_id!r}") from None

    def adapter(self, name: str) -> Adapter:
        adapter = self._adapters.get(name)
        if adapter is None:
            with self._adapters_lock:
                adapter = self._adapters.get(name)
                if adapter is None:
                    adapter = resolve_adapter(name)(self)
                    self._adapters[name] = adapter
        return adapter

    # -- transactions and the outbox

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work; delivery workers in this process are woken after it commits if
        it queued messages (store.outbox's after-commit signal)."""
        with self.db.session() as session:
            yield session

    def _new_rows(self) -> None:
        if self.workers is not None:
            self.workers.wake()

    def enqueue(self, session: Session, message: NewMessage, want_id: bool = True) -> int | None:
        """Queue ``message`` in the caller's transaction; its id when ``want_id`` (asking
        for none saves a RETURNING when the caller does not need it)."""
        return enqueue(session, self.cipher, message, want_id=want_id)

    def enqueue_many(self, session: Session, messages: list[NewMessage]) -> None:
        """Queue many messages in the caller's transaction (bulk paths, e.g. Excel import)."""
        enqueue_many(session, self.cipher, messages)

    def audit(self, session: Session, actor: str, action: str, target: str = "",
              detail: Any = None) -> None:
        session.add(AuditEntry(
            actor=actor, action=action, target=target,
            detail=None if detail is None else json.dumps(detail, ensure_ascii=False, default=str),
        ))

    # -- processes

    def start_workers(self, threads: int | None = None) -> None:
        from adapters.dispatch import DeliveryWorkers

        self.workers = DeliveryWorkers(self, threads)
        self.workers.start()

    def start_scheduler(self) -> None:
        from scheduler import HubScheduler

        self.scheduler = HubScheduler(self)
        self.scheduler.start()

    def close(self) -> None:
        jobs, self.jobs = self.jobs, None
        if jobs is not None:  # its unfinished jobs marked failed, not left running
            jobs.close()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.workers is not None:
            self.workers.stop()
        for adapter in self._adapters.values():
            with suppress(Exception):
                adapter.close()
        self.calls.close()
        self.call_log_buffer.close()
        self.db.dispose()


def adapter_problem(name: str) -> str | None:
    """Why an adapter name cannot be used (unknown, or its module fails to load), or None."""
    try:
        resolve_adapter(name)
    except AdapterNotFound as exc:
        return str(exc)
    return None


def build_hub(config_path: str | Path | None = None) -> Hub:
    return Hub(load_config(config_path))


def create_app(hub: Hub | None = None):  # type: ignore[no-untyped-def]
    """The WSGI app factory (``gunicorn 'hub:create_app()'``)."""
    from adapters.web import make_app

    if hub is None and not logging.getLogger().handlers:
        # under a WSGI server: the hub's records get the hub's formatter
        logsafe.install(os.environ.get("HUB_LOG_LEVEL", "INFO").upper(), LOG_FORMAT)
    return make_app(hub or build_hub())


# --------------------------------------------------------------------------- CLI


class CliError(Exception):
    """Bad command-line input: ``main`` prints it as one line and exits 2 (no traceback,
    nothing done, nothing audited)."""


def print_error(message: str) -> None:
    """An operator's mistake as one Chinese line on stderr (``错误：…``, as routes/explain.py)."""
    print(f"错误：{message}", file=sys.stderr)


def parse_when(text: str) -> datetime:
    """A ``--since``/``--until`` value: an ISO date or date-time (naive = UTC, as stored);
    anything else (``2026-13-45``, ``yesterday``) is refused with one line."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"不是有效的日期或时间（应为 YYYY-MM-DD 或 YYYY-MM-DDTHH:MM:SS）: {text[:40]!r}"
        ) from None
    if value.tzinfo is not None:
        from datetime import UTC

        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _parse_time(text: str | datetime | None) -> datetime | None:
    if not text:
        return None
    return text if isinstance(text, datetime) else parse_when(text)


def check_county(hub_or_city: Any, county: str | None) -> None:
    """``county`` (if given) is a county of the configured city, else ``CliError``."""
    city = getattr(hub_or_city, "city", hub_or_city)
    if county is not None and county not in city.counties:
        raise CliError(f"未知区县 {county[:16]!r}：不是{city.name}（{city.code}）的区县，"
                       "请填写区划表中的区县代码")


def check_item(item: str | None) -> None:
    from routes.table import EXTRA_ITEMS

    if item is not None and item not in ITEMS and item not in EXTRA_ITEMS:
        raise CliError(f"未知事项 {item[:40]!r}，请填写事项目录中的事项代码"
                       f"（可用: {', '.join(sorted(ITEMS))}）")


def cmd_init_secrets(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    # the client secret toward the province's identity provider (config identity.oidc)
    sso = (config.raw.get("identity") or {}).get("protocol") == "oidc"
    path = init_secrets(config, extra_app_ids=("idp",) if sso else ())
    print(f"密钥文件已就绪：{path}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    db = Database(config.database_url)
    db.migrate(cipher=data_cipher(config, required=False))
    from store.calendar import seed_from_package

    added = seed_from_package(db)
    db.dispose()
    if added:
        print(f"工作日历：已从 chinese_calendar 录入 {'、'.join(map(str, added))} 年")
    print(f"数据库已是最新结构：{db.engine.url.render_as_string(hide_password=True)}")
    return 0


def _with_division_settings(config: Config,
                            table: RoutingTable) -> tuple[RoutingTable, str]:
    """``table`` with the operators' division settings (routes/overrides.py) applied when
    the store can be read, and where the settings came from; those tables hold nothing
    sealed, so no data key is needed. A store that is not there (not migrated, not
    reachable) leaves the table's decision, and says so."""
    from sqlalchemy import select
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from routes.overrides import Overrides
    from store.admin_models import AdminDivisionRoute

    url = make_url(config.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        return table, "未应用（还没有数据库）：按路由表决定"
    db = Database(config.database_url, pool_size=1)
    try:
        with db.session() as s:
            s.execute(select(AdminDivisionRoute.county_code).limit(1)).all()
        return Overrides(db).bind(table), "已读取数据库中的区划设置"
    except SQLAlchemyError as exc:
        return table, (f"未应用（数据库不可读：{type(exc).__name__}）：按路由表决定")
    finally:
        db.dispose()


def cmd_route(args: argparse.Namespace) -> int:
    """The routing table's decision with the operators' division settings when the store
    can be read (no data key needed: ``hub.py route`` runs before init-secrets too)."""
    config = load_config(args.config)
    topology = load_topology(config)
    table, settings = _with_division_settings(config, topology.routes)
    try:
        route = table.resolve(args.county, args.item)
    except LookupError:
        print(f"错误：{why_unrouted(table, args.county, args.item)}", file=sys.stderr)
        return 2
    print(route_report(route, settings, str(topology.routes.source)))
    return 0


#: ``hub.py route``'s handling modes in the operators' words (as the settings page).
ROUTE_MODES = {"auto": "自动推送", "manual": "人工办理"}


def route_report(route: Any, settings: str, source: str) -> str:
    """``hub.py route``'s answer: Chinese labels, every code beside its Chinese name."""
    from mapping.names import name

    r = route.retry
    partner = f"{name('partners', route.partner)}（{route.partner}）" if route.partner else "无"
    return "\n".join([
        f"{route.county} {route.county_name} / {name('items', route.item)}（{route.item}）",
        f"  适配器：  {name('adapters', route.adapter)}（{route.adapter}）",
        f"  对接方：  {partner}",
        f"  方式：    {ROUTE_MODES.get(route.mode, route.mode)}（{route.mode}）",
        f"  超时：    {route.timeout:g} 秒",
        f"  重试：    最多 {r.max_attempts} 次，间隔 {r.min_backoff:g}–{r.max_backoff:g} 秒",
        "  依据：    " + "；".join(route.why) + f"（路由表 {source}）",
        f"  区划设置：{settings}",
    ])


#: ``hub.py resubmit --dry-run``'s columns (each code shown beside its Chinese name).
DRY_RUN_COLUMNS = ("编号", "状态", "接口", "对接方", "区县", "已尝试次数", "最后错误")


def cmd_resubmit(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from mapping.names import name
    from store.models import OutboxMessage
    from store.outbox import MessageFilter, find, resubmit

    if not (args.id or args.filter):
        print_error("请用 --id N（可重复）指定消息，或用 --filter 加筛选条件选出消息")
        return 2
    hub = build_hub(args.config)
    try:
        check_county(hub, args.county)
        check_item(args.item)
        if args.partner is not None and args.partner not in hub.partners:
            raise CliError(f"未知对接方 {args.partner[:40]!r}，请填写配置中的对接方代码"
                               f"（可用: {', '.join(sorted(hub.partners))}）")
        statuses = tuple(args.status or ["dead"])
        flt = MessageFilter(
            ids=tuple(args.id or ()), item=args.item, division=args.county,
            interface=args.interface, partner=args.partner, statuses=statuses,
            since=_parse_time(args.since), until=_parse_time(args.until),
        )
        with hub.transaction() as s:
            if args.id:
                found = set(s.scalars(select(OutboxMessage.id).where(
                    OutboxMessage.id.in_(args.id))))
                missing = [str(i) for i in args.id if i not in found]
                if missing:
                    raise CliError(f"消息不存在: {', '.join(missing[:5])}"
                                   "（请在管理页的消息页核对消息编号）")
            if args.dry_run:
                rows = find(s, flt)
                print("\t".join(DRY_RUN_COLUMNS))
                for m in rows:
                    county = hub.city.counties.get(m.division or "", "")
                    print(f"{m.id}\t{name('message_statuses', m.status)}（{m.status}）"
                          f"\t{name('interfaces', m.interface)}（{m.interface}）"
                          f"\t{name('partners', m.partner)}（{m.partner}）"
                          f"\t{f'{county}（{m.division}）' if m.division else '-'}"
                          f"\t{m.attempts}\t{(m.last_error or '')[:80]}")
                print(f"试运行：将重新提交 {len(rows)} 条消息（未发送任何消息）")
                return 0
            ids = resubmit(s, flt, actor=args.actor)
            if ids:  # nothing resubmitted: nothing happened, nothing to audit
                hub.audit(s, args.actor, "resubmit", target=",".join(map(str, ids)),
                          detail={k: (v.isoformat() if isinstance(v, datetime) else v)
                                  for k, v in vars(args).items() if k != "func"})
        print(f"已重新提交 {len(ids)} 条消息：{'、'.join(map(str, ids)) or '无'}")
        return 0
    finally:
        hub.close()


def _serve_until_signal(stop: threading.Event) -> None:
    def handler(signum, _frame):  # type: ignore[no-untyped-def]
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def make_http_server(hub: Hub, app: Any, host: str, port: int, threads: int = 16) -> Any:
    """The production HTTP server (waitress) for ``app``: the one ``hub.py serve`` runs and
    the one the tests serve the hub with, so no test passes only on a development server.
    ``port`` 0 picks a free port (``server.effective_port``)."""
    from waitress.server import create_server

    # The app answers an oversized body with the contract's 2001; waitress's own bound (a
    # plain 413 before the app runs) only stops bodies far beyond any limit of the app's.
    ceiling = 2 * hub.config.limits.max_material_bytes + 1024 * 1024
    # waitress drops X-Forwarded-* unless told otherwise; the admin sign-in believes the
    # header only from a peer listed in ``admin.trusted_proxies`` (admin.auth.source_address).
    forwarded = bool(hub.config.section("admin").get("trusted_proxies"))
    return create_server(app, host=host, port=port, threads=threads,
                         max_request_body_size=ceiling,
                         clear_untrusted_proxy_headers=not forwarded)


#: Why the server could not listen, as an operator reads it.
_LISTEN_ERRORS = {errno.EADDRINUSE: "端口已被占用", errno.EACCES: "没有使用该端口的权限",
                  errno.EADDRNOTAVAIL: "本机没有这个地址"}


def run_server(hub: Hub, host: str, port: int, *, workers: bool = True, scheduler: bool = True,
               delivery_threads: int | None = None, http_threads: int = 16,
               on_ready: Any = None) -> int:
    """Serve the web app (waitress) with delivery workers and the scheduler until SIGTERM
    or SIGINT; ``on_ready(stop_event)`` runs once the server listens."""
    app = create_app(hub)
    try:  # listening first: a port that cannot be had starts nothing
        server = make_http_server(hub, app, host, port, threads=http_threads)
    except OSError as exc:
        hub.close()
        why = _LISTEN_ERRORS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        raise CliError(f"无法监听 http://{host}:{port}：{why}；请在配置的 listen（或 --host/"
                       "--port）换一个地址或端口，或先停止占用它的程序") from None
    if workers:
        hub.start_workers(delivery_threads)
    if scheduler and hub.config.scheduler.enabled:
        hub.start_scheduler()
    stop = threading.Event()
    _serve_until_signal(stop)
    gc.freeze()  # the start-up's objects (modules, WSDL, tables) stay out of every GC pass
    thread = threading.Thread(target=server.run, daemon=True, name="http")
    thread.start()
    log.info("cityhub %s serving on http://%s:%s", hub.city.name, host, port)
    print(f"cityhub 已启动：{hub.city.name}（{hub.city.code}），监听 http://{host}:{port}"
          "（Ctrl+C 或 SIGTERM 停止）", flush=True)
    if on_ready is not None:
        on_ready(stop)
    stop.wait()
    drain_http_server(hub, server)
    hub.close()  # the scheduler lease released, deliveries finished, claimed rows handed back
    return 0


def drain_http_server(hub: Hub, server: Any) -> None:
    """SIGTERM: /healthz answers 503 "draining", the listening socket is closed (new
    connections are refused: a load balancer sends them to another hub), and requests
    under way are answered, within ``delivery.drain_seconds``."""
    import time

    from waitress import wasyncore

    hub.draining = True
    log.info("draining: no new connections; finishing the requests under way")
    closed = threading.Event()

    def close_listener() -> None:  # in the server's own loop thread (not mid-select)
        wasyncore.dispatcher.close(server)
        closed.set()

    server.trigger.pull_trigger(close_listener)
    closed.wait(5)
    timeout = hub.config.delivery.drain_seconds
    server.task_dispatcher.shutdown(cancel_pending=False, timeout=timeout)
    deadline = time.monotonic() + 2  # answers still in their channels' buffers
    while time.monotonic() < deadline and any(
            getattr(ch, "total_outbufs_len", 0) for ch in list(server._map.values())):
        time.sleep(0.05)


def cmd_serve(args: argparse.Namespace) -> int:
    hub = build_hub(args.config)
    return run_server(hub, args.host or hub.config.host, args.port or hub.config.port,
                      workers=not args.no_workers, scheduler=not args.no_scheduler,
                      delivery_threads=args.threads, http_threads=args.http_threads)


def cmd_worker(args: argparse.Namespace) -> int:
    hub = build_hub(args.config)
    hub.start_workers(args.threads)
    if args.scheduler and hub.config.scheduler.enabled:
        hub.start_scheduler()
    stop = threading.Event()
    _serve_until_signal(stop)
    gc.freeze()
    print(f"cityhub 投递进程已启动：{hub.workers.threads} 个投递线程", flush=True)
    stop.wait()
    log.info("draining: finishing the deliveries under way")
    hub.draining = True
    hub.close()  # the scheduler lease released, deliveries finished, claimed rows handed back
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Check the configuration and the routing table (no store, no data key needed)."""
    config = load_config(args.config)
    topology = load_topology(config)
    check_delivery_lease(config, topology)  # as a starting hub does
    print(f"配置无误：{topology.city.name}（{topology.city.code}），"
          f"{len(topology.routes.counties())} 个区县已配置路由（路由表 {topology.routes.source}）")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="hub.py", description="cityhub 城市住房交易业务对接平台：命令行")
    p.add_argument("--config", help="配置文件（默认：$HUB_CONFIG 或 ./config.yaml）")
    p.add_argument("--log-level", default=os.environ.get("HUB_LOG_LEVEL", "INFO"),
                   help="日志级别（DEBUG、INFO、WARNING、ERROR；默认 INFO）")
    sub = p.add_subparsers(dest="command", required=True, metavar="命令",
                           title="命令", description="hub.py 命令 -h 查看各命令的用法")

    sub.add_parser("init-secrets", help="生成本地密钥文件（数据密钥和对接方密钥，首次运行）",
                   description="生成本地密钥文件（已有的密钥保留）").set_defaults(
        func=cmd_init_secrets)
    for command in ("migrate", "init-db"):
        sub.add_parser(command, help="创建或升级数据库结构",
                       description="创建或升级数据库结构（并录入工作日历）").set_defaults(
            func=cmd_migrate)
    sub.add_parser("check", help="检查配置和路由表（不需数据库和密钥）",
                   description="检查配置和路由表").set_defaults(func=cmd_check)

    s = sub.add_parser("serve", help="运行平台：网页、投递和定时任务",
                       description="运行平台：网页、投递进程和定时任务，直到 SIGTERM")
    s.add_argument("--host", help="监听地址（默认：配置 listen.host）")
    s.add_argument("--port", type=whole_number, help="监听端口（默认：配置 listen.port）")
    s.add_argument("--threads", type=whole_number, help="投递线程数（默认：配置 delivery.threads）")
    s.add_argument("--http-threads", type=whole_number, default=16, help="网页线程数（默认 16）")
    s.add_argument("--no-workers", action="store_true", help="不投递消息")
    s.add_argument("--no-scheduler", action="store_true", help="不运行定时任务")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="只投递消息（不提供网页）",
                       description="只投递发件箱中的消息（不提供网页）")
    w.add_argument("--threads", type=whole_number, help="投递线程数（默认：配置 delivery.threads）")
    w.add_argument("--scheduler", action="store_true", help="同时运行定时任务")
    w.set_defaults(func=cmd_worker)

    r = sub.add_parser("route", help="试算：某区县某事项的消息发往何处、为什么",
                       description="试算路由：某区县某事项的消息发往何处、为什么")
    r.add_argument("--county", required=True, help="区县代码（如 511702）")
    r.add_argument("--item", required=True, help="事项代码（如 rental_filing）")
    r.set_defaults(func=cmd_route)

    rs = sub.add_parser("resubmit", help="把已停止的消息重新放回发送队列",
                        description="把已停止（或已送达，需 --status done）的消息重新放回发送队列；"
                                    "用 --id 指定，或用 --filter 加条件筛选")
    rs.add_argument("--id", type=whole_number, action="append", help="消息编号（可重复）")
    rs.add_argument("--filter", action="store_true", help="按下列条件筛选消息")
    rs.add_argument("--item", help="事项代码")
    rs.add_argument("--county", help="区县代码")
    rs.add_argument("--interface", help="接口代码")
    rs.add_argument("--partner", help="对接方代码")
    rs.add_argument("--status", action="append", choices=["dead", "done"],
                    help="消息状态：dead 已停止（默认）、done 已送达（重发已送达的消息）")
    rs.add_argument("--since", type=parse_when, help="创建时间不早于（YYYY-MM-DD 或 ISO 8601）")
    rs.add_argument("--until", type=parse_when, help="创建时间早于（YYYY-MM-DD 或 ISO 8601）")
    rs.add_argument("--dry-run", action="store_true", help="试运行：只列出，不发送")
    rs.add_argument("--actor", default=os.environ.get("HUB_ACTOR") or getpass.getuser(),
                    help="记入审计的操作人（默认：$HUB_ACTOR 或当前系统用户）")
    rs.set_defaults(func=cmd_resubmit)

    for extra in _extra_commands():
        extra(sub)
    return p


def _extra_commands():  # type: ignore[no-untyped-def]
    """Commands contributed by adapters and admin (``add_commands(subparsers)``)."""
    import importlib

    for module_name in ("adapters.sim.demo", "adapters.manual_cli", "adapters.fund.cli",
                        "admin.cli", "store.calendar_cli"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (exc.name and module_name.startswith(exc.name)):
                raise
            continue
        yield module.add_commands


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # whatever the hub creates (store, var/, exports) is its user's only
    args = build_parser().parse_args(argv)
    logsafe.install(args.log_level.upper(), LOG_FORMAT)
    # zeep's and spyne's DEBUG write whole envelopes (payers' names and accounts)
    for chatty in ("apscheduler", "alembic", "werkzeug", "spyne", "zeep"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return args.func(args)
    except (ConfigError, RouteTableError) as exc:
        print_error(f"配置有误，请改正后重试（hub.py check 可检查配置）：{exc}")
        return 2
    except CliError as exc:
        print_error(str(exc))
        return 2
    except (OperationalError, ProgrammingError) as exc:  # store missing, not migrated
        print_error("无法读写数据库：请检查配置的 database_url，并先运行 hub.py migrate"
                    f"（{type(exc).__name__}）")
        return 2


if __name__ == "__main__":
    sys.exit(main())
