"""County → hub → province unified numbers (contracts/numbering.md, Hunan profile).

A county asks for a presale permit's or a contract filing's number, cancels one, reads
its QR code, reports a project's completion acceptance, and uploads the contract's
scan. Every request is signed by the county's own app (``adapters.auth``) and acts only
for that county's projects and numbers (else ``1004``); it is checked for completeness
and format first (``mapping/numbering.py``: every field error at once, ``2002``), then
the province is asked synchronously on the province adapter's one logged-call path
(``ProvinceAdapter.ask``); its number goes into the register (``store/numbering.py``)
and back to the county. A province that does not answer gives ``3001`` and nothing is
recorded. With no profile configured every endpoint answers ``4001``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, request

from adapters.auth import authenticate, read_body
from adapters.base import DeliveryResult, Partner
from adapters.json_body import parse_json
from adapters.web import ApiError, call_context, envelope, hub_of_app, inbound
from mapping import certificate_qr
from mapping.numbering import (
    CONTRACT,
    PRESALE,
    PROJECT_CODE,
    NumberingInvalid,
    check_acceptance,
    check_cancel,
    check_contract,
    check_issued,
    check_presale,
    issued_number,
    kind_of,
)
from store import files
from store import numbering as register
from store.content import ContentLimits
from store.models import Alert, utcnow
from store.resilience import retry_on_disconnect

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from hub import Hub

PREFIX = "/api/county/v1"
log = logging.getLogger("cityhub.numbering")
PARTY = "county"
#: Items whose 办结 carries a unified number under the profile, and the number's kind.
FILING_KINDS = {"presale_permit_application": PRESALE, "presale_contract_filing": CONTRACT}
MULTIPART_OVERHEAD = 64 * 1024


# --------------------------------------------------------------------------- helpers


def _enabled(hub: Hub) -> None:
    if not hub.numbering.enabled:
        raise ApiError("4001", "unified numbering is not configured for this city")


def _county(hub: Hub, interface: str, body_limit: int | None = None) -> tuple[Partner, bytes]:
    """The calling county's app (signature, clock, nonce, switch) and the raw body."""
    raw = read_body(hub.config.limits.max_body_bytes if body_limit is None else body_limit)
    partner = authenticate(hub, raw, allow=lambda p: p.division is not None,
                           interface=interface)
    call_context().division = partner.division
    return partner, raw


def _invalid(errors: list[tuple[str, str]]) -> ApiError:
    return ApiError("2002", f"{len(errors)} field(s) missing or invalid",
                    [{"field": f, "reason": r} for f, r in errors])


def _province_failed(result: DeliveryResult) -> ApiError:
    """The province refused (its 2xxx passes through, with its field errors) or did not
    answer in time (3001)."""
    answer = result.response if isinstance(result.response, dict) else {}
    if result.code and result.code[0] == "2":
        errors = answer.get("errors") if isinstance(answer.get("errors"), list) else []
        safe = [{"field": str(e.get("field"))[:100], "reason": str(e.get("reason"))[:300]}
                for e in errors[:50] if isinstance(e, dict)]
        return ApiError(result.code[:4], f"the province refused: "
                                         f"{str(answer.get('message'))[:200]}", safe)
    return ApiError("3001", "the province's numbering service did not answer; "
                            "nothing was recorded, ask again")


def _ask(hub: Hub, operation: str, payload: dict[str, Any], county: str,
         interface: str) -> DeliveryResult:
    return hub.adapter("province").ask(  # type: ignore[attr-defined]
        operation, payload, interface, division=county)


def _alert_unrecorded(hub: Hub, county: str, number: str, title: str, detail: str) -> None:
    """A number the province issued that the register did not take: operators must know."""
    with hub.transaction() as s:
        s.add(Alert(kind="number_reissued", severity="critical", division=county,
                    ref=f"number:{number}"[:128], title=title[:200], detail=detail))


def _taken(hub: Hub, county: str, number: str) -> ApiError:
    """The province answered a number the register holds: never recorded twice."""
    _alert_unrecorded(hub, county, number, f"省厅重复发放编号 {number}（未登记）",
                      "该编号已在编号登记簿中（含已注销），本次未登记，已答复区县稍后重试。")
    return ApiError("3001", f"the province answered number {number}, which the register "
                            "already holds; nothing was recorded")


def _unusable(hub: Hub, county: str, kind: str, answer: Any, why: ValueError) -> ApiError:
    """3001 for an answer the register cannot take; when it carries a well-formed number
    the province may have issued it all the same: the operators are alerted."""
    number = issued_number(kind, answer)
    if number is not None:
        _alert_unrecorded(hub, county, number, f"省厅发放的编号 {number} 未登记：答复不可用",
                          f"省厅答复无法登记（{str(why)[:200]}）；请联系省厅核实或注销该编号，"
                          "已答复区县稍后重试。")
    return ApiError("3001", f"the province's answer is not usable: {why}")


def _recorded(hub: Hub, county: str, number: str, record: Callable[[], None]) -> None:
    """``record`` the issued number (retried on a lost connection). The register's own
    refusals reach the caller; any other failure (the store down after its retries)
    alerts the operators first: the province has issued a number the register lacks."""
    try:
        retry_on_disconnect(record, "numbering register")
    except (register.NumberTaken, register.NotOwn, register.PermitOfOtherProject,
            register.PermitCancelled):
        raise
    except Exception:
        with contextlib.suppress(Exception):  # the store may be what failed
            _alert_unrecorded(hub, county, number, f"省厅发放的编号 {number} 未登记：登记失败",
                              "编号登记簿写入失败；请核实后补登或联系省厅注销该编号。")
        log.exception("the province issued %s; the register did not take it", number)
        raise


def _ok(number: str, chain: str, message: str = "issued") -> dict[str, Any]:
    return envelope(message=message, data={"number": number, "chain_code": chain})


# --------------------------------------------------------------------------- handlers


def handle_presale(hub: Hub) -> dict[str, Any]:
    _enabled(hub)
    partner, raw = _county(hub, "county.numbers.presale-permit")
    county = partner.division
    assert county is not None
    try:
        req = check_presale(parse_json(raw))
    except NumberingInvalid as exc:
        raise _invalid(exc.errors) from None
    with hub.transaction() as s:
        try:
            errors = register.presale_conflicts(s, county, req)
        except register.NotOwn as exc:
            raise ApiError("1004", f"app {partner.app_id} may not ask for {exc}") from None
    if errors:
        raise _invalid(errors)
    result = _ask(hub, "numbers/presale-permit", req.wire(county), county,
                  "province.numbers.presale-permit")
    if not result.ok:
        raise _province_failed(result)
    try:
        number, chain = check_issued(PRESALE, result.response, req.construction_permits[0].no)
        if (number[19] == "Z") != req.backfill:
            raise ValueError(f"the province answered {number} for backfill={req.backfill}")
    except ValueError as exc:
        raise _unusable(hub, county, PRESALE, result.response, exc) from None
    today = _today(hub)

    def record() -> None:
        with hub.transaction() as s:
            register.record_presale(s, county, req, number, chain, today)

    try:
        _recorded(hub, county, number, record)
    except register.NumberTaken:
        raise _taken(hub, county, number) from None
    except register.NotOwn:  # another county's project registered meanwhile
        _alert_unrecorded(hub, county, number,
                          f"省厅发放的编号 {number} 未登记：项目 {req.project_code} "
                          "在发放期间已登记为其他区县的项目",
                          "请联系省厅注销该编号；本次未登记，已答复区县。")
        raise ApiError("1004", f"project {req.project_code} is another county's; "
                               "nothing was recorded") from None
    except register.PermitOfOtherProject as exc:  # a permit registered meanwhile
        _alert_unrecorded(hub, county, number,
                          f"省厅发放的编号 {number} 未登记：施工许可证在发放期间已登记到"
                          "其他项目",
                          "请联系省厅注销该编号；本次未登记，已答复区县。")
        raise _invalid(exc.errors) from None
    return _ok(number, chain)


def handle_contract(hub: Hub) -> dict[str, Any]:
    _enabled(hub)
    partner, raw = _county(hub, "county.numbers.contract-filing")
    county = partner.division
    assert county is not None
    try:
        req = check_contract(parse_json(raw))
    except NumberingInvalid as exc:
        raise _invalid(exc.errors) from None
    with hub.transaction() as s:
        try:
            permit = register.live_number(s, county, req.presale_permit_no, PRESALE)
        except register.NotOwn as exc:
            raise ApiError("1004", f"app {partner.app_id}: {exc}") from None
        scan = files.info(s, req.file_id)
        errors = []
        if permit is None:
            errors.append(("presale_permit_no", "not a valid presale permit of this county "
                                                "in the register (unknown or cancelled)"))
        else:
            s.expunge(permit)
        if scan is None or scan.county_code != county:
            errors.append(("file_id", "no material of this county with this id"))
    if errors:
        raise _invalid(errors)
    assert permit is not None
    result = _ask(hub, "numbers/contract-filing", req.wire(county), county,
                  "province.numbers.contract-filing")
    if not result.ok:
        raise _province_failed(result)
    try:
        number, chain = check_issued(CONTRACT, result.response, permit.number)
    except ValueError as exc:
        raise _unusable(hub, county, CONTRACT, result.response, exc) from None

    def record() -> None:
        with hub.transaction() as s:
            register.record_contract(s, county, permit, req, number, chain)

    try:
        _recorded(hub, county, number, record)
    except register.NumberTaken:
        raise _taken(hub, county, number) from None
    except register.PermitCancelled:
        _alert_unrecorded(hub, county, number,
                          f"省厅发放的编号 {number} 未登记：预售许可证 {permit.number} "
                          "已在发放期间注销",
                          "请联系省厅注销该编号；本次未登记，已答复区县。")
        raise _invalid([("presale_permit_no", "the presale permit was cancelled while the "
                                              "number was issued; nothing was recorded")]
                       ) from None
    return _ok(number, chain)


def _own_number(s: Session, partner: Partner, number: str) -> Any:
    row = register.number_of(s, number)
    if row is None:
        raise ApiError("4001", "no such number in the register")
    if row.county_code != partner.division:
        raise ApiError("1004", f"app {partner.app_id} may not act on another county's number")
    return row


def handle_cancel(hub: Hub, number: str) -> dict[str, Any]:
    _enabled(hub)
    partner, raw = _county(hub, "county.numbers.cancel")
    body = parse_json(raw)
    try:
        reason = check_cancel(number, body if isinstance(body, dict) else {})
    except NumberingInvalid as exc:
        raise _invalid(exc.errors) from None
    with hub.transaction() as s:
        row = _own_number(s, partner, number)
        if row.cancelled_at is not None:
            return envelope(message="already cancelled, nothing changed",
                            data={"number": number, "cancelled": True, "duplicate": True})
    county = partner.division
    assert county is not None
    result = _ask(hub, f"numbers/{number}/cancel", {"reason": reason, "county_code": county},
                  county, "province.numbers.cancel")
    if not result.ok:
        raise _province_failed(result)
    with hub.transaction() as s:
        row = _own_number(s, partner, number)
        if row.cancelled_at is None:
            register.cancel(s, row, reason)
    return envelope(message="cancelled", data={"number": number, "cancelled": True,
                                               "duplicate": False})


def handle_qr(hub: Hub, number: str, kind: str) -> Response:
    _enabled(hub)
    partner, _ = _county(hub, "county.numbers.qr", body_limit=0)
    if kind_of(number) is None:
        raise _invalid([("number", "not a presale permit or contract filing number")])
    with hub.transaction() as s:
        row = _own_number(s, partner, number)
        chain = row.chain_code
    if not certificate_qr.fits(chain):  # registered before the hub checked answers so
        raise ApiError("3001", f"the chain code of {number} does not fit in a QR code; "
                               "ask the province for it again")
    if kind == "svg":
        resp = Response(certificate_qr.svg(chain), mimetype="image/svg+xml")
    else:
        font = hub.numbering.caption_font
        assert font is not None
        from pathlib import Path

        resp = Response(certificate_qr.png(chain, Path(font)), mimetype="image/png")
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _today(hub: Hub) -> date:
    """Today in the city's time (Beijing)."""
    return utcnow().replace(tzinfo=UTC).astimezone(hub.overrides.tz).date()


def handle_acceptance(hub: Hub, project_code: str) -> dict[str, Any]:
    _enabled(hub)
    partner, raw = _county(hub, "county.projects.acceptance")
    body = parse_json(raw)
    try:
        kind, day = check_acceptance(body if isinstance(body, dict) else {}, _today(hub))
    except NumberingInvalid as exc:
        raise _invalid(exc.errors) from None
    if not PROJECT_CODE.fullmatch(project_code):
        raise _invalid([("project_code", "not a 工改项目编码 (6-40 of A-Z, 0-9 and -)")])
    county = partner.division
    assert county is not None
    with hub.transaction() as s:
        try:
            project = register.record_acceptance(s, county, project_code, kind, day)
        except register.NotOwn:
            raise ApiError("1004", f"app {partner.app_id} may not report for another "
                                   "county's project") from None
        if project is None:
            raise ApiError("4001", "no such project in the project register")
    return envelope(message="recorded", data={"project_code": project_code, "kind": kind,
                                              "date": day.isoformat()})


def handle_upload(hub: Hub) -> dict[str, Any]:
    """The contract's scan, as a material of the calling county (its ``file_id``)."""
    _enabled(hub)
    limits = hub.config.limits
    partner, _ = _county(hub, "county.numbers.materials",
                         body_limit=limits.max_material_bytes + MULTIPART_OVERHEAD)
    if request.mimetype != "multipart/form-data":
        raise ApiError("2001", "materials are uploaded as multipart/form-data")
    try:
        upload = request.files.get("file")
    except Exception:  # a malformed multipart body
        raise ApiError("2001", "the multipart body cannot be parsed") from None
    if upload is None:
        raise _invalid([("file", "required")])
    data = upload.read(limits.max_material_bytes + 1)
    try:
        checked = files.check(data, limits.max_material_bytes, ContentLimits.of(limits),
                              upload.filename, upload.mimetype)
    except files.FileRejected as exc:
        raise _invalid([("file", exc.reason)]) from None
    with hub.transaction() as s:
        saved = files.save(s, hub.cipher, data, upload.filename or "contract",
                           max_bytes=limits.max_material_bytes, county_code=partner.division,
                           uploaded_by=partner.app_id, checked=checked)
    return envelope(message="stored", data={"file_id": saved.file_id, "sha256": saved.sha256,
                                            "size": saved.size})


# --------------------------------------------------------------------------- 办结 check


#: The field error of a 办结 whose filing number is not the register's (mapping/excel.py
#: ``explain`` words it in Chinese for operators).
NOT_REGISTERED = ("not a number of the register issued to this county "
                  "(the province's unified number is required)")
#: The field error of a 办结 whose number closes another case already.
NUMBER_USED = "the number closes another case already (one number, one case)"


def filing_no_errors(hub: Hub, s: Session, item: str, county: str, stage: str,
                     filing_no: str | None, case_id: int | None = None
                     ) -> list[tuple[str, str]]:
    """At 办结 of a presale permit or contract filing under the profile, ``filing_no``
    must be a live number of the register issued to ``county`` that closes no other
    case than ``case_id``: the field error, if not.

    Checked for every way a stage is applied (adapters/county_stages.py)."""
    kind = FILING_KINDS.get(item)
    if not hub.numbering.enabled or stage != "completed" or kind is None:
        return []
    if kind_of(filing_no) != kind or not register.is_registered(s, county, filing_no):  # type: ignore[arg-type]
        return [("filing_no", NOT_REGISTERED)]
    if case_id is not None and register.used_by_other(s, filing_no, case_id):  # type: ignore[arg-type]
        return [("filing_no", NUMBER_USED)]
    return []


def claim_errors(hub: Hub, s: Session, item: str, case_id: int, stage: str,
                 filing_no: str | None) -> list[tuple[str, str]]:
    """A 办结 recorded under the profile binds its number to the case, in the same
    transaction (``store.numbering.claim_for_case``): the field error if another case
    took it first — the caller then rolls back."""
    if not hub.numbering.enabled or stage != "completed" or item not in FILING_KINDS:
        return []
    try:
        register.claim_for_case(s, filing_no or "", case_id)
    except register.NumberUsed:
        return [("filing_no", NUMBER_USED)]
    return []


# --------------------------------------------------------------------------- registration


def register_routes(app: Flask, hub: Hub) -> None:
    """Add the numbering endpoints (each answers 4001 while no profile is configured)."""

    @app.post(f"{PREFIX}/numbers/presale-permit")
    @inbound("county.numbers.presale-permit", party=PARTY)
    def numbers_presale():  # type: ignore[no-untyped-def]
        return handle_presale(hub_of_app())

    @app.post(f"{PREFIX}/numbers/contract-filing")
    @inbound("county.numbers.contract-filing", party=PARTY)
    def numbers_contract():  # type: ignore[no-untyped-def]
        return handle_contract(hub_of_app())

    @app.post(f"{PREFIX}/numbers/materials")
    @inbound("county.numbers.materials", party=PARTY)
    def numbers_material():  # type: ignore[no-untyped-def]
        return handle_upload(hub_of_app())

    @app.post(f"{PREFIX}/numbers/<number>/cancel")
    @inbound("county.numbers.cancel", party=PARTY)
    def numbers_cancel(number: str):  # type: ignore[no-untyped-def]
        return handle_cancel(hub_of_app(), number[:40])

    @app.get(f"{PREFIX}/numbers/<number>/qr.png")
    @inbound("county.numbers.qr", party=PARTY)
    def numbers_qr_png(number: str):  # type: ignore[no-untyped-def]
        return handle_qr(hub_of_app(), number[:40], "png")

    @app.get(f"{PREFIX}/numbers/<number>/qr.svg")
    @inbound("county.numbers.qr", party=PARTY)
    def numbers_qr_svg(number: str):  # type: ignore[no-untyped-def]
        return handle_qr(hub_of_app(), number[:40], "svg")

    @app.post(f"{PREFIX}/projects/<project_code>/acceptance")
    @inbound("county.projects.acceptance", party=PARTY)
    def projects_acceptance(project_code: str):  # type: ignore[no-untyped-def]
        return handle_acceptance(hub_of_app(), project_code[:64])
