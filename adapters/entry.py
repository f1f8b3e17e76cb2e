"""一网通办: an applicant handed over from the province's portal (contracts/identity.md).

``POST /entry/{item}`` takes the province's signed handover token (adapters/entry_token.py);
a good one is stored once (its ``jti`` is unique: a token is used once) as a pending
handover, and the applicant confirms it on the page that answers (the last 4 characters
of their ID number): only then does the session open — a random handle in an HttpOnly,
SameSite=Strict cookie on ``/entry``, 30 minutes, reaching only that handover. A token
posted into another person's browser from another site (login CSRF) so never becomes
their session. Refused posts are throttled per source address as the sign-in is.
The applicant sees the handed-over fields read-only, fills in the item's own fields,
uploads materials (the province API's decode checks, store/files.py) and submits: the
application goes through the SAME intake as ``POST /api/province/v1/{item}``
(adapters/intake.py: validation, idempotency on (item, apply_no), routing, status pushes
to the province), and a receipt shows the case number. Every refusal is a Chinese error
page and creates nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, g, make_response, redirect, render_template, request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from adapters.base import Adapter
from adapters.entry_token import REFUSALS, Handover, HandoverRefused, verify
from adapters.intake import Intake
from admin.identity_config import identity_of
from admin.lockout import address_attempt, take_back
from mapping.items import ITEMS, ItemKind, province_items
from mapping.names import name
from mapping.province_in import ValidationFailure, parse_application
from mapping.reasons import in_chinese
from store import files
from store.calllog import CallRecord, write_call
from store.content import ContentLimits
from store.identity_models import EntryHandover, EntryRefusal
from store.models import utcnow

if TYPE_CHECKING:
    from hub import Hub

COOKIE = "cityhub_entry"
#: The handover posted but not yet confirmed in this browser (see ``handover``).
PENDING_COOKIE = "cityhub_entry_pending"
#: How long a handover waits for the applicant's confirmation.
PENDING_MINUTES = 5
CONFIRM_DIGITS = 4
#: Wrong confirmations one handover takes, from any addresses, before it is spent: the
#: per-address throttle alone let guesses from many addresses at one pending handover.
CONFIRM_TRIES = 5
THROTTLED = "来自您所在网络地址的无效办理请求过多，请稍后再从省政务服务网进入"
CONFIRM_WRONG = "证件号码后四位不正确，请核对后重新输入；如果不是您本人的申请，请关闭本页"
#: Items an applicant may be handed over for: the province's applications (a query's
#: answer goes back to the province, not to a page).
ENTRY_ITEMS = frozenset(i.code for i in province_items() if i.kind is ItemKind.APPLICATION)
MAX_MATERIALS = 20
#: Field kinds the applicant's form offers (``co_owners`` only through the province API).
FORM_KINDS = ("str", "id_no", "uscc", "decimal", "bool", "list_str", "unit_code")
CST = timedelta(hours=8)
UPLOAD_REFUSED = "文件无法接收：仅支持 PDF、JPEG、PNG，且须完好、不超过大小限制"

bp = Blueprint("entry", __name__, template_folder="templates")


def _hub() -> Hub:
    from flask import current_app

    return current_app.extensions["cityhub"]


def _hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


def _csrf(handle: str, purpose: bytes = b"entry-csrf:") -> str:
    from flask import current_app

    return hmac.new(current_app.secret_key if isinstance(current_app.secret_key, bytes)
                    else str(current_app.secret_key).encode(),
                    purpose + handle.encode(), hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- the throttle


def _source() -> str:
    """The source address as the operators' sign-in reads it (admin.trusted_proxies)."""
    from admin.auth import source_address, trusted_proxies

    return source_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                          trusted_proxies(_hub()))


def _attempt(remote: str) -> int | None:
    """Count this post as refused before it is checked (``admin.lockout.address_attempt``,
    the operators' sign-in window: ``admin.address_failure_limit`` /
    ``admin.address_failure_minutes``): the count's id, or None when ``remote`` had too
    many refused handovers (or wrong confirmations)."""
    from admin.auth import throttle_of

    hub = _hub()
    throttle = throttle_of(hub)
    with hub.transaction() as s:
        return address_attempt(s, EntryRefusal, remote[:64], utcnow(), throttle.limit,
                               throttle.window)


def _guess(handover_id: int) -> int | None:
    """Count a confirmation of one pending handover before it is checked, whatever its
    address: the count's id, or None when the handover had ``CONFIRM_TRIES`` wrong ones."""
    with _hub().transaction() as s:
        return address_attempt(s, EntryRefusal, f"handover:{handover_id}", utcnow(),
                               CONFIRM_TRIES, timedelta(minutes=PENDING_MINUTES))


def _accepted(attempt: int) -> None:
    """The post was good: its count is taken back."""
    with _hub().transaction() as s:
        take_back(s, EntryRefusal, attempt)


def _page(template: str, status: int = 200, **ctx: Any):  # type: ignore[no-untyped-def]
    resp = make_response(render_template(template, city=_hub().city, **ctx), status)
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
    return resp


def _error(reason: str, status: int = 400):  # type: ignore[no-untyped-def]
    return _page("entry_error.html", status, message=REFUSALS[reason])


def _log(interface: str, outcome: str, item: str | None = None, division: str | None = None,
         case_id: int | None = None, error: str | None = None, started: float = 0.0) -> None:
    """A call-log row for the handover or an upload (never the token: it holds personal data)."""
    hub = _hub()
    record = CallRecord(interface=interface, direction="in", party="province",
                        started_at=utcnow(), item=item, division=division, case_id=case_id)
    record.outcome, record.error = outcome, error
    record.duration_ms = (time.perf_counter() - started) * 1000 if started else 0.0
    record.request = {"mimetype": request.mimetype, "length": request.content_length}
    with hub.db.session() as s:
        write_call(s, hub.cipher, record)


def _session_row(s: Any) -> EntryHandover | None:
    handle = request.cookies.get(COOKIE, "")
    if not handle or len(handle) > 128:
        return None
    row = s.scalars(select(EntryHandover).where(EntryHandover.handle_hash == _hash(handle))
                    ).first()
    if row is None or row.confirmed_at is None or row.session_expires_at <= utcnow():
        return None
    return row


def _pending_row(s: Any) -> EntryHandover | None:
    handle = request.cookies.get(PENDING_COOKIE, "")
    if not handle or len(handle) > 128:
        return None
    row = s.scalars(select(EntryHandover).where(EntryHandover.handle_hash == _hash(handle))
                    ).first()
    if row is None or row.confirmed_at is not None or row.session_expires_at <= utcnow():
        return None
    return row


def _confirm_code(claims: dict[str, Any]) -> str:
    """What the applicant types to confirm: the last characters of their ID number (or
    of the USCC): the person a handover posted from another site lands on does not know
    the attacker's."""
    applicant = claims.get("applicant") or {}
    ident = str(applicant.get("id_no") or applicant.get("uscc") or "")
    return ident[-CONFIRM_DIGITS:].upper()


def _csrf_ok() -> bool:
    handle = request.cookies.get(COOKIE, "")
    sent = request.form.get("csrf_token", "")
    return bool(handle) and hmac.compare_digest(sent.encode(), _csrf(handle).encode())


def _masked(value: str | None) -> str:
    if not value:
        return ""
    return value[:3] + "*" * max(0, len(value) - 7) + value[-4:] if len(value) > 7 else "****"


def _form_fields(item_code: str) -> list[dict[str, Any]]:
    item = ITEMS[item_code]
    return [{"name": f.name, "kind": f.kind, "required": f.required,
             "label": name("fields", f.name), "choices": f.choices}
            for f in item.fields if f.kind in FORM_KINDS]


def _data_of(item_code: str, form: Any) -> dict[str, Any]:
    """The item's ``data`` from the applicant's form (empty fields left out)."""
    data: dict[str, Any] = {}
    for f in _form_fields(item_code):
        raw = str(form.get(f["name"], ""))[:2000].strip()
        if f["kind"] == "bool":
            if raw in ("true", "false"):
                data[f["name"]] = raw == "true"
        elif f["kind"] == "list_str":
            lines = [line.strip() for line in raw.splitlines() if line.strip()]
            if lines:
                data[f["name"]] = lines[:200]
        elif raw:
            data[f["name"]] = raw
    return data


def _view(row: EntryHandover, **ctx: Any):  # type: ignore[no-untyped-def]
    claims = json.loads(row.claims)
    applicant = claims["applicant"]
    uploaded = json.loads(row.files or "[]")
    handle = request.cookies.get(COOKIE, "")
    shown = {"name": applicant.get("name") or "", "id_no": _masked(applicant.get("id_no")),
             "uscc": applicant.get("uscc") or "", "phone": _masked(applicant.get("phone"))}
    return _page("entry_form.html", ctx.pop("status", 200), row=row,
                 item_name=name("items", row.item),
                 county_name=_hub().city.counties.get(row.county_code, row.county_code),
                 applicant=shown, fields=_form_fields(row.item), uploaded=uploaded,
                 csrf_token=_csrf(handle), values=ctx.pop("values", {}), **ctx)


@bp.post("/entry/<item>")
def handover(item: str):  # type: ignore[no-untyped-def]
    """The province's portal posts the token (cross-site, by design). A good one is
    stored as a *pending* handover and answered with a confirmation page: the session
    opens only when the applicant confirms in this browser (``confirm``) — an attacker's
    token posted from another site (login CSRF) never becomes the visitor's session.
    Refused posts are counted per source address and throttled like the sign-in."""
    hub = _hub()
    started = time.perf_counter()
    settings = identity_of(hub.config).entry
    partner = hub.partners.get(settings.partner)
    interface = "entry.handover"
    attempt = _attempt(_source())
    if attempt is None:
        _log(interface, "rejected", item=item[:64] if item in ITEMS else None,
             error="throttled", started=started)
        return _page("entry_error.html", 429, message=THROTTLED)
    token = request.form.get("token", "") if request.mimetype == \
        "application/x-www-form-urlencoded" else ""
    try:
        if partner is None or not partner.secret:
            raise HandoverRefused("signature")
        found = verify(token, item[:64], secret=partner.secret, issuer=settings.issuer,
                       audience=settings.audience, items=ENTRY_ITEMS,
                       is_county=hub.city.is_county, max_bytes=settings.max_token_bytes)
        handle = secrets.token_urlsafe(32)
        now = utcnow()
        try:
            with hub.transaction() as s:
                s.add(EntryHandover(
                    jti=found.jti, handle_hash=_hash(handle), item=found.item,
                    apply_no=found.apply_no, county_code=found.county_code,
                    claims=json.dumps(found.claims(), ensure_ascii=False), files="[]",
                    token_exp=datetime.fromtimestamp(found.exp, UTC).replace(tzinfo=None),
                    session_expires_at=now + timedelta(minutes=PENDING_MINUTES),
                    created_at=now, confirmed_at=None))
        except IntegrityError:
            raise HandoverRefused("reused") from None
    except HandoverRefused as refused:
        _log(interface, "rejected", item=item[:64] if item in ITEMS else None,
             error=refused.reason, started=started)
        return _error(refused.reason, 403 if refused.reason != "item" else 404)
    _accepted(attempt)
    _log(interface, "ok", item=found.item, division=found.county_code, started=started)
    resp = _confirm_page(found.claims(), handle)
    _set_cookie(resp, PENDING_COOKIE, handle, PENDING_MINUTES)
    return resp


def _set_cookie(resp: Any, name_: str, value: str, minutes: int) -> None:
    """HttpOnly, SameSite=Strict: sent only with requests this site's own pages make."""
    resp.set_cookie(name_, value, max_age=minutes * 60, path="/entry", httponly=True,
                    samesite="Strict",
                    secure=_hub().config.public_url.lower().startswith("https://"))


def _confirm_page(claims: dict[str, Any], handle: str, status: int = 200,
                  error: str | None = None):  # type: ignore[no-untyped-def]
    applicant = claims["applicant"]
    return _page("entry_confirm.html", status, item_name=name("items", claims["item"]),
                 county_name=_hub().city.counties.get(claims["county_code"],
                                                      claims["county_code"]),
                 apply_no=claims["apply_no"], applicant_name=applicant.get("name") or "",
                 id_masked=_masked(applicant.get("id_no") or applicant.get("uscc")),
                 digits=CONFIRM_DIGITS, csrf_token=_csrf(handle, b"entry-confirm:"),
                 error=error)


@bp.post("/entry/s/confirm")
def confirm():  # type: ignore[no-untyped-def]
    """The applicant confirms the handover in the browser it was posted to, with the
    last characters of their ID number: the session opens (a new handle) once."""
    hub = _hub()
    handle = request.cookies.get(PENDING_COOKIE, "")
    sent = request.form.get("csrf_token", "")
    with hub.db.session() as s:
        row = _pending_row(s)
        if row is None or not hmac.compare_digest(
                sent.encode(), _csrf(handle, b"entry-confirm:").encode()):
            return _error("session", 403)
        claims = json.loads(row.claims)
        row_id = row.id
    attempt = _attempt(_source())  # only the guess of the ID's characters is counted
    if attempt is None:
        return _page("entry_error.html", 429, message=THROTTLED)
    guess = _guess(row_id)
    if guess is None:
        _accepted(attempt)  # the address is not to blame for this handover's guesses
        return _error("spent", 403)
    typed = str(request.form.get("id_tail", ""))[:16].strip().upper()
    if not typed or not hmac.compare_digest(typed.encode(), _confirm_code(claims).encode()):
        return _confirm_page(claims, handle, 400, CONFIRM_WRONG)
    _accepted(attempt)
    _accepted(guess)
    settings = identity_of(hub.config).entry
    session_handle = secrets.token_urlsafe(32)
    now = utcnow()
    with hub.transaction() as s:
        opened = s.execute(update(EntryHandover).where(
            EntryHandover.id == row_id, EntryHandover.confirmed_at.is_(None),
            EntryHandover.handle_hash == _hash(handle))
            .values(handle_hash=_hash(session_handle), confirmed_at=now,
                    session_expires_at=now + timedelta(minutes=settings.session_minutes))
            .execution_options(synchronize_session=False)).rowcount
    if opened != 1:  # confirmed already (a second tab): that tab holds the session
        return _error("session", 403)
    resp = redirect("/entry/s/form", code=303)
    _set_cookie(resp, COOKIE, session_handle, settings.session_minutes)
    resp.delete_cookie(PENDING_COOKIE, path="/entry")
    return resp


@bp.get("/entry/s/form")
def form():  # type: ignore[no-untyped-def]
    with _hub().db.session() as s:
        row = _session_row(s)
        if row is None:
            return _error("session", 403)
        if row.case_no:
            return redirect("/entry/s/receipt", code=303)
        return _view(row)


@bp.post("/entry/s/material")
def material():  # type: ignore[no-untyped-def]
    hub = _hub()
    started = time.perf_counter()
    limits = hub.config.limits
    with hub.db.session() as s:
        row = _session_row(s)
        if row is None or not _csrf_ok():
            return _error("session", 403)
        s.expunge(row)
    if row.case_no:
        return redirect("/entry/s/receipt", code=303)
    upload = request.files.get("file")
    if len(json.loads(row.files or "[]")) >= MAX_MATERIALS:
        return _view(row, status=400, upload_error=f"最多上传 {MAX_MATERIALS} 份材料")
    if upload is None or not upload.filename:
        return _view(row, status=400, upload_error="请选择要上传的文件")
    data = upload.read(limits.max_material_bytes + 1)
    try:
        checked = files.check(data, limits.max_material_bytes, ContentLimits.of(limits),
                              upload.filename, upload.mimetype)
    except files.FileRejected as exc:
        _log("entry.material", "rejected", item=row.item, division=row.county_code,
             error=exc.reason[:200], started=started)
        return _view(row, status=400, upload_error=UPLOAD_REFUSED)
    filename = upload.filename.replace("\\", "/").rsplit("/", 1)[-1][:100] or "material"
    with hub.transaction() as s:  # locked and counted again: parallel uploads of one session
        stored = s.get(EntryHandover, row.id, with_for_update=True)
        assert stored is not None
        if len(json.loads(stored.files or "[]")) >= MAX_MATERIALS:
            return _view(row, status=400, upload_error=f"最多上传 {MAX_MATERIALS} 份材料")
        saved = files.save(s, hub.cipher, data, filename, max_bytes=limits.max_material_bytes,
                           apply_no=row.apply_no, county_code=row.county_code,
                           uploaded_by="entry", checked=checked)
        uploaded = json.loads(stored.files or "[]")
        uploaded.append({"file_id": saved.file_id, "name": filename})
        stored.files = json.dumps(uploaded, ensure_ascii=False)
    _log("entry.material", "ok", item=row.item, division=row.county_code, started=started)
    return redirect("/entry/s/form", code=303)


@bp.post("/entry/s/submit")
def submit():  # type: ignore[no-untyped-def]
    hub = _hub()
    with hub.db.session() as s:
        row = _session_row(s)
        if row is None or not _csrf_ok():
            return _error("session", 403)
        s.expunge(row)
    if row.case_no:
        return redirect("/entry/s/receipt", code=303)
    claims = json.loads(row.claims)
    doc = {
        "apply_no": row.apply_no, "city_code": hub.city.code,
        "county_codes": [row.county_code], "applicant": claims["applicant"],
        "submitted_at": (datetime.now(UTC)).isoformat(timespec="seconds"),
        "data": _data_of(row.item, request.form),
        "materials": json.loads(row.files or "[]"),
    }
    item = ITEMS[row.item]
    try:  # the province API's validation first: the applicant corrects the form
        parse_application(item, doc, hub.city)
    except ValidationFailure as failure:
        problems = [f"{name('fields', e.field.removeprefix('data.'))}：{in_chinese(e.reason)}"
                    for e in failure.errors]
        return _view(row, status=400, problems=problems, values=request.form)
    answer = _intake_submit(hub, item, doc)
    if answer.get("code") != "0000":
        return _view(row, status=400, values=request.form,
                     problems=[f"提交未成功（{answer.get('code')}），请稍后重试"])
    with hub.transaction() as s:
        stored = s.get(EntryHandover, row.id)
        if stored is not None:
            stored.case_no = answer["data"]["case_no"]
    return redirect("/entry/s/receipt", code=303)


def _intake_submit(hub: Hub, item: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """``Intake.submit`` inside the call-log context the province API's decorator makes."""
    record = CallRecord(interface=f"entry.in.{item.code}", direction="in", party="province",
                        started_at=utcnow())
    g.call_record, g.call_started, g.call_logged = record, time.perf_counter(), False
    answer = Intake(hub).submit(item, doc)
    if not g.call_logged:
        record.duration_ms = (time.perf_counter() - g.call_started) * 1000
        record.code = str(answer.get("code"))
        record.outcome = "ok" if record.code == "0000" else "rejected"
        record.response = answer
        record.request = {"mimetype": request.mimetype, "length": request.content_length}
        with hub.db.session() as s:
            write_call(s, hub.cipher, record)
    return answer


@bp.get("/entry/s/receipt")
def receipt():  # type: ignore[no-untyped-def]
    from store.models import Case

    hub = _hub()
    with hub.db.session() as s:
        row = _session_row(s)
        if row is None:
            return _error("session", 403)
        if not row.case_no:
            return redirect("/entry/s/form", code=303)
        case = s.scalars(select(Case).where(Case.case_no == row.case_no)).first()
        subs = [] if case is None else list(s.scalars(
            select(Case.case_no).where(Case.parent_id == case.id)))
        received = "" if case is None else (case.created_at + CST).strftime("%Y-%m-%d %H:%M:%S")
        refused = None if case is None else _refusal(s, case.id)
        return _page("entry_receipt.html", row=row, item_name=name("items", row.item),
                     county_name=hub.city.counties.get(row.county_code, row.county_code),
                     received=received, subs=subs, refused=refused)


def _refusal(s: Any, case_id: int) -> str | None:
    """Why the case or one of its sub-cases was 不予受理 at once (the 失信被执行人 rule),
    or None: the applicant's receipt says so instead of 「已收件」."""
    from store.models import Case, StageEvent

    opinion = s.scalar(select(StageEvent.opinion).join(Case, Case.id == StageEvent.case_id)
                       .where((Case.id == case_id) | (Case.parent_id == case_id),
                              StageEvent.stage == "rejected").order_by(StageEvent.id).limit(1))
    return None if opinion is None else (opinion or "不予受理")


class EntryAdapter(Adapter):
    """The 一网通办 entry's pages (config ``inbound: [..., entry]``)."""

    alias = "entry"
    delivers = False

    def register_inbound(self, app: Flask) -> None:
        identity_of(self.hub.config)  # a bad ``identity`` config fails at start-up
        if "entry" not in app.blueprints:
            app.register_blueprint(bp)


__all__ = ["EntryAdapter", "Handover", "HandoverRefused"]
