"""The data-sharing gateway (contracts/departments.md): banks, the housing fund, tax,
police and courts as partners.

Inbound, ``POST /api/share/v1/{name}``: the queries ``contracts``, ``housing_count`` and
``seizures`` (a body with ``seizure_no`` on ``seizures`` is the court's push), and the
pushes ``mortgages`` and ``defaulters``. Each call is signed like every partner's
(``adapters.auth``), counted against the department's rate per minute (1005), checked
against its scope (1004) and, for a query, its ``X-Operator-Id`` / ``X-Purpose``
(2002); then answered within the scope and written to the sharing audit, in one
transaction.

Outbound: a filing at 办结 (and a presale contract's cancellation) goes to the
departments the routing table's ``sharing`` block names, through the outbox (signed,
retried, resubmittable, call-logged); a delivered push is written to the audit too.

The hooks into the engine are the methods of ``Sharing`` (``hub.sharing``): ``on_stage``
(a stage recorded), ``refusal``/``refuse`` (the province intake, 失信被执行人) and
``with_warnings`` / ``warnings_for`` (查封, on delivery and on the case page).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from flask import request
from sqlalchemy.exc import IntegrityError

from adapters.auth import authenticate, read_body
from adapters.base import DeliveryResult, OutgoingMessage
from adapters.http import HttpJsonAdapter
from adapters.json_body import parse_json
from adapters.web import ApiError, call_context, envelope, hub_of_app, inbound
from mapping.departments import (
    CANCEL_ITEM,
    FILING_KINDS,
    PUSHES,
    QUERIES,
    Department,
    DepartmentConfigError,
    asker,
    contract_view,
    defaulter_entries,
    department_of,
    mortgage_body,
    query_body,
    seizure_body,
)
from routes.policy import RetryPolicy
from store import share
from store.outbox import NewMessage

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

    from adapters.base import Partner
    from hub import Config, Hub
    from mapping.canonical import CanonicalCase
    from store.models import Case

log = logging.getLogger("cityhub.sharing")
BASE = "/api/share/v1"
ENDPOINTS = frozenset(QUERIES) | frozenset(PUSHES)
ADAPTER = "departments"
#: Items whose 办结 a department may be sent (the ``sharing`` block of a routing table).
PUSH_ITEMS = frozenset(FILING_KINDS) | {CANCEL_ITEM}
REFUSAL_LIST = "失信被执行人名单"


@dataclass(frozen=True)
class PushRoute:
    app_id: str
    items: frozenset[str]
    retry: RetryPolicy
    timeout: float


def load_push_routes(path: Path, departments: dict[str, Department],
                     policies: dict[str, RetryPolicy]) -> dict[str, PushRoute]:
    """The routing table's ``sharing`` block: which items go to which department.

    An entry naming an app id the config does not list is left out (that deployment has
    no such receiver); one naming a partner that is not a department is an error."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    block = raw.get("sharing") if isinstance(raw, dict) else None
    if block is None:
        return {}

    def fail(key: str, why: str) -> DepartmentConfigError:
        return DepartmentConfigError(f"{path}: sharing{'.' + key if key else ''}: {why}")

    if not isinstance(block, dict):
        raise fail("", "must map department app ids to {items, retry, timeout}")
    routes: dict[str, PushRoute] = {}
    for app_id, entry in block.items():
        key = str(app_id)
        if not isinstance(entry, dict):
            raise fail(key, "must be a mapping")
        unknown = set(entry) - {"items", "retry", "timeout"}
        if unknown:
            raise fail(f"{key}.{sorted(unknown)[0]}", "unknown setting")
        items = entry.get("items")
        if not isinstance(items, list) or not items or any(i not in PUSH_ITEMS for i in items):
            raise fail(f"{key}.items", f"a list within {', '.join(sorted(PUSH_ITEMS))}")
        retry = entry.get("retry", "default")
        if retry not in policies:
            raise fail(f"{key}.retry", f"unknown retry policy {retry!r}")
        timeout = entry.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise fail(f"{key}.timeout", "must be a positive number of seconds")
        if key not in departments:
            log.debug("sharing: %s is not a configured department; nothing is pushed to it", key)
            continue
        routes[key] = PushRoute(key, frozenset(items), policies[retry], float(timeout))
    return routes


def load_departments(config: Config, partners: dict[str, Partner]
                     ) -> tuple[dict[str, Department], dict[str, PushRoute]]:
    """The departments among the partners and the routing table's pushes to them.

    A bad entry raises ``DepartmentConfigError`` worded ``file: key: why``; hub.py's
    ``load_topology`` turns it into its ``ConfigError`` (start-up and ``hub.py check``)."""
    departments: dict[str, Department] = {}
    try:
        for app_id, partner in partners.items():
            dept = department_of(app_id, partner.options)
            if dept is not None:
                departments[app_id] = dept
        pushes = load_push_routes(config.routing_table, departments, config.retry_policies)
    except DepartmentConfigError as exc:
        text = str(exc)
        if text.startswith("/"):  # the routing table's own path leads already
            raise
        raise DepartmentConfigError(f"{config.path}: {text}") from None
    return departments, pushes


class Sharing:
    """The departments of this hub and the gateway's hooks into the engine."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub  # the config was checked already: hub.load_topology
        self.departments, self.pushes = load_departments(hub.config, hub.partners)

    # -- 办结 → the shared record and the pushes out

    def on_stage(self, session: Session, case: Case, stage: str, filing_no: str | None,
                 at: datetime) -> None:
        """A stage was recorded on a sub-case (in the caller's transaction)."""
        if stage != "completed" or not case.county_code:
            return
        if case.item in FILING_KINDS:
            if not filing_no:
                return
            data = self._data(case)
            filing = share.record_filing(session, case, data, filing_no, at)
            if filing is not None:
                self._push(session, case, filing, "filed")
        elif case.item == CANCEL_ITEM:
            contract_no = self._data(case).get("contract_no")
            if isinstance(contract_no, str):
                filing = share.cancel_filing(session, contract_no.strip(), case.county_code, at)
                if filing is not None:
                    self._push(session, case, filing, "cancelled")

    def _data(self, case: Case) -> dict[str, Any]:
        payload = self.hub.cipher.open_json(case.payload_enc) or {}
        data = payload.get("data") if isinstance(payload, dict) else None
        return data if isinstance(data, dict) else {}

    def _push(self, session: Session, case: Case, filing: Any, event: str) -> None:
        session.flush()
        [view] = share.filings_view(session, [filing])
        for route in self.pushes.values():
            if case.item not in route.items:
                continue
            partner = self.hub.partners[route.app_id]
            dept = self.departments[route.app_id]
            scoped = contract_view(view, dept.scope)
            if scoped is None or partner.secret is None or not partner.base_url:
                continue  # outside its scope, or the receiver is not enabled here
            self.hub.enqueue(session, NewMessage(
                interface=f"share.out.{route.app_id}", adapter=ADAPTER, partner=route.app_id,
                operation="contracts", payload={"event": event, "contract": scoped},
                policy=route.retry, timeout=route.timeout, division=case.county_code,
                item=case.item, case_id=case.id), want_id=False)

    # -- the defaulter rule (province intake)

    def refusal(self, canonical: CanonicalCase) -> share.Listing | None:
        """The listing that refuses this filing, or None (most filings: one lookup)."""
        if canonical.item not in share.RULE_ITEMS:
            return None
        ids = share.buyer_ids(canonical.item, canonical.data)
        with self.hub.db.session() as s:
            found = share.listed(s, ids)
            if found is None or not share.rule_enabled(s, canonical.item):
                return None
        return found

    def refuse(self, session: Session, canonical: CanonicalCase, listing: share.Listing,
               found: tuple[Any, ...] | None) -> tuple[dict[str, Any], int]:
        """Record the filing as 不予受理 (自动不予办理); (the answer, ``stage: rejected``,
        and the parent's id). Nothing goes to the county. ``found``: the record of a
        failed validation for the apply_no, now answered with the refusal (the intake
        answers a repeat of an answered apply_no itself)."""
        from adapters.case_plan import open_case
        from adapters.intake import accepted_answer
        from store.cases import province_message, status_payload
        from store.models import Case as CaseModel
        from store.models import StageEvent, utcnow

        hub = self.hub
        reason = f"自动不予办理：买受人列入{REFUSAL_LIST}（{listing.court} {listing.case_no}）"
        if found is not None:  # a failed validation's record: now answered with the refusal
            parent = session.get(CaseModel, found[0])
            subs: list[Any] = []
            parent.stage = "rejected"
        else:
            made: list[dict[str, Any]] = []

            def answer_for(p: Any, s: list[Any]) -> dict[str, Any]:
                made.append(accepted_answer(hub, p, s))
                return made[-1]

            opened = open_case(session, hub, canonical, stage="rejected", deliver=False,
                               answer_for=answer_for, kind="refused")
            parent, subs = opened.parent, [sub for sub, _ in opened.subs]
        answer = accepted_answer(hub, parent, subs)
        answer["message"] = "rejected"
        answer["data"].update(stage="rejected", reason=reason,
                              rule={"list": REFUSAL_LIST, "court": listing.court,
                                    "case_no": listing.case_no})
        parent.answer_enc = hub.cipher.seal_json(answer)
        now = utcnow()
        for case in subs or [parent]:
            session.add(StageEvent(case_id=case.id, stage="rejected", at=now, opinion=reason,
                                   operator=hub.config.hub_app_id, source="hub"))
            hub.enqueue(session, province_message(hub, case, "status", status_payload(
                case, "rejected", now, hub.config.hub_app_id, reason, None)), want_id=False)
        return answer, parent.id

    # -- 查封 warnings

    def with_warnings(self, payload: dict[str, Any], item: str | None) -> dict[str, Any]:
        """A county delivery with ``warnings`` for a house under an active seizure."""
        with self.hub.db.session() as s:
            warnings = self.warnings_of(s, item, payload)
        return {**payload, "warnings": warnings} if warnings else payload

    def warnings_for(self, session: Session, case: Case) -> list[dict[str, str]]:
        """The seizure warnings of a case (its house), for the case page."""
        if case.item not in FILING_KINDS:
            return []
        return self.warnings_of(session, case.item, {"data": self._data(case)})

    @staticmethod
    def warnings_of(session: Session, item: str | None, payload: dict[str, Any]
                    ) -> list[dict[str, str]]:
        """The seizure warnings of an application (``payload``, the canonical case):
        a filing's house under an active seizure; none for other items."""
        if item not in FILING_KINDS:
            return []
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        return share.seizure_warnings(session, data.get("house_id"))


# --------------------------------------------------------------------------- the adapter


def _interface(name: str) -> str:
    return f"share.in.{name}" if name in ENDPOINTS else "share.in.unknown"


class DepartmentsAdapter(HttpJsonAdapter):
    """``POST {department base}/contracts`` out; the gateway's endpoints in."""

    alias = ADAPTER

    def after_delivery(self, session: Session, message: OutgoingMessage,
                       result: DeliveryResult, status: str) -> None:
        if status not in ("done", "dead"):
            return
        dept = self.hub.sharing.departments.get(message.partner.app_id)
        contract = message.payload.get("contract") or {}
        share.write_access(
            session, app_id=message.partner.app_id, department=dept.kind if dept else "",
            direction="out", action=f"out.{message.payload.get('event', 'filed')}",
            code="0000" if status == "done" else (result.code or "5000")[:4],
            returned=[str(contract.get("filing_no", ""))], division=message.division,
            ref_id=f"outbox:{message.id}")

    def register_inbound(self, app: Flask) -> None:
        hub = self.hub
        limit = hub.config.limits.max_body_bytes

        @app.post(f"{BASE}/<name>", endpoint="share_call")
        @inbound(_interface, party="department")
        def call(name: str):  # type: ignore[no-untyped-def]
            body = read_body(limit)
            sharing: Sharing = hub.sharing
            partner = authenticate(hub, body, allow=lambda p: p.app_id in sharing.departments,
                                   interface=_interface(name) if name in ENDPOINTS else None)
            if name not in ENDPOINTS:
                raise ApiError("4001", f"unknown endpoint {name[:64]!r}")
            return Gateway(hub_of_app(), sharing.departments[partner.app_id]).handle(name, body)


class Gateway:
    """One department's call: rate, scope, headers, body, answer and audit."""

    def __init__(self, hub: Hub, dept: Department) -> None:
        self.hub, self.dept = hub, dept

    def handle(self, name: str, body: bytes) -> dict[str, Any]:
        try:
            doc: dict[str, Any] | None = parse_json(body)
            bad_body: ApiError | None = None
        except ApiError as exc:
            doc, bad_body = None, exc
        push = name in PUSHES and not (name == "seizures" and doc is not None
                                       and "seizure_no" not in doc)
        action = f"{'push' if push else 'query'}.{name}"
        who, header_errors = asker(request.headers)
        for attempt in range(3):  # a concurrent duplicate push: its unique key, once more
            try:
                return self._once(name, action, push, doc, bad_body, who, header_errors)
            except IntegrityError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _once(self, name: str, action: str, push: bool, doc: dict[str, Any] | None,
              bad_body: ApiError | None, who: Any, header_errors: list[dict[str, str]]
              ) -> dict[str, Any]:
        dept = self.dept
        audit: dict[str, Any] = {"asked": None, "asked_id": None, "returned": ()}
        answer: dict[str, Any] | None = None
        error: ApiError | None = None
        with self.hub.transaction() as s:
            calls = share.bump_rate(s, dept.app_id)
            try:
                if calls > dept.rate_per_minute:
                    raise ApiError("1005", f"more than {dept.rate_per_minute} calls a minute")
                if push and not dept.may_push(name) or not push and not dept.scope.allows(name):
                    raise ApiError("1004", f"{dept.kind} {dept.app_id} may not call {action}")
                if not push and header_errors:
                    raise ApiError("2002", "X-Operator-Id and X-Purpose are required",
                                   header_errors)
                if bad_body is not None:
                    raise bad_body
                assert doc is not None
                answer = (self._push(s, name, doc, audit) if push
                          else self._query(s, name, doc, audit))
            except ApiError as exc:
                error = exc
            share.write_access(
                s, app_id=dept.app_id, department=dept.kind, direction="in", action=action,
                code=error.code if error else "0000",
                operator=who.operator if who else None, purpose=who.purpose if who else None,
                asked=audit["asked"], asked_id=audit["asked_id"], returned=audit["returned"],
                count=audit.get("count"), ref_id=call_context().ref_id)
        if error is not None:
            raise error
        assert answer is not None
        return answer

    def _query(self, s: Session, name: str, doc: dict[str, Any],
               audit: dict[str, Any]) -> dict[str, Any]:
        asked, errors = query_body(name, doc)
        if errors:
            raise ApiError("2002", f"{len(errors)} field(s) missing or invalid", errors)
        if "id_no" in asked:
            audit.update(asked="id_no", asked_id=asked["id_no"])
        else:
            audit.update(asked=f"house_id={asked['house_id']}")
        scope = self.dept.scope
        if name == "contracts":
            found, cut = share.contracts(s, scope, asked)
            audit["returned"] = [c["filing_no"] for c in found]
            # more than MAX_RETURNED: the oldest, and a flag to ask the hub's operators
            return envelope("0000", "ok", {"contracts": found, **({"truncated": True}
                                                                   if cut else {})})
        if name == "housing_count":
            numbers = share.housing_count(s, asked["id_no"])
            audit["returned"] = numbers
            from store.models import utcnow

            return envelope("0000", "ok", {"count": len(numbers), "as_of": share.iso(utcnow())})
        found = share.seizures(s, asked["house_id"])
        audit["returned"] = [z["seizure_no"] for z in found]
        return envelope("0000", "ok", {"seizures": found})

    def _own(self, s: Session, name: str, save: Any) -> Any:
        """``save()``, or 1004 (and an alert) for records another department reported:
        a department acts only for itself; nothing is changed."""
        try:
            return save()
        except share.NotOwnRecord as refused:
            share.alert_not_own(s, self.dept.app_id, name, refused)
            raise ApiError("1004", f"{self.dept.app_id} may change only the records it "
                                   "reported itself; nothing was changed",
                           [{"field": f, "reason": "reported by another department"}
                            for f in refused.fields]) from None

    def _push(self, s: Session, name: str, doc: dict[str, Any],
              audit: dict[str, Any]) -> dict[str, Any]:
        app_id = self.dept.app_id
        if name == "mortgages":
            m, errors = mortgage_body(doc)
            if errors:
                raise ApiError("2002", f"{len(errors)} field(s) missing or invalid", errors)
            new = share.save_mortgage(s, app_id, m)
            audit.update(asked="mortgagor.id_no", asked_id=m["mortgagor"]["id_no"],
                         returned=[m["mortgage_no"]])
            return envelope("0000", "stored" if new else "duplicate",
                            {"mortgage_no": m["mortgage_no"], "duplicate": not new})
        if name == "defaulters":
            entries, errors = defaulter_entries(doc)
            if errors:
                raise ApiError("2002", f"{len(errors)} field(s) missing or invalid", errors)
            audit.update(asked=f"{len(entries)} entries",
                         asked_id=entries[0]["id_no"] if len(entries) == 1 else None,
                         returned=[e["case_no"] for e in entries])
            changed = self._own(s, name, lambda: share.save_defaulters(s, app_id, entries))
            audit.update(asked=f"{len(entries)} entries",
                         asked_id=entries[0]["id_no"] if len(entries) == 1 else None,
                         returned=[e["case_no"] for e in entries])
            return envelope("0000", "stored", {"entries": len(entries), "changed": changed})
        z, errors = seizure_body(doc)
        if errors:
            raise ApiError("2002", f"{len(errors)} field(s) missing or invalid", errors)
        audit.update(asked=f"house_id={z['house_id']}", returned=[z["seizure_no"]])
        changed = self._own(s, name, lambda: share.save_seizure(s, app_id, z))
        return envelope("0000", "stored" if changed else "duplicate",
                        {"seizure_no": z["seizure_no"], "duplicate": not changed})
