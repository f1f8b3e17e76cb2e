"""A simulated province numbering service (contracts/numbering.md "Hub → province"): a
real HTTP server that issues unified numbers in the real format and refuses incomplete
requests, for the tests and the demo.

- ``POST {base}/numbers/presale-permit`` → ``<first permit>-Y<nn>`` (``Z`` when
  ``backfill``): one serial per batch (first permit) and letter;
- ``POST {base}/numbers/contract-filing`` → ``<presale permit>-B<nnnn>``: one serial per
  presale permit, which must have been issued here and not cancelled;
- ``POST {base}/numbers/{number}/cancel``: cancelled; serials only go up, so a cancelled
  number is never issued again.

Each call must be signed by the hub (``cityhub_<city>``) with the province's secret.
Modes: ``ok``, ``slow`` (wait ``delay`` s), ``fail`` (HTTP 503), ``repeat`` (answer the
last number issued again: a misbehaving province, for the hub's uniqueness check).

    python -m adapters.sim.numbering --port 8094 --hub-app-id cityhub_430200
    (the secret comes from HUB_SECRET_PROVINCE or --secret)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from adapters.signing import SignatureError, check_signature
from adapters.sim.loopback import send_json

PERMIT = re.compile(r"\d{18}")
PRESALE = re.compile(r"\d{18}-[YZ]\d{2}")
CONTRACT = re.compile(r"\d{18}-[YZ]\d{2}-B\d{4}")
PRESALE_FIELDS = ("project_code", "construction_permits", "building_nos", "developer_name",
                  "developer_uscc", "project_name", "presale_area", "county_code")
CONTRACT_FIELDS = ("presale_permit_no", "building_no", "room_nos", "address", "buyers",
                   "price", "payment", "file_id", "county_code")


@dataclass
class NumberingState:
    mode: str = "ok"
    delay: float = 0.0
    batches: Counter[tuple[str, str]] = field(default_factory=Counter)
    contracts: Counter[str] = field(default_factory=Counter)
    issued: dict[str, str] = field(default_factory=dict)  # number -> county
    cancelled: set[str] = field(default_factory=set)
    received: list[tuple[str, Any]] = field(default_factory=list)
    nonces: set[tuple[str, str]] = field(default_factory=set)
    last: dict[str, Any] | None = None
    #: The chain string it answers (None: ``HNJSBC1.{number}.{hmac}``), to test answers
    #: the hub cannot take.
    chain: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _missing(body: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"field": n, "reason": "required"} for n in names
            if body.get(n) in (None, "", [], {})]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: NumberingSim

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        sim, state = self.server, self.server.state
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        rest = path[len(sim.prefix):] if path.startswith(sim.prefix + "/") else ""
        try:
            app_id, nonce = check_signature(
                self.headers, "POST", path, raw,
                lambda a: sim.secret if a == sim.hub_app_id else None, now=time.time())
        except SignatureError as exc:
            send_json(self, 401, {"code": exc.code, "message": exc.message})
            return
        with state.lock:
            replay = (app_id, nonce) in state.nonces
            state.nonces.add((app_id, nonce))
        if replay:
            send_json(self, 401, {"code": "1003", "message": "nonce replayed"})
            return
        if state.mode == "slow":
            time.sleep(state.delay)
        if state.mode == "fail":
            send_json(self, 503, {"code": "5000", "message": "province unavailable"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            send_json(self, 400, {"code": "2001", "message": "not JSON"})
            return
        if not isinstance(body, dict):
            send_json(self, 400, {"code": "2001", "message": "not an object"})
            return
        with state.lock:
            state.received.append((rest, body))
            if state.mode == "repeat" and state.last is not None:
                status, answer = 200, state.last
            else:
                status, answer = self._answer(rest, body)
                if status == 200 and answer["data"].get("number"):
                    state.last = answer
        with contextlib.suppress(OSError):  # the hub gave up waiting
            send_json(self, status, answer)

    def _answer(self, rest: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        if rest == "/numbers/presale-permit":
            errors = _missing(body, PRESALE_FIELDS)
            permits = body.get("construction_permits") or []
            for i, p in enumerate(permits if isinstance(permits, list) else []):
                if not (isinstance(p, dict) and isinstance(p.get("no"), str)
                        and PERMIT.fullmatch(p["no"]) and p.get("planned_completion")):
                    errors.append({"field": f"construction_permits[{i}]",
                                   "reason": "an 18-digit number and a planned completion"})
            if errors:
                return 400, {"code": "2002", "message": "信息不完整", "errors": errors}
            letter = "Z" if body.get("backfill") else "Y"
            batch = permits[0]["no"]
            state.batches[(batch, letter)] += 1
            number = f"{batch}-{letter}{state.batches[(batch, letter)]:02d}"
        elif rest == "/numbers/contract-filing":
            errors = _missing(body, CONTRACT_FIELDS)
            permit = body.get("presale_permit_no")
            if isinstance(permit, str) and (permit not in state.issued
                                            or permit in state.cancelled):
                errors.append({"field": "presale_permit_no", "reason": "not issued, or cancelled"})
            if errors:
                return 400, {"code": "2002", "message": "信息不完整", "errors": errors}
            state.contracts[permit] += 1  # type: ignore[index]
            number = f"{permit}-B{state.contracts[permit]:04d}"  # type: ignore[index]
        elif rest.startswith("/numbers/") and rest.endswith("/cancel"):
            number = rest[len("/numbers/"):-len("/cancel")]
            if number not in state.issued:
                return 404, {"code": "4001", "message": "no such number"}
            state.cancelled.add(number)
            return 200, {"code": "0000", "message": "cancelled", "data": {"number": number}}
        else:
            return 404, {"code": "4001", "message": "no such endpoint"}
        state.issued[number] = str(body.get("county_code"))
        chain = hmac.new(self.server.secret, number.encode(), hashlib.sha256).hexdigest()
        answered = f"HNJSBC1.{number}.{chain}" if state.chain is None else state.chain
        return 200, {"code": "0000", "message": "ok",
                     "data": {"number": number, "chain_code": answered}}


class NumberingSim(ThreadingHTTPServer):
    """The province's numbering service; ``base_url`` is the province partner's base."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, secret: bytes, hub_app_id: str = "cityhub_430200",
                 host: str = "127.0.0.1", port: int = 0, prefix: str = "/province") -> None:
        super().__init__((host, port), _Handler)
        self.secret, self.hub_app_id, self.prefix = secret, hub_app_id, prefix
        self.state = NumberingState()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{self.prefix}"

    def start(self) -> NumberingSim:
        threading.Thread(target=self.serve_forever, daemon=True, name="numbering-sim").start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8094)
    p.add_argument("--hub-app-id", default="cityhub_430200")
    p.add_argument("--secret", default=os.environ.get("HUB_SECRET_PROVINCE"))
    args = p.parse_args()
    if not args.secret:
        raise SystemExit("the province's secret: --secret or HUB_SECRET_PROVINCE")
    sim = NumberingSim(args.secret.encode(), args.hub_app_id, args.host, args.port)
    print(f"numbering service on {sim.base_url}")
    sim.serve_forever()


if __name__ == "__main__":
    main()
