"""Instructions to a bank's front-end with zeep (contract 3.2).

The WSDL is the partner's ``wsdl`` option, else ``{base_url}?wsdl`` (so
``HUB_PARTNER_<APP_ID>_URL`` can point the hub at another bank). When the partner's
``wsse`` option is set, each call carries a WS-Security UsernameToken whose password
is the partner's secret (``HUB_SECRET_<APP_ID>`` or the secrets file), never config.
"""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal
from typing import Any

import requests
import zeep
from zeep.helpers import serialize_object
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from adapters.base import DeliveryResult, Partner
from mapping.fund import amount_out, to_fen


def wsdl_of(partner: Partner) -> str:
    return str(partner.options.get("wsdl") or f"{partner.base_url.rstrip('?')}?wsdl")


def zeep_settings() -> zeep.Settings:
    return zeep.Settings(strict=True, xml_huge_tree=False, forbid_dtd=True,
                         forbid_entities=True, forbid_external=True)


def wsse_of(partner: Partner, default_user: str) -> UsernameToken | None:
    opt = partner.options.get("wsse")
    if not opt:
        return None
    if partner.secret is None:
        raise LookupError(f"partner {partner.app_id} asks for WS-Security but has no secret "
                          f"(HUB_SECRET_{partner.app_id.upper()})")
    user = opt.get("username", default_user) if isinstance(opt, dict) else default_user
    return UsernameToken(str(user), password=partner.secret.decode())


class BankClients:
    """One zeep client per bank partner, built on first use (the WSDL is fetched then)."""

    def __init__(self, hub_app_id: str) -> None:
        self.hub_app_id = hub_app_id
        self._clients: dict[str, zeep.Client] = {}
        self._lock = threading.Lock()

    def client(self, partner: Partner) -> zeep.Client:
        with self._lock:
            client = self._clients.get(partner.app_id)
            if client is None:
                session = requests.Session()
                transport = Transport(session=session, timeout=partner.timeout,
                                      operation_timeout=partner.timeout)
                client = zeep.Client(wsdl_of(partner), transport=transport,
                                     settings=zeep_settings(),
                                     wsse=wsse_of(partner, self.hub_app_id))
                self._clients[partner.app_id] = client
            return client

    def send(self, partner: Partner, operation: str, payload: dict[str, Any]) -> DeliveryResult:
        args = to_bank(payload, bool(partner.options.get("amounts_in_fen")))
        try:
            client = self.client(partner)
            answer = getattr(client.service, operation)(**args)
        except zeep.exceptions.Fault as exc:
            permanent = str(exc.code or "").lower().endswith("client")
            return DeliveryResult(ok=False, permanent=permanent, code=str(exc.code),
                                  error=f"SOAP fault {exc.code}: {exc.message}", request=payload)
        except (requests.RequestException, zeep.exceptions.TransportError, OSError) as exc:
            with self._lock:  # the WSDL may have moved: fetch it again next time
                self._clients.pop(partner.app_id, None)
            return DeliveryResult(ok=False, error=f"{type(exc).__name__}: {exc}", request=payload)
        except (zeep.exceptions.Error, AttributeError, TypeError) as exc:
            return DeliveryResult(ok=False, permanent=True, error=f"{type(exc).__name__}: {exc}",
                                  request=payload)
        body = serialize_object(answer, dict) if answer is not None else None
        code = str(body.get("result_code")) if isinstance(body, dict) and body.get(
            "result_code") else None
        if code in (None, "0000"):
            return DeliveryResult(ok=True, code=code, request=payload, response=_jsonable(body))
        return DeliveryResult(ok=False, permanent=code[0] in "234", code=code,
                              error=f"bank answered {code}: {body.get('result_msg')}",
                              request=payload, response=_jsonable(body))

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.transport.session.close()
            self._clients.clear()


def to_bank(payload: dict[str, Any], in_fen: bool) -> dict[str, Any]:
    """The outbox payload (yuan strings, ISO dates) as the bank's typed arguments."""
    args: dict[str, Any] = {}
    for key, value in payload.items():
        if key == "amount" and value is not None:
            value = amount_out(to_fen(Decimal(str(value))), in_fen)
        elif key == "date" and isinstance(value, str):
            value = date.fromisoformat(value)
        args[key] = value
    return args


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)
