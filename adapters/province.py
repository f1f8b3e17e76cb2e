"""Provincial platform (省厅平台): applications in, stages and results pushed back.

Inbound (province.md): ``POST /api/province/v1/{item}`` for every item the province
sends, ``POST /api/province/v1/materials`` (multipart upload) and
``GET /api/province/v1/materials/{file_id}`` (the upload's ``url``, signed callers only),
plus the OpenAPI document at ``/api/openapi.json``. Every endpoint goes through
``adapters.web.inbound`` (call log, envelope, 5000 with a reference id).

Outbound: ``/status``, ``/results`` and ``/review-link`` through the outbox, signed
under the hub's app id. Any answer but ``0000`` is retried (the province's contract
says so), never parked at once as a permanent failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request

from adapters.auth import authenticate, authenticate_deferred, read_body
from adapters.base import DeliveryResult, OutgoingMessage, Partner
from adapters.calls import Check
from adapters.http import HttpJsonAdapter
from adapters.intake import Intake
from adapters.json_body import parse_json
from adapters.web import ApiError, call_context, envelope, hub_of_app, inbound
from mapping.items import province_items
from mapping.validators import apply_no_ok
from store import files
from store.cases import PROVINCE
from store.content import ContentLimits
from store.resilience import ambiguous

if TYPE_CHECKING:
    from flask import Flask

BASE = "/api/province/v1"
PROVINCE_ITEMS = {item.code: item for item in province_items()}
#: Extra bytes a multipart body may carry around the file itself.
MULTIPART_OVERHEAD = 64 * 1024


def is_province(partner: Partner) -> bool:
    """The partners that may call the province's endpoints (the app id, or role: province)."""
    return partner.app_id == PROVINCE or partner.options.get("role") == "province"


def review_url(result: DeliveryResult) -> str | None:
    """The url of a review-link answer, if it carries one."""
    data = (result.response or {}).get("data") if isinstance(result.response, dict) else None
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) and url else None


def _has_review_url(result: DeliveryResult) -> str | None:
    return None if review_url(result) else "the province's answer has no url"


def _interface(item: str) -> str:
    return f"province.in.{item}" if item in PROVINCE_ITEMS else "province.in.unknown"


class ProvinceAdapter(HttpJsonAdapter):
    """Pushes ``/status``, ``/results`` and ``/review-link`` to the province (province.md)."""

    alias = "province"

    def deliver(self, message: OutgoingMessage) -> DeliveryResult:
        result = super().deliver(message)
        result.permanent = False  # province.md: anything but 0000 is retried
        return result

    def ask(self, operation: str, payload: Any, interface: str, division: str | None = None,
            item: str | None = None, case_id: int | None = None,
            check: Check | None = None) -> DeliveryResult:
        """Call the province at once, call-logged, on the hub's one logged-call path
        (``adapters.calls``): every synchronous call to the province goes here."""
        return self.hub.calls.call(PROVINCE, operation, payload, interface, division=division,
                                   item=item, case_id=case_id, check=check)

    def review_link(self, apply_no: str, item: str, county_code: str | None,
                    case_id: int | None = None) -> str | None:
        """Ask the province for the 好差评 link at once (call-logged); None if it fails."""
        result = self.review_link_call(apply_no, item, county_code, case_id)
        return review_url(result) if result.ok else None

    def review_link_call(self, apply_no: str, item: str, county_code: str | None,
                         case_id: int | None = None) -> DeliveryResult:
        """The review-link call itself; an answer without a url is logged as an error."""
        payload = {"apply_no": apply_no, "item": item, "county_code": county_code}
        return self.ask("review-link", payload, "province.review-link", county_code, item,
                        case_id, check=_has_review_url)

    # ------------------------------------------------------------------ inbound

    def register_inbound(self, app: Flask) -> None:
        hub = self.hub
        intake = Intake(hub)
        limits = hub.config.limits

        @app.get("/api/openapi.json", endpoint="province_openapi")
        def openapi_document():  # type: ignore[no-untyped-def]
            from adapters.openapi import document

            return jsonify(document(hub))

        @app.post(f"{BASE}/materials", endpoint="province_material_upload")
        @inbound("province.in.materials", party=PROVINCE)
        def upload_material():  # type: ignore[no-untyped-def]
            body = read_body(limits.max_material_bytes + MULTIPART_OVERHEAD)
            partner = authenticate(hub, body, allow=is_province,
                                   interface="province.in.materials")
            return _save_material(partner, limits.max_material_bytes)

        @app.get(f"{BASE}/materials/<file_id>", endpoint="province_material_get")
        @inbound("province.in.materials.get", party=PROVINCE)
        def get_material(file_id: str):  # type: ignore[no-untyped-def]
            partner = authenticate(hub, read_body(0))
            return _serve_material(partner, file_id)

        @app.post(f"{BASE}/<item>", endpoint="province_submit")
        @inbound(_interface, party=PROVINCE)
        def submit(item: str):  # type: ignore[no-untyped-def]
            body = read_body(limits.max_body_bytes)
            known = PROVINCE_ITEMS.get(item)
            _, nonce = authenticate_deferred(
                hub, body, allow=is_province, item=item if known else None,
                interface=_interface(item) if known else None)
            # The nonce commits with the case (one transaction); where none commits, it is
            # recorded on its own first, so a replay is still 1003 before anything else.
            try:
                if known is None:
                    raise ApiError("4001", f"unknown item {item[:64]!r}")
                answer = intake.submit(known, parse_json(body), nonce)
            except Exception as exc:
                # Lost during COMMIT: the request may be stored with its nonce; recording
                # the nonce now would turn the honest 5000 into a misleading 1003.
                if not ambiguous(exc):
                    nonce.settle()
                raise
            nonce.settle()
            return answer


# ---------------------------------------------------------------------- materials


def _save_material(partner: Partner, max_bytes: int) -> dict[str, Any]:
    hub = hub_of_app()
    if request.mimetype != "multipart/form-data":
        raise ApiError("2001", "materials are uploaded as multipart/form-data")
    try:
        form, uploads = request.form, request.files
    except Exception:  # a malformed multipart body
        raise ApiError("2001", "the multipart body cannot be parsed") from None
    errors: list[dict[str, str]] = []
    code = "2002"
    apply_no = form.get("apply_no")
    if not apply_no_ok(apply_no):
        errors.append({"field": "apply_no", "reason": "required: 1-64 of A-Z, a-z, 0-9, _ and -"})
    county_code = form.get("county_code")
    if not county_code:
        errors.append({"field": "county_code", "reason": "required"})
    elif not hub.city.is_county(county_code):
        errors.append({"field": "county_code",
                       "reason": f"{county_code[:16]} is not a county of {hub.city.code}"})
        code = "2004"
    upload = uploads.get("file")
    data, content_type = b"", ""
    if upload is None:
        errors.append({"field": "file", "reason": "required"})
    else:
        data = upload.read(max_bytes + 1)
        try:
            content_type = files.check(data, max_bytes, ContentLimits.of(hub.config.limits),
                                       upload.filename, upload.mimetype)
        except files.FileRejected as exc:
            errors.append({"field": "file", "reason": exc.reason})
    call_context().division = county_code if county_code and code != "2004" else None
    if errors:
        raise ApiError(code, f"{len(errors)} field(s) missing or invalid", errors)
    name = (upload.filename if upload is not None else None) or "material"
    with hub.transaction() as s:
        saved = files.save(s, hub.cipher, data, name, max_bytes=max_bytes, apply_no=apply_no,
                           county_code=county_code, uploaded_by=partner.app_id,
                           checked=content_type)
    public = hub.config.public_url
    url = f"{public.rstrip('/')}{BASE}/materials/{saved.file_id}"
    return envelope("0000", "stored", {"file_id": saved.file_id, "url": url,
                                       "sha256": saved.sha256, "size": saved.size,
                                       "content_type": saved.content_type})


def _serve_material(partner: Partner, file_id: str) -> Response:
    hub = hub_of_app()
    with hub.db.session() as s:
        found = files.load(s, hub.cipher, file_id[:64])
    if found is None:
        raise ApiError("4001", "no such material")
    info, data = found
    if not (is_province(partner) or (partner.division and partner.division == info.county_code)):
        raise ApiError("1004", f"app {partner.app_id} may not read this county's materials")
    resp = Response(data, mimetype=info.content_type)
    resp.headers["ETag"] = f'"{info.sha256}"'
    resp.headers["X-Content-SHA256"] = info.sha256
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
