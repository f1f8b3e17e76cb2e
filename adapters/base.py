"""The adapter interface and the registry of adapters (after kombu's transport aliases).

An adapter owns one party's protocol both ways: the inbound endpoints it registers on
the web app, and ``deliver`` for outgoing messages the outbox hands it. Adapters never
write the call log or retry themselves: the dispatcher and the inbound hook do that
for all of them (see ``adapters.hooks``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

    from hub import Hub

#: Short names used in config and routing tables, and the classes they stand for.
ADAPTER_ALIASES: dict[str, str] = {
    "province": "adapters.province:ProvinceAdapter",
    "county_smart": "adapters.county_smart:CountySmartAdapter",
    "manual_excel": "adapters.manual_excel:ManualExcelAdapter",
    "bank_soap": "adapters.bank_soap:BankSoapAdapter",
    "pos": "adapters.pos:PosAdapter",
    "entry": "adapters.entry:EntryAdapter",
    "http": "adapters.http:HttpJsonAdapter",
    "departments": "adapters.departments:DepartmentsAdapter",
}


class AdapterNotFound(LookupError):
    pass


def resolve_adapter(name: str) -> type[Adapter]:
    """An alias from ADAPTER_ALIASES, or a dotted path ``package.module:Class`` / ``.Class``."""
    target = ADAPTER_ALIASES.get(name, name)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    elif "." in target:
        module_name, _, attr = target.rpartition(".")
    else:
        raise AdapterNotFound(f"unknown adapter {name!r} (known: {', '.join(ADAPTER_ALIASES)})")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise AdapterNotFound(f"adapter {name!r} cannot be loaded from {target!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterNotFound(f"adapter {name!r} ({target}) is not an Adapter subclass")
    return cls


@dataclass(frozen=True)
class Partner:
    """A party the hub talks to: its app id, where it lives, and how to sign for it."""

    app_id: str
    base_url: str = ""
    timeout: float = 10.0
    sign_method: str = "HMAC-SHA256"
    #: Items (or operations) this partner may call inbound; None means all its kind allows.
    items: tuple[str, ...] | None = None
    #: A county's own division code, for county partners (they may speak only for it).
    division: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    secret: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class OutgoingMessage:
    """An outbox row as the adapter sees it: payload opened, partner resolved."""

    id: int
    interface: str
    operation: str
    partner: Partner
    payload: dict[str, Any]
    attempts: int
    timeout: float
    division: str | None = None
    item: str | None = None
    case_id: int | None = None


@dataclass
class DeliveryResult:
    """What one delivery attempt came to.

    ``permanent`` failures (the peer said the message itself is wrong) are parked at
    once instead of retried. ``request``/``response`` are what went over the wire, for
    the call log.
    """

    ok: bool
    permanent: bool = False
    code: str | None = None
    error: str | None = None
    request: Any = None
    response: Any = None


class Adapter:
    """Base class for adapters. Subclasses set ``alias`` and override what they support."""

    alias: ClassVar[str] = ""
    #: True when deliver() makes a network call (False for the manual queue).
    delivers: ClassVar[bool] = True
    #: True when after_delivery raises its own, more specific alert for a parked
    #: message; otherwise the dispatcher raises a generic ``dead_message`` alert.
    alerts_when_dead: ClassVar[bool] = False

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def register_inbound(self, app: Flask) -> None:
        """Add this adapter's inbound endpoints to the web app (default: none)."""

    def deliver(self, message: OutgoingMessage) -> DeliveryResult:
        raise NotImplementedError(f"{type(self).__name__} does not deliver messages")

    def after_delivery(
        self, session: Session, message: OutgoingMessage, result: DeliveryResult, status: str
    ) -> None:
        """Called inside the transaction that records an attempt, e.g. to act on an answer.

        ``status`` is the message's new outbox status (done, pending, dead).
        """

    def close(self) -> None:
        """Release connections and threads."""
