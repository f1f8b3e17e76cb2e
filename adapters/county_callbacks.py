"""County → hub callbacks (contracts/county.md): stage events, 申请并受理, the 好差评 link.

Each call is signed with the county's own app id, which may speak only for its own
division code (else 1004). Stages go through ``adapters.county_stages`` — the same path
as operators' marks and Excel imports — so they move forward only and are pushed to the
province through the outbox in the transaction that records them; one final stage per
sub-case is the database's rule (``store.cases.record_stage``). Bodies are read by the
province intake's bounded parser (``adapters.json_body.parse_json``). A county's own
case numbers are in its own namespace (``handle_apply_and_accept``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters.auth import authenticate, read_body
from adapters.base import Partner
from adapters.case_plan import open_case
from adapters.county_stages import (
    StageRefused,
    StageReport,
    ahead_of_clock,
    apply_stage,
    check_stage,
    find_sub_case,
    parse_at,
)
from adapters.json_body import parse_json
from adapters.province import review_url
from adapters.web import ApiError, call_context, envelope, hub_of_app, inbound
from mapping.canonical import Applicant, CanonicalCase
from mapping.items import ITEMS, Item
from mapping.province_in import ValidationFailure, parse_applicant, parse_application
from mapping.validators import apply_no_ok, text_ok
from store.cases import record_stage
from store.models import Case
from store.resilience import retry_on_disconnect

if TYPE_CHECKING:
    from hub import Hub

PREFIX = "/api/county/v1"
PARTY = "county"


# --------------------------------------------------------------------------- helpers


def _authenticate(hub: Hub, interface: str) -> tuple[Partner, dict[str, Any]]:
    """The calling county (signature, clock, nonce, switch: ``adapters.auth``) and its body.

    Only an app configured with its own division (a county) may call these endpoints.
    """
    raw = read_body(hub.config.limits.max_body_bytes)
    partner = authenticate(hub, raw, allow=lambda p: p.division is not None,
                           interface=interface)
    return partner, parse_json(raw)  # the province intake's limits


def _field_error(errors: list[tuple[str, str]]) -> ApiError:
    return ApiError("2002", f"{len(errors)} field(s) missing or invalid",
                    [{"field": f, "reason": r} for f, r in errors])


def _item(code: Any) -> Item:
    item = ITEMS.get(code) if isinstance(code, str) else None
    if item is None:
        raise ApiError("4001", f"unknown item {code!r}")
    return item


def _speaks_for(partner: Partner, county_code: Any, item: str | None = None) -> None:
    """A county's app may speak only for its own county (and its configured items)."""
    if partner.division is None or county_code != partner.division:
        raise ApiError("1004", f"app {partner.app_id} may not speak for county {county_code!r}")
    if item is not None and partner.items is not None and item not in partner.items:
        raise ApiError("1004", f"app {partner.app_id} may not call item {item}")


def _own_case(session, partner: Partner, case_no: Any) -> Case:  # type: ignore[no-untyped-def]
    case = find_sub_case(session, case_no)
    if case is None:
        raise _field_error([("case_no", "unknown case")])
    if case.county_code != partner.division:
        raise ApiError("1004", f"case {case_no} is not a case of county {partner.division}")
    return case


def _context(case: Case | None = None, item: str | None = None,
             division: Any = None) -> None:
    """The call-log row's case, item and division. The division is the caller's own
    county or its case's, never one a body claims: the admin's call-log pages are
    scoped by it, and a refused claim on 511781 showed there to 511781's operators."""
    record = call_context()
    if case is not None:
        record.case_id, record.item, record.division = case.id, case.item, case.county_code
    if item:
        record.item = item
    if isinstance(division, str) and division:
        record.division = division[:6]


def _text_or_none(body: dict[str, Any], name: str) -> Any:
    value = body.get(name)
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


# --------------------------------------------------------------------------- events


def handle_event(hub: Hub) -> dict[str, Any]:
    partner, body = _authenticate(hub, "county.events")
    item = _item(body.get("item"))
    _context(item=item.code, division=partner.division)  # its own, never the one claimed
    _speaks_for(partner, body.get("county_code"), item.code)
    errors: list[tuple[str, str]] = []
    at = None
    if _text_or_none(body, "at") is not None:
        try:
            at = parse_at(body["at"])
        except ValueError as exc:
            errors.append(("at", str(exc)))
    report = StageReport(
        stage=body.get("stage"), at=at, operator=_text_or_none(body, "operator"),
        opinion=_text_or_none(body, "opinion"), filing_no=_text_or_none(body, "filing_no"),
        result=body.get("result"),
    )
    errors += check_stage(item.code, report)
    if errors:
        raise _field_error(errors)

    def transaction():  # type: ignore[no-untyped-def]
        with hub.transaction() as s:
            case = _own_case(s, partner, body.get("case_no"))
            _context(case)
            if case.item != item.code:
                raise _field_error([("item", f"case {case.case_no} is a {case.item} case")])
            try:  # numbering.md: under the Hunan profile a 办结 carries a registered number
                outcome = apply_stage(s, hub, case, report, source="county")
            except StageRefused as refused:
                raise _field_error(refused.errors) from None
            return outcome, {"case_no": case.case_no, "stage": case.stage,
                             "recorded": outcome.recorded, "duplicate": outcome.duplicate}

    # a connection lost before COMMIT: run again on a fresh one (store.resilience)
    outcome, data = retry_on_disconnect(transaction, "county event")
    if not outcome.recorded:
        data["reason"] = outcome.reason
        return envelope(message="already recorded, nothing changed" if outcome.duplicate
                        else f"out of order, nothing changed: {outcome.reason}", data=data)
    return envelope(message="recorded", data=data)


# --------------------------------------------------------------------------- apply-and-accept


def _applicant(raw: Any) -> tuple[Applicant | None, list[tuple[str, str]]]:
    """The applicant of a county-opened status-only case, by the province's rules
    (``province_in.parse_applicant``: control and invisible characters, ID numbers by
    their 证件种类, the USCC's check character, the phone)."""
    applicant, errors = parse_applicant(raw)
    return applicant, [(e.field, e.reason) for e in errors]


def _county_case(hub: Hub, item: Item, body: dict[str, Any]) -> CanonicalCase:
    county_case_no = body.get("county_case_no")
    at = body.get("at")
    if item.from_province:
        envelope_ = {
            "apply_no": county_case_no, "city_code": hub.city.code,
            "county_codes": [body.get("county_code")], "applicant": body.get("applicant"),
            "submitted_at": at, "data": body.get("data") or {}, "materials": [],
        }
        try:
            return parse_application(item, envelope_, hub.city)
        except ValidationFailure as exc:
            rename = {"apply_no": "county_case_no", "submitted_at": "at"}
            raise _field_error([(rename.get(e.field, e.field), e.reason)
                                for e in exc.errors]) from None
    errors: list[tuple[str, str]] = []
    if not apply_no_ok(county_case_no):
        errors.append(("county_case_no", "must be 1-64 characters of A-Z, a-z, 0-9, _ and -"))
    applicant, more = _applicant(body.get("applicant"))
    errors += more
    data = body.get("data") or {}
    if not isinstance(data, dict):
        errors.append(("data", "must be an object"))
    try:
        submitted = parse_at(at)
    except ValueError as exc:
        errors.append(("at", str(exc)))
    if errors:
        raise _field_error(errors)
    assert applicant is not None
    return CanonicalCase(item=item.code, apply_no=county_case_no, city_code=hub.city.code,
                         county_codes=[body["county_code"]], applicant=applicant,
                         submitted_at=submitted, data=data)


def _find_own(s, item: str, county: str, county_case_no: str) -> Case | None:  # type: ignore[no-untyped-def]
    """The sub-case a county opened under its own number (its namespace), if any."""
    return s.scalars(select(Case).where(
        Case.namespace == county, Case.item == item, Case.apply_no == county_case_no,
        Case.county_code == county)).first()


def handle_apply_and_accept(hub: Hub) -> dict[str, Any]:
    """申请并受理: the county opened the case itself, under its own ``county_case_no``.

    The number lives in the county's own namespace (``Case.namespace``, part of the
    cases' unique key): it never finds, claims or blocks a case of the province (whose
    (item, apply_no) key is namespace "") or of another county, and a later province
    application with the same number is a case of its own. A repeat of the county's own
    apply-and-accept answers the first case with ``"duplicate": true``; two at the same
    moment meet at the unique key and the second answers the first's case.
    """
    partner, body = _authenticate(hub, "county.apply-and-accept")
    item = _item(body.get("item"))
    _context(item=item.code, division=partner.division)  # its own, never the one claimed
    _speaks_for(partner, body.get("county_code"), item.code)
    county = partner.division
    assert county is not None
    canonical = _county_case(hub, item, body)
    operator = _text_or_none(body, "operator")
    if operator is not None and (not isinstance(operator, str) or len(operator) > 64
                                 or not text_ok(operator)):
        raise _field_error([("operator", "must be a string of at most 64 characters, "
                                         "no control characters")])
    at = parse_at(body["at"])
    if (ahead := ahead_of_clock(at)) is not None:
        raise _field_error([("at", ahead)])

    def transaction() -> dict[str, Any]:
        for attempt in range(3):
            try:
                with hub.transaction() as s:
                    existing = _find_own(s, item.code, county, canonical.apply_no)
                    if existing is not None:
                        _context(existing)
                        return envelope(message="already recorded, nothing changed", data={
                            "case_no": existing.case_no, "duplicate": True})
                    opened = open_case(s, hub, canonical, source=PARTY, deliver=False,
                                       namespace=county, kind="county_apply_and_accept")
                    sub, _route = opened.subs[0]
                    _context(sub)
                    record_stage(s, hub, sub, "apply_and_accept", at=at, operator=operator,
                                 source=PARTY)
                    data = {"case_no": sub.case_no, "parent_case_no": opened.parent.case_no,
                            "duplicate": False}
            except IntegrityError:  # the same number opened at the same moment: look again
                if attempt == 2:
                    raise
                continue
            return envelope(message="case opened and accepted", data=data)
        raise AssertionError("unreachable")

    # a connection lost before COMMIT: run again on a fresh one (store.resilience)
    return retry_on_disconnect(transaction, "county apply-and-accept")


# --------------------------------------------------------------------------- review link


def ask_province_review_link(hub: Hub, case: Case) -> tuple[str | None, str | None]:
    """Ask the province (好差评) for a case's review link, synchronously, on the hub's one
    logged-call path (the province adapter's ``ask``). Returns ``(url, None)`` or
    ``(None, reason)``."""
    province = hub.adapter("province")
    result = province.review_link_call(  # type: ignore[attr-defined]
        case.apply_no, case.item, case.county_code, case.id)
    url = review_url(result) if result.ok else None
    return url, None if url else (result.error or "no answer")


def handle_review_link(hub: Hub) -> dict[str, Any]:
    partner, body = _authenticate(hub, "county.review-link")
    with hub.transaction() as s:
        case = _own_case(s, partner, body.get("case_no"))
        _context(case)
        if case.stage != "completed":
            raise _field_error([("case_no", f"a review link exists only after completed; "
                                            f"the case is {case.stage}")])
    url, reason = ask_province_review_link(hub, case)
    if url is None:
        raise ApiError("3001", f"the province's review service did not answer: {reason}")
    return envelope(data={"case_no": case.case_no, "url": url})


# --------------------------------------------------------------------------- registration


def register(app: Flask, hub: Hub) -> None:
    """Add the county callback endpoints to the web app."""

    @app.post(f"{PREFIX}/events")
    @inbound("county.events", party=PARTY)
    def county_events():  # type: ignore[no-untyped-def]
        return handle_event(hub_of_app())

    @app.post(f"{PREFIX}/apply-and-accept")
    @inbound("county.apply-and-accept", party=PARTY)
    def county_apply_and_accept():  # type: ignore[no-untyped-def]
        return handle_apply_and_accept(hub_of_app())

    @app.post(f"{PREFIX}/review-link")
    @inbound("county.review-link", party=PARTY)
    def county_review_link():  # type: ignore[no-untyped-def]
        return handle_review_link(hub_of_app())
