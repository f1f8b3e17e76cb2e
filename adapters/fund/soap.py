"""The SOAP endpoint ``/soap/fund``: hardened XML in front of spyne, and the call log.

Every POST is checked here before spyne sees it: a size limit
(``limits.max_soap_bytes``), the HTTP charset when the XML names none, no DOCTYPE (so
no entities, no "billion laughs", no XXE), a parser with entities, DTDs and network
off, a SOAP 1.1 envelope (another envelope namespace: ``VersionMismatch``) naming one
known operation, its mandatory headers (``MustUnderstand`` unless the hub processes
them: ``AuthToken``, and WS-Security for a bank configured for it, ``adapters.fund.wsse``)
and validation of that operation's element against the service's own XML Schema.
Refusals are SOAP faults (malformed, 2001) or the operation's answer with ``2002``
(a field breaks the schema; the first such field named); the desk is then handed the
operation's arguments (``adapters.fund.service.read_arguments``) and the desk answers;
spyne itself only declares the service. One call-log row is written per call, with
passwords and tokens masked. ``GET ?wsdl`` answers ``adapters.fund.wsdl``'s fixed
document (its address is ``public_url``, never the request's Host).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, request
from lxml import etree
from spyne.error import ValidationError
from sqlalchemy.orm import Session

from adapters.fund import wsse
from adapters.fund.desk import FundDesk
from adapters.fund.envelope import (
    CharsetError,
    drop_builtin_xsi_types,
    first_field_error,
    header_entries,
    not_understood,
    transcode,
)
from adapters.fund.ledger import ITEM, Answer, SoapCall
from adapters.fund.service import (
    ANSWERS,
    NS,
    OPERATIONS,
    FundService,
    build_application,
    no_token,
    read_arguments,
)
from adapters.fund.values import check_values
from adapters.fund.wsdl import build_wsdl
from mapping.fund import BAD_TOKEN, INVALID, MALFORMED, MOVEMENTS, OK
from store.calllog import CallRecord, logged, write_call
from store.models import utcnow
from store.outbox import new_rows_committed

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.fund.soap")
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PATH = "/soap/fund"
_DOCTYPE = re.compile(rb"<!\s*DOCTYPE|<!\s*ENTITY", re.IGNORECASE)
_SECRET = re.compile(
    rb"(<(?:[\w.-]+:)?(?:password|token|AuthToken|Password|Nonce)\b[^>]*>)[^<]*",
)
#: faultcodes answered with the SOAP 1.1 namespace's own meaning (no result code detail:
#: SOAP 1.1 section 4.4 keeps detail for errors of the body).
VERSION_MISMATCH, MUST_UNDERSTAND = "soap:VersionMismatch", "soap:MustUnderstand"
FAILED_AUTHENTICATION = "wsse:FailedAuthentication"


def hardened_parser() -> etree.XMLParser:
    """No entities, DTDs or network; processing instructions and comments dropped at
    parse time, so a value's text is whole (``<amount>1<!-- -->0.00</amount>`` validated
    as 10.00 and was booked as the 1 before the comment)."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_pis=True,
                           remove_comments=True, collect_ids=False)


class Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 500,
                 faultcode: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status
        self.faultcode = faultcode


def fault_response(code: str, message: str, status: int = 500,
                   faultcode: str | None = None) -> Response:
    nsmap = {"soap": SOAP_ENV, **({"wsse": wsse.WSSE} if faultcode == FAILED_AUTHENTICATION
                                  else {})}
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    fault = etree.SubElement(etree.SubElement(env, f"{{{SOAP_ENV}}}Body"), f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = faultcode or (
        "soap:Client" if code < "5" else "soap:Server")
    about_headers = faultcode in (VERSION_MISMATCH, MUST_UNDERSTAND)
    etree.SubElement(fault, "faultstring").text = message if about_headers else f"{code} {message}"
    if not about_headers:
        etree.SubElement(etree.SubElement(fault, "detail"), f"{{{NS}}}result_code",
                         nsmap={"tns": NS}).text = code
    body = etree.tostring(env, xml_declaration=True, encoding="utf-8")
    return Response(body, status=status, content_type="text/xml; charset=utf-8")


def answer_response(operation: str, code: str, message: str,
                    extra: dict[str, Any] | None = None) -> Response:
    """The operation's own answer (``{op}Response/{op}Result``, as spyne wrote it): the
    result code and message, then the other fields of its result type in their declared
    order (``extra``; a field that is None is left out). Authenticate's required token
    and expiry default to ``no_token()``."""
    values = {**(no_token() if operation == "Authenticate" else {}), **(extra or {}),
              "result_code": code, "result_msg": message}
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap11env": SOAP_ENV, "tns": NS})
    body = etree.SubElement(env, f"{{{SOAP_ENV}}}Body")
    wrap = etree.SubElement(body, f"{{{NS}}}{operation}Response")
    result = etree.SubElement(wrap, f"{{{NS}}}{operation}Result")
    for name in ANSWERS[operation]:
        value = values.get(name)
        if value is not None:
            etree.SubElement(result, f"{{{NS}}}{name}").text = (
                value.isoformat() if isinstance(value, datetime) else str(value))
    data = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return Response(data, status=200, content_type="text/xml; charset=utf-8")


class FundSoapEndpoint:
    """The WSGI-facing half of the fund service (one per hub)."""

    def __init__(self, hub: Hub, desk: FundDesk) -> None:
        self.hub = hub
        self.desk = desk
        self.limit = hub.config.limits.max_soap_bytes
        self.application = build_application()
        schema = self.application.interface.docs.xml_schema
        schema.build_validation_schema()
        self.schema: etree.XMLSchema = schema.validation_schema
        self.operations = {f"{{{NS}}}{op}": op for op in OPERATIONS}
        self.fields = {op: tuple(FundService.public_methods[op].in_message._type_info)
                       for op in OPERATIONS}
        self.wsdl = build_wsdl(self.application, hub.config.public_url.rstrip("/") + PATH)
        self.wsse_banks = wsse.configured(desk.settings.partners)
        self.wsse_required = wsse.banks_requiring(self.wsse_banks)
        # SQLite writers queue in store.db (a flock taken at BEGIN, released at COMMIT);
        # no lock of our own around the whole call, so parsing and answering overlap.

    def mount(self, app: Flask) -> None:
        """``GET ?wsdl`` and the URL rule through Flask; a POST to ``PATH`` is taken
        before Flask's routing (no app-wide hooks apply to it; the call is its own
        error handler), which spares a second request object and context per call."""
        app.add_url_rule(PATH, "fund_soap", self.view, methods=["GET", "POST"])
        inner = app.wsgi_app

        def wsgi_app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "POST":
                return self.handle(Request(environ))(environ, start_response)
            return inner(environ, start_response)

        app.wsgi_app = wsgi_app  # type: ignore[method-assign]

    def view(self) -> Response:
        if request.method in ("GET", "HEAD"):  # HEAD as GET: 200 with ?wsdl, else 405
            if request.query_string.split(b"=")[0].lower() != b"wsdl":
                return fault_response(MALFORMED, "POST a SOAP 1.1 envelope, or GET ?wsdl", 405)
            return Response(self.wsdl, content_type="text/xml; charset=utf-8")
        return self.handle(request)

    # ---------------------------------------------------------------- one call

    def handle(self, req: Request) -> Response:
        """One call in ONE transaction: what it books and its call-log row commit together,
        before the answer leaves; if that commit fails the caller gets 5000, not 0000."""
        call = SoapCall()
        record = CallRecord(interface="soap.fund", direction="in", party="unknown",
                            started_at=utcnow(), item=ITEM)
        started = time.perf_counter()
        raw = b""
        regrouped = False
        session = Session(self.hub.db.engine, expire_on_commit=False)
        call.session = session
        try:
            try:
                raw = self._read(req)
                raw = self._transcode(raw, req.mimetype_params.get("charset"))
                element, header_token, signed = self._check(raw)
                call.operation = self.operations[element.tag]
                call.header_token = header_token
                record.interface = f"soap.fund.{call.operation}"
                if call.operation == "Authenticate":
                    self._check_signer(element.findtext(f"{{{NS}}}bank_code"), signed)
                drop_builtin_xsi_types(element)
                if not self.schema.validate(element):
                    call.code = INVALID
                    call.msg = first_field_error(self.schema.error_log,
                                                 self.fields[call.operation])[:500]
                    resp = answer_response(call.operation, INVALID, call.msg)
                elif (bad := check_values(call.operation, element)) is not None:
                    call.code, call.msg = INVALID, f"invalid field {bad}"[:500]
                    resp = answer_response(call.operation, INVALID, call.msg)
                else:
                    resp, regrouped = self._grouped(element, call, signed, record, started,
                                                    raw)
                    if resp is not None:  # booked and logged with concurrent calls
                        resp.headers["X-Ref-Id"] = record.ref_id
                        return resp
                    resp = self._dispatch(element, call)
                    if call.party != "unknown":
                        self._check_signer(call.party, signed)
            except Refused as exc:
                if exc.code == BAD_TOKEN:
                    session.rollback()  # the signer is not the caller: book nothing
                call.code, call.msg = exc.code, exc.message
                resp = fault_response(exc.code, exc.message, exc.status, exc.faultcode)
            except Exception:
                log.exception("fund SOAP call failed, ref %s", record.ref_id)
                call.code = "5000"
                resp = fault_response("5000", f"internal error, reference {record.ref_id}")
            if call.code in (None, "5000"):
                session.rollback()  # book nothing of a call that failed half way
            self._fill(record, call, started, raw, resp)
            try:
                # a group that failed may have committed after all (its connection lost
                # during COMMIT, then run again): its call-log row is this call's
                if not (regrouped and logged(session, record.ref_id)):
                    write_call(session, self.hub.cipher, record)
                session.commit()
            except Exception:
                log.exception("commit of fund SOAP call failed, ref %s", record.ref_id)
                session.rollback()
                call.code = "5000"
                resp = fault_response("5000", f"internal error, reference {record.ref_id}")
                self._fill(record, call, started, raw, resp)
                self._log_alone(record)
        finally:
            session.close()
        # queued messages wake the workers on commit (store.outbox's after-commit signal)
        resp.headers["X-Ref-Id"] = record.ref_id
        return resp

    @staticmethod
    def _fill(record: CallRecord, call: SoapCall, started: float, raw: bytes,
              resp: Response) -> None:
        record.duration_ms = (time.perf_counter() - started) * 1000
        record.party, record.division, record.code = call.party, call.division, call.code
        record.outcome = ("ok" if call.code == "0000" else
                          "error" if call.code in (None, "5000") else "rejected")
        record.error = None if record.outcome == "ok" else call.msg
        record.request = _mask(raw)
        record.response = _mask(resp.get_data())

    def _log_alone(self, record: CallRecord) -> None:
        try:
            with self.hub.db.session() as s:
                write_call(s, self.hub.cipher, record)
        except Exception:  # the answer stands even when the log is down
            log.exception("could not write the call log for ref %s", record.ref_id)

    def _read(self, req: Request) -> bytes:
        length = req.content_length
        if length is not None and length > self.limit:
            raise Refused(MALFORMED, f"request larger than {self.limit} bytes", 413)
        data = req.stream.read(self.limit + 1)
        if len(data) > self.limit:
            raise Refused(MALFORMED, f"request larger than {self.limit} bytes", 413)
        if not data:
            raise Refused(MALFORMED, "empty request")
        return data

    def _check(self, raw: bytes) -> tuple[Any, str | None, wsse.WsseBank | None]:
        if _DOCTYPE.search(raw) or b"<\x00!\x00" in raw:
            raise Refused(MALFORMED, "DOCTYPE and entity declarations are not accepted")
        try:
            root = etree.fromstring(raw, hardened_parser())
        except etree.XMLSyntaxError as exc:
            raise Refused(MALFORMED, f"not well-formed XML: {exc}") from None
        tree = root.getroottree()
        if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
            raise Refused(MALFORMED, "DOCTYPE and entity declarations are not accepted")
        if etree.QName(root).localname == "Envelope" and root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise Refused(MALFORMED, f"SOAP 版本不符：只接受 SOAP 1.1 信封（命名空间 {SOAP_ENV}），"
                                     f"收到 {(etree.QName(root).namespace or '无命名空间')[:200]}",
                          faultcode=VERSION_MISMATCH)
        if root.tag != f"{{{SOAP_ENV}}}Envelope":
            raise Refused(MALFORMED, "not a SOAP 1.1 envelope")
        bodies = root.findall(f"{{{SOAP_ENV}}}Body")
        if len(bodies) > 1 or len(root.findall(f"{{{SOAP_ENV}}}Header")) > 1:
            # SOAP 1.1 (4.1.1): one Header at most, one Body: read only the first, a
            # second would be an operation the call log and the bank's stack see apart
            raise Refused(MALFORMED, "a SOAP envelope holds one Header at most and one Body")
        body = bodies[0] if bodies else None
        parts = [] if body is None else [c for c in body if isinstance(c.tag, str)]
        if len(parts) != 1:
            raise Refused(MALFORMED, "the SOAP body must hold exactly one operation")
        element = parts[0]
        if element.tag not in self.operations:
            raise Refused(MALFORMED, f"unknown operation {etree.QName(element).localname!r} "
                                     f"(namespace must be {NS})")
        token = None
        header = root.find(f"{{{SOAP_ENV}}}Header")
        if header is not None:
            for el in header.iter():
                if isinstance(el.tag, str) and etree.QName(el).localname == "AuthToken":
                    token = "".join(el.itertext()).strip() or None
                    break
        return element, token, self._headers(root)

    @staticmethod
    def _transcode(raw: bytes, charset: str | None) -> bytes:
        """UTF-8 from here on when the HTTP charset decides (the call log stores it so)."""
        try:
            return transcode(raw, charset)
        except CharsetError as exc:
            raise Refused(MALFORMED, str(exc)) from None

    def _headers(self, root: Any) -> wsse.WsseBank | None:
        """Mandatory headers the hub does not process → MustUnderstand; a WS-Security
        header of a configured bank is checked (1001 when it does not hold)."""
        entries = header_entries(root)
        processed = {id(el) for el in entries if etree.QName(el).localname == "AuthToken"}
        signers = []
        for el in entries:
            bank = wsse.find_bank(el, self.wsse_banks) if el.tag == wsse.SECURITY else None
            if bank is not None:
                processed.add(id(el))
                signers.append((el, bank))
        missing = not_understood(entries, processed)
        if missing:
            names = "、".join(name[:200] for name in missing[:5])
            raise Refused(MALFORMED, f"不处理的必需头（mustUnderstand=\"1\"）：{names}",
                          faultcode=MUST_UNDERSTAND)
        if len(signers) > 1:
            raise Refused(BAD_TOKEN, "只能有一个 WS-Security 头", faultcode=FAILED_AUTHENTICATION)
        for el, bank in signers:
            try:
                wsse.verify(self.hub, el, bank)
            except wsse.WsseError as exc:
                raise Refused(BAD_TOKEN, str(exc), faultcode=FAILED_AUTHENTICATION) from None
            return bank
        return None

    def _check_signer(self, bank_code: str | None, signed: wsse.WsseBank | None) -> None:
        """A bank configured for WS-Security calls with its own valid UsernameToken, and a
        UsernameToken speaks only for its own bank."""
        if signed is not None and bank_code != signed.bank_code:
            raise Refused(BAD_TOKEN, f"WS-Security 用户 {signed.username} 不属于银行 {bank_code}",
                          faultcode=FAILED_AUTHENTICATION)
        if signed is None and bank_code in self.wsse_required:
            raise Refused(BAD_TOKEN, f"银行 {bank_code} 须带 WS-Security UsernameToken",
                          faultcode=FAILED_AUTHENTICATION)

    def _grouped(self, element: Any, call: SoapCall, signed: wsse.WsseBank | None,
                 record: CallRecord, started: float, raw: bytes
                 ) -> tuple[Response | None, bool]:
        """On SQLite, a movement notice (the hot path) as a unit of the hub's group
        commit (store.group_commit): its rows and its call-log row commit with those of
        the concurrent calls, one write lock and one WAL sync for the group (SQLite's
        writers queue one behind the other, each waiting for its own sync). Returns
        (the answer, False) once committed; (None, whether a group was tried) when the
        call must take the path of its own transaction (``_dispatch``): an operation
        other than a movement, a value spyne refuses, or anything the unit cannot
        settle by its writes alone (a repeated serial, a failure: ``RunAlone``)."""
        operation = call.operation
        # PostgreSQL runs concurrent transactions side by side and flushes its WAL once
        # for the commits that arrive together; a group's leader would make their round
        # trips one after another (measured: 50-54% of the bare echo grouped, 54-58% not)
        if operation not in MOVEMENTS or self.hub.db.postgres:
            return None, False
        try:
            args = read_arguments(operation, element)
        except ValidationError:
            return None, False
        # the token outside the shared transaction: a cache miss reads the store
        checked = self.desk.check_caller(call, operation, args)
        if call.party != "unknown":
            self._check_signer(call.party, signed)  # before anything is written

        def unit(conn: Any) -> tuple[SoapCall, Response]:
            # joins the group's transaction; its close() leaves that transaction alone
            session = Session(bind=conn, expire_on_commit=False)
            try:
                mine = replace(call, session=session, grouped=True)
                answer = checked if isinstance(checked, Answer) else self.desk.act(
                    mine, checked, operation, dict(args))
                mine.code, mine.msg = answer.code, answer.msg
                resp = answer_response(operation, answer.code, answer.msg, answer.extra)
                self._fill(record, mine, started, raw, resp)
                write_call(session, self.hub.cipher, record)
                session.flush()  # alerts and held events added through the ORM
                return mine, resp
            finally:
                session.close()

        try:
            done, resp = self.hub.group_commit.run(unit)
        except Exception:
            log.debug("fund SOAP call %s runs alone", record.ref_id, exc_info=True)
            return None, True
        call.party, call.division, call.code, call.msg = (done.party, done.division,
                                                          done.code, done.msg)
        if done.code == OK:  # a booked event may have queued a message: wake the workers
            new_rows_committed(self.hub.db.engine)
        return resp, False

    def _dispatch(self, element: Any, call: SoapCall) -> Response:
        """The desk's answer to a schema-valid operation element."""
        try:
            args = read_arguments(call.operation, element)
        except ValidationError as exc:  # a value its spyne type refuses: 2002, never 5000
            call.code, call.msg = INVALID, f"invalid field value {str(exc)[:200]}"
            return answer_response(call.operation, INVALID, call.msg)
        if call.operation == "Authenticate":
            answer = self.desk.authenticate(call, args["bank_code"], args["username"],
                                            args["password"])
        else:
            answer = self.desk.handle(call, call.operation, args)
        call.code, call.msg = answer.code, answer.msg
        return answer_response(call.operation, answer.code, answer.msg, answer.extra)


def _mask(body: bytes) -> bytes:
    return _SECRET.sub(rb"\1***", body)
