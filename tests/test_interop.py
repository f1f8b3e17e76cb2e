"""Interop of the fund SOAP service (contract bank.md "Interoperability", issue 11), through
the hub on its production server (and `hub.py serve` processes): the WSDL's address and
bytes, the declared AuthToken header (zeep ``_soapheaders``), required results, SOAP
faults for other envelope versions and unprocessed mandatory headers, WS-Security
UsernameToken for a bank configured for it, GBK bodies, Axis ``xsi:type``, 2002 naming
the field, and a UTF-8 BOM before province and county JSON."""

from __future__ import annotations

import base64
import codecs
import copy
import hashlib
import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import urllib3
import zeep
from lxml import etree
from sqlalchemy import select
from zeep.wsse.username import UsernameToken

from adapters.fund.soap import hardened_parser
from store.models import CallLogEntry
from tests.county_support import event, new_case, post_signed, stages_of
from tests.hubserver import HubServer, application, province_env
from tests.support import start_hub_process, stop_process, wait_until, write_config
from tests.test_bank_fixtures import ACC_SMART, BANK, BANK_PARTNER, HOUSE, PASSWORD, build_env
from tests.test_bank_soap import WHEN, answer_of, envelope, post

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
HTTP = urllib3.PoolManager(retries=False)
NS = "urn:cityhub:fund:v1"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
BANK_SECRET = f"secret-{BANK_PARTNER}-0123456789"  # tests.support.write_config's secret
PUBLIC = "https://hub.example.cn/cityhub"


def fault_of(resp) -> tuple[str, str, str | None]:
    """(faultcode as {ns}local, faultstring, detail result_code) of a SOAP 1.1 fault."""
    root = etree.fromstring(resp.data, hardened_parser())
    assert root.tag == f"{{{SOAP11}}}Envelope", resp.data
    fault = root.find(f"{{{SOAP11}}}Body/{{{SOAP11}}}Fault")
    assert fault is not None, resp.data
    prefix, _, local = fault.findtext("faultcode").partition(":")
    code = f"{{{fault.nsmap[prefix]}}}{local}"
    return code, fault.findtext("faultstring"), fault.findtext(f"detail/{{{NS}}}result_code")


def fields(tok: str | None, serial: str, amount: str = "100.00", extra: str = "") -> str:
    token = f"<f:token>{tok}</f:token>" if tok else ""
    return (f"{token}<f:serial_no>{serial}</f:serial_no><f:account_no>{ACC_SMART}</f:account_no>"
            f"<f:amount>{amount}</f:amount>"
            f"<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at>{extra}")


def wsdl_schema(wsdl: bytes) -> etree.XMLSchema:
    root = etree.fromstring(wsdl, hardened_parser())
    [schema] = root.findall(f".//{{{XSD}}}schema")
    standalone = etree.Element(schema.tag, attrib=dict(schema.attrib),
                               nsmap={**root.nsmap, **schema.nsmap})
    standalone.extend(copy.deepcopy(list(schema)))
    return etree.XMLSchema(standalone)


def body_element(resp):
    root = etree.fromstring(resp.data, hardened_parser())
    return root.find(f"{{{SOAP11}}}Body")[0]


# ------------------------------------------------------------------------ the WSDL


def test_wsdl_address_is_the_public_url_whatever_host_the_caller_names(make_hub, store_url):
    hub = make_hub(store_url, inbound=["bank_soap", "pos"], public_url=PUBLIC)
    server = HubServer(hub).start()
    try:
        url = server.url + "/soap/fund?wsdl"
        answers = [HTTP.request("GET", url, headers=h, timeout=10) for h in (
            {}, {"Host": "evil.example:666"}, {"Host": "attacker.example",
                                               "X-Forwarded-Host": "x.example",
                                               "X-Forwarded-Proto": "http"},
            {"Host": "127.0.0.1:1"})]
        assert {a.status for a in answers} == {200}
        assert len({a.data for a in answers}) == 1  # byte-identical for every caller
        root = etree.fromstring(answers[0].data, hardened_parser())
        [address] = root.iter(f"{{{WSDL_SOAP}}}address")
        assert address.get("location") == PUBLIC + "/soap/fund"
        assert b"evil" not in answers[1].data and b"attacker" not in answers[2].data
        [binding] = root.iter(f"{{{WSDL_SOAP}}}binding")
        assert binding.get("transport") == "http://schemas.xmlsoap.org/soap/http"
    finally:
        server.stop()
        hub.close()


def _serve_wsdl(tmp_path: Path, store_url: str, name: str, seed: str) -> bytes:
    """The WSDL a fresh ``hub.py serve`` (hash seed ``seed``) serves. Only the hub's own
    document counts (its address is ``PUBLIC``): the free port chosen for it may be
    taken meanwhile by another test's server (a simulated bank's spyne WSDL once
    answered here); then the hub cannot listen, exits, and is started on another."""
    for attempt in range(3):
        config = write_config(tmp_path / f"{name}-{attempt}", store_url,
                              inbound=["bank_soap", "pos"], public_url=PUBLIC)
        port = __import__("yaml").safe_load(config.read_text())["listen"]["port"]
        proc = start_hub_process(config, "serve", "--no-workers", "--no-scheduler",
                                 env={"PYTHONHASHSEED": seed},
                                 log=tmp_path / f"{name}-{attempt}.log")
        url = f"http://127.0.0.1:{port}/soap/fund?wsdl"

        def fetch(proc: subprocess.Popen[bytes] = proc, url: str = url) -> bytes | bool | None:
            if proc.poll() is not None:
                return True  # it could not start (the port was taken): try another
            try:
                r = HTTP.request("GET", url, timeout=5)
            except urllib3.exceptions.HTTPError:
                return None
            ours = r.status == 200 and (PUBLIC + "/soap/fund").encode() in r.data
            return r.data if ours else None

        try:
            got = wait_until(fetch, timeout=60, what=f"hub {name} to serve its WSDL")
        finally:
            stop_process(proc)
        if got is not True:
            return got
    raise AssertionError(f"hub {name} could not start on three ports")


def test_wsdl_is_byte_identical_between_restarts(tmp_path, store_url):
    # different hash seeds: spyne's own set-ordered walk named and ordered types
    # differently per process; the served document must not
    first = _serve_wsdl(tmp_path, store_url, "first", "1")
    second = _serve_wsdl(tmp_path, store_url, "second", "2")
    third = _serve_wsdl(tmp_path, store_url, "third", "12345")
    assert first == second == third
    assert (PUBLIC + "/soap/fund").encode() in first
    root = etree.fromstring(first, hardened_parser())
    [schema] = root.iter(f"{{{XSD}}}schema")
    kinds = [(etree.QName(c).localname, c.get("name")) for c in schema]
    assert kinds == sorted(kinds, key=lambda k: (["simpleType", "complexType", "element"]
                                                 .index(k[0]), k[1]))


def test_auth_token_header_is_declared_and_zeep_sets_it(fund):
    wsdl = HTTP.request("GET", fund.url + "?wsdl").data
    root = etree.fromstring(wsdl, hardened_parser())
    ops = root.findall(f"{{{WSDL}}}binding/{{{WSDL}}}operation")
    assert len(ops) == 12
    for op in ops:
        headers = op.findall(f"{{{WSDL}}}input/{{{WSDL_SOAP}}}header")
        if op.get("name") == "Authenticate":
            assert headers == []
        else:
            [h] = headers
            assert (h.get("message"), h.get("part"), h.get("use")) == (
                "tns:AuthToken", "AuthToken", "literal")
    client = zeep.Client(fund.url + "?wsdl", settings=zeep.Settings(strict=True))
    binding = client.service._binding
    assert [n for n, _ in binding._operations["DepositNotice"].input.header.type.elements] \
        == ["AuthToken"]
    assert binding._operations["Authenticate"].input.header.type.elements == []
    tok = fund.token()
    svc = client.service
    answer = svc.DepositNotice(
        serial_no="HDR-1", account_no=ACC_SMART, amount=Decimal("10.00"), occurred_at=WHEN,
        house_code=HOUSE, _soapheaders={"AuthToken": tok})
    assert (answer.result_code, answer.result_msg) == ("0000", "booked")
    forged = svc.DepositNotice(
        serial_no="HDR-2", account_no=ACC_SMART, amount=Decimal("10.00"), occurred_at=WHEN,
        _soapheaders={"AuthToken": "forged"})
    assert forged.result_code == "1001"
    assert [r.serial_no for r in fund.ledger()] == ["HDR-1"]


def test_results_are_required_and_every_answer_carries_them(fund):
    wsdl = HTTP.request("GET", fund.url + "?wsdl").data
    root = etree.fromstring(wsdl, hardened_parser())
    types = {t.get("name"): t for t in root.iter(f"{{{XSD}}}complexType")}
    always = {"Result": ["result_code", "result_msg"],
              "VerifyResult": ["result_code", "result_msg"],
              "AuthResult": ["result_code", "result_msg", "token", "expires_at"]}
    for name, required in always.items():
        els = {e.get("name"): e for e in types[name].iter(f"{{{XSD}}}element")}
        for field in required:
            assert els[field].get("minOccurs", "1") == "1", (name, field)
            assert els[field].get("nillable", "false") == "false", (name, field)
    for op in ("Authenticate", "DepositNotice", "PosPaymentVerify"):
        [wrapped] = types[f"{op}Response"].iter(f"{{{XSD}}}element")
        assert wrapped.get("minOccurs", "1") == "1" and wrapped.get("nillable") is None
    schema = wsdl_schema(wsdl)
    ok = post(fund, envelope("Authenticate", f"<f:bank_code>{BANK}</f:bank_code>"
                             f"<f:username>icbc-front</f:username><f:password>{PASSWORD}"
                             "</f:password>"))
    wrong = post(fund, envelope("Authenticate", f"<f:bank_code>{BANK}</f:bank_code>"
                                "<f:username>icbc-front</f:username><f:password>nope"
                                "</f:password>"))
    invalid = post(fund, envelope("Authenticate", "<f:username>icbc-front</f:username>"))
    bad_deposit = post(fund, envelope("DepositNotice", fields("x", "R-1", amount="1.005")))
    for resp in (ok, wrong, invalid, bad_deposit):
        assert resp.status == 200
        element = body_element(resp)
        assert schema.validate(element), (resp.data, schema.error_log)
    assert [answer_of(r)[0] for r in (ok, wrong, invalid, bad_deposit)] == [
        "0000", "1001", "2002", "2002"]
    failed = zeep.Client(fund.url + "?wsdl", settings=zeep.Settings(strict=True)).service \
        .Authenticate(bank_code=BANK, username="icbc-front", password="wrong-password-1")
    assert failed.result_code == "1001" and not failed.token  # zeep reads <token/> as None
    assert b"<tns:token/>" in wrong.data or b"<tns:token></tns:token>" in wrong.data
    assert failed.expires_at <= datetime.now(UTC) + timedelta(seconds=5)


# ------------------------------------------------------------------------ envelopes


def test_soap12_envelope_gets_version_mismatch(fund):
    tok = fund.token()
    body = (f'<env:Envelope xmlns:env="{SOAP12}" xmlns:f="{NS}"><env:Body>'
            f"<f:DepositNotice>{fields(tok, 'V12')}</f:DepositNotice></env:Body></env:Envelope>")
    for content_type in ("application/soap+xml; charset=utf-8", "text/xml; charset=utf-8"):
        resp = post(fund, body, content_type)
        assert resp.status == 500
        code, text, detail = fault_of(resp)
        assert code == f"{{{SOAP11}}}VersionMismatch"
        assert not text.startswith("2001") and "SOAP 1.1" in text and detail is None
    other = post(fund, body.replace(SOAP12, "urn:not-a-soap-envelope"))
    assert fault_of(other)[0] == f"{{{SOAP11}}}VersionMismatch"
    not_an_envelope = post(fund, f'<f:DepositNotice xmlns:f="{NS}"/>')
    assert fault_of(not_an_envelope)[1].startswith("2001")
    # two Bodies (or two Headers): which one is the call? refused, not the first read
    one = f"<f:DepositNotice>{fields(tok, 'TWO-1')}</f:DepositNotice>"
    two = f"<f:DepositNotice>{fields(tok, 'TWO-2')}</f:DepositNotice>"
    for inner in (f"<soapenv:Body>{one}</soapenv:Body><soapenv:Body>{two}</soapenv:Body>",
                  f"<soapenv:Header/><soapenv:Header/><soapenv:Body>{one}</soapenv:Body>"):
        doubled = post(fund, f'<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:f="{NS}">'
                             f"{inner}</soapenv:Envelope>")
        assert fault_of(doubled)[1].startswith("2001"), doubled.data
    assert fund.ledger() == []


def test_unprocessed_must_understand_header_gets_the_fault_and_books_nothing(fund):
    tok = fund.token()
    security = (f'<wsse:Security xmlns:wsse="{WSSE}" soapenv:mustUnderstand="1">'
                "<wsse:UsernameToken><wsse:Username>nobody</wsse:Username>"
                "<wsse:Password>x</wsse:Password></wsse:UsernameToken></wsse:Security>")
    other = '<x:Trace xmlns:x="urn:other" soapenv:mustUnderstand="1">t</x:Trace>'
    for serial, header in (("MU-1", security), ("MU-2", other)):
        resp = post(fund, envelope("DepositNotice", fields(tok, serial), header))
        assert resp.status == 500
        code, text, detail = fault_of(resp)
        assert code == f"{{{SOAP11}}}MustUnderstand" and detail is None
        assert ("Security" in text) if serial == "MU-1" else ("Trace" in text)
    assert fund.ledger() == [] and fund.events() == []
    # optional or addressed to another actor: ignored; the AuthToken header is processed
    fine = [security.replace('mustUnderstand="1"', 'mustUnderstand="0"'),
            other.replace('soapenv:mustUnderstand="1"', 'soapenv:actor="urn:someone-else" '
                                                        'soapenv:mustUnderstand="1"'),
            f'<f:AuthToken soapenv:mustUnderstand="1">{tok}</f:AuthToken>']
    for i, header in enumerate(fine):
        token = tok if i < 2 else None
        resp = post(fund, envelope("DepositNotice", fields(token, f"MU-OK-{i}"), header))
        assert answer_of(resp)[0] == "0000", resp.data
    assert len(fund.ledger()) == 3


def test_gbk_without_declaration_is_read_as_the_http_charset(fund):
    tok = fund.token()
    names = "<f:payer_name>欧阳张三丰</f:payer_name><f:buyer_name>諸葛亮</f:buyer_name>"
    xml = envelope("DepositNotice", fields(tok, "GBK-1", extra=names))
    no_decl = xml.split("?>", 1)[1]
    gbk = no_decl.encode("gbk")
    assert gbk != no_decl.encode("utf-8")
    resp = post(fund, gbk, "text/xml; charset=GBK")
    assert resp.status == 200 and answer_of(resp)[0] == "0000", resp.data
    resp = post(fund, no_decl.replace("GBK-1", "GBK-2").encode("gbk"),
                'text/xml; charset="gb2312"')
    assert answer_of(resp)[0] == "0000"
    # the names Java stacks send, quoted either way (x-gbk: Java's own name for GBK)
    for n, name in enumerate(("x-gbk", "'GBK'", "X-MSWIN-936")):
        resp = post(fund, no_decl.replace("GBK-1", f"GBK-J{n}").encode("gbk"),
                    f"text/xml; charset={name}")
        assert answer_of(resp)[0] == "0000", (name, resp.data[:300])
    # its declaration wins over the HTTP charset (and says GBK itself)
    declared = ('<?xml version="1.0" encoding="GBK"?>'
                + no_decl.replace("GBK-1", "GBK-3")).encode("gbk")
    assert answer_of(post(fund, declared, "text/xml; charset=utf-8"))[0] == "0000"
    # the same GBK bytes called UTF-8 are not well-formed: refused, nothing booked
    wrong = post(fund, no_decl.replace("GBK-1", "GBK-4").encode("gbk"),
                 "text/xml; charset=utf-8")
    assert wrong.status == 500 and fault_of(wrong)[1].startswith("2001")
    unknown = post(fund, gbk, "text/xml; charset=x-no-such-charset")
    assert fault_of(unknown)[1].startswith("2001")
    # names Python's codecs know that are no character set (transforms, its own text
    # codecs): refused the same way, never 5000
    for name in ("rot13", "hex", "base64", "zlib", "punycode", "idna", "unicode_escape"):
        odd = post(fund, gbk, f"text/xml; charset={name}")
        assert fault_of(odd)[1].startswith("2001"), (name, odd.data)
    # a NUL in the name (RFC 2231's charset*= decodes %00 into it): no codec lookup
    odd = post(fund, gbk, "text/xml; charset*=UTF-8''gbk%00")
    assert fault_of(odd)[1].startswith("2001"), odd.data
    events = fund.events()
    assert [e.serial_no for e in events] == ["GBK-1", "GBK-2", "GBK-J0", "GBK-J1", "GBK-J2",
                                             "GBK-3"]
    for e in events:
        payload = fund.hub.cipher.open_json(e.payload_enc)
        assert payload["payer_name"] == "欧阳张三丰" and payload["buyer_name"] == "諸葛亮"
    with fund.hub.db.session() as s:  # the call log keeps what the HTTP charset decoded
        logged = [fund.hub.cipher.open_json(r.request_enc)["text"] for r in s.scalars(
            select(CallLogEntry).where(CallLogEntry.interface == "soap.fund.DepositNotice",
                                       CallLogEntry.code == "0000").order_by(CallLogEntry.id))]
    assert len(logged) == 6 and all("諸葛亮" in text for text in logged[:5])


def test_axis_xsi_types_are_accepted_where_the_value_fits_the_field(fund):
    tok = fund.token()
    ns = ('xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
          'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
          'xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/"')

    def axis(serial: str, amount: str, amount_type: str = "xsd:decimal") -> str:
        return (f'<f:token xsi:type="xsd:string" {ns}>{tok}</f:token>'
                f'<f:serial_no xsi:type="soapenc:string" {ns}>{serial}</f:serial_no>'
                f'<f:account_no xsi:type="xsd:string" {ns}>{ACC_SMART}</f:account_no>'
                f'<f:amount xsi:type="{amount_type}" {ns}>{amount}</f:amount>'
                f'<f:occurred_at xsi:type="xsd:dateTime" {ns}>2026-11-20T10:00:00+08:00'
                f'</f:occurred_at><f:house_code xsi:type="xsd:string" {ns}>{HOUSE}'
                "</f:house_code>")

    assert answer_of(post(fund, envelope("DepositNotice", axis("AX-1", "12.50")))) == (
        "0000", "booked")
    assert answer_of(post(fund, envelope("DepositNotice", axis("AX-2", "7", "xsd:int"))))[0] \
        == "0000"
    refused = {
        "AX-3": axis("AX-3", "1.005"),                       # the field's own type: 2 places
        "AX-4": axis("AX-4", "abc", "xsd:string"),           # a string is no amount
        "AX-5": axis("AX-5", "1.00", "other:Money").replace(
            'xsi:type="other:Money"', 'xmlns:other="urn:other" xsi:type="other:Money"'),
    }
    for serial, body in refused.items():
        code, msg = answer_of(post(fund, envelope("DepositNotice", body)))
        assert code == "2002" and "amount" in msg and "{" not in msg, (serial, msg)
    assert [r.serial_no for r in fund.ledger()] == ["AX-1", "AX-2"]


def test_2002_names_the_first_invalid_field_by_its_contract_name(fund):
    tok = fund.token()
    cases = {
        "amount": fields(tok, "N-1", amount="1.005"),
        "account_no": f"<f:token>{tok}</f:token><f:serial_no>N-2</f:serial_no>"
                      "<f:amount>1.00</f:amount>"
                      "<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at>",
        "occurred_at": fields(tok, "N-3").replace("2026-11-20T10:00:00+08:00", "yesterday"),
        "serial_no": fields(tok, "x" * 65),
        "stranger": fields(tok, "N-5").replace("<f:amount>", "<f:stranger>1</f:stranger>"
                                                             "<f:amount>"),
        "remark": fields(tok, "N-6", extra="<f:remark>" + "长" * 201 + "</f:remark>"),
    }
    for field, body in cases.items():
        resp = post(fund, envelope("DepositNotice", body))
        code, msg = answer_of(resp)
        assert code == "2002", (field, resp.data)
        assert msg.startswith(f"字段 {field} 无效"), (field, msg)
        assert "{urn" not in msg and "{" not in msg, msg
    # two invalid fields: the first is named
    both = fields(tok, "N-7", amount="1.005").replace("2026-11-20T10:00:00+08:00", "bad")
    assert answer_of(post(fund, envelope("DepositNotice", both)))[1].startswith("字段 amount")
    assert fund.ledger() == [] and fund.events() == []


# ------------------------------------------------------------------------ WS-Security


def _wsse_header(username: str, password: str, *, digest: bool = True,
                 created: datetime | None = None, nonce: bytes | None = None,
                 must_understand: bool = True) -> str:
    created_text = (created or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    nonce = nonce if nonce is not None else os.urandom(16)
    if digest:
        value = base64.b64encode(hashlib.sha1(nonce + created_text.encode()
                                              + password.encode()).digest()).decode()
        kind = f"{PROFILE}#PasswordDigest"
    else:
        value, kind = password, f"{PROFILE}#PasswordText"
    mu = ' soapenv:mustUnderstand="1"' if must_understand else ""
    return (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"{mu}><wsse:UsernameToken>'
            f"<wsse:Username>{username}</wsse:Username>"
            f'<wsse:Password Type="{kind}">{value}</wsse:Password>'
            f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
            f"<wsu:Created>{created_text}</wsu:Created></wsse:UsernameToken></wsse:Security>")


@pytest.fixture
def wsse_fund(make_hub, store_url):
    env, stop = build_env(make_hub, store_url, partner={"wsse_in": {"username": "icbc-wsse"}})
    yield env
    for thing in stop:
        thing.stop()


def test_ws_security_username_token_is_checked_for_a_configured_bank(wsse_fund):
    env = wsse_fund
    url = env.url + "?wsdl"
    text = zeep.Client(url, wsse=UsernameToken("icbc-wsse", BANK_SECRET)).service
    digest = zeep.Client(url, wsse=UsernameToken("icbc-wsse", BANK_SECRET,
                                                 use_digest=True)).service
    auth = text.Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD)
    assert auth.result_code == "0000"
    tok = auth.token
    assert digest.Authenticate(bank_code=BANK, username="icbc-front",
                               password=PASSWORD).result_code == "0000"
    for svc, serial in ((text, "WS-1"), (digest, "WS-2")):
        assert svc.DepositNotice(token=tok, serial_no=serial, account_no=ACC_SMART,
                                 amount=Decimal("10.00"), occurred_at=WHEN,
                                 house_code=HOUSE).result_code == "0000"
    # the bank asks for WS-Security: a call without it, or with a wrong one, is 1001
    plain = zeep.Client(url).service
    with pytest.raises(zeep.exceptions.Fault) as no_header:
        plain.Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD)
    assert no_header.value.message.startswith("1001")
    refused = {
        "no header": "",
        "wrong text": _wsse_header("icbc-wsse", "wrong-secret", digest=False),
        "wrong digest": _wsse_header("icbc-wsse", "wrong-secret"),
        "stale": _wsse_header("icbc-wsse", BANK_SECRET,
                              created=datetime.now(UTC) - timedelta(minutes=10)),
        "future": _wsse_header("icbc-wsse", BANK_SECRET,
                               created=datetime.now(UTC) + timedelta(minutes=10)),
        "digest without nonce": _wsse_header("icbc-wsse", BANK_SECRET).replace(
            "<wsse:Nonce>", "<wsse:Ignored>").replace("</wsse:Nonce>", "</wsse:Ignored>"),
    }
    for i, (why, header) in enumerate(refused.items()):
        resp = post(env, envelope("DepositNotice", fields(tok, f"WS-BAD-{i}"), header))
        assert resp.status == 500, why
        code, text_, detail = fault_of(resp)
        assert code == f"{{{WSSE}}}FailedAuthentication" and detail == "1001", (why, text_)
    # a nonce is accepted once
    nonce = os.urandom(16)
    once = _wsse_header("icbc-wsse", BANK_SECRET, nonce=nonce)
    first = post(env, envelope("DepositNotice", fields(tok, "WS-3"), once))
    assert answer_of(first)[0] == "0000", first.data
    replay = post(env, envelope("DepositNotice", fields(tok, "WS-4"), once))
    assert fault_of(replay)[2] == "1001" and "重放" in fault_of(replay)[1]
    assert [r.serial_no for r in env.ledger()] == ["WS-1", "WS-2", "WS-3"]


def test_one_ws_security_nonce_sent_at_once_is_accepted_once(wsse_fund):
    env = wsse_fund
    tok = zeep.Client(env.url + "?wsdl", wsse=UsernameToken("icbc-wsse", BANK_SECRET)).service \
        .Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD).token
    header = _wsse_header("icbc-wsse", BANK_SECRET)
    bodies = [envelope("DepositNotice", fields(tok, f"NC-{i}"), header) for i in range(8)]
    barrier = threading.Barrier(len(bodies))

    def send(body: str):
        barrier.wait()
        return post(env, body)

    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(send, bodies))
    ok = [a for a in answers if a.status == 200]
    assert len(ok) == 1 and answer_of(ok[0])[0] == "0000"
    assert all(fault_of(a)[2] == "1001" for a in answers if a.status != 200)
    assert len(env.ledger()) == 1


def test_ws_security_speaks_only_for_its_own_bank(make_hub, store_url):
    env, stop = build_env(make_hub, store_url, partner={"wsse_in": True})
    try:
        # wsse_in: true takes the bank code as the user name
        svc = zeep.Client(env.url + "?wsdl", wsse=UsernameToken(BANK, BANK_SECRET,
                                                                use_digest=True)).service
        tok = svc.Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD).token
        assert tok
        # a UsernameToken of ICBC does not authenticate a login of another bank
        other = envelope("Authenticate", "<f:bank_code>OTHER</f:bank_code>"
                                         "<f:username>icbc-front</f:username>"
                                         f"<f:password>{PASSWORD}</f:password>",
                         _wsse_header(BANK, BANK_SECRET))
        assert fault_of(post(env, other))[2] == "1001"
        # a token of a bank asking for WS-Security, used without it: 1001, books nothing
        resp = post(env, envelope("DepositNotice", fields(tok, "OWN-1")))
        assert fault_of(resp)[2] == "1001"
        assert env.ledger() == [] and env.events() == []
    finally:
        for thing in stop:
            thing.stop()


# ------------------------------------------------------------------------ JSON with a BOM


def test_utf8_bom_before_province_json_is_accepted(make_hub, sqlite_url):
    env = province_env(make_hub, sqlite_url)
    try:
        body = json.dumps(application(), ensure_ascii=False).encode()
        ans = env.client.submit("rental_filing", codecs.BOM_UTF8 + body)
        assert ans.status == 200 and ans.body["code"] == "0000", ans.body
        again = env.client.submit("rental_filing", body)  # the same application, no BOM
        assert again.body["code"] == "0000"
        assert again.body["data"]["case_no"] == ans.body["data"]["case_no"]
        broken = env.client.submit("rental_filing", codecs.BOM_UTF8 + b"{not json")
        assert broken.status == 400 and broken.body["code"] == "2001"
    finally:
        env.close()


def test_utf8_bom_before_county_json_is_accepted(make_hub, store_url):
    from adapters.signing import signed_headers
    from tests.county_support import secret, served

    hub = make_hub(store_url, inbound=["county_smart"])
    case_no = new_case(hub, "rental_filing", "511702")
    raw = codecs.BOM_UTF8 + json.dumps(event(case_no, "rental_filing", "511702", "accepted"),
                                       ensure_ascii=False).encode()
    path = "/api/county/v1/events"
    with served(hub) as url:
        headers = {"Content-Type": "application/json",
                   **signed_headers("county_511702", secret("county_511702"), "POST", path, raw)}
        resp = HTTP.request("POST", url + path, body=raw, headers=headers, timeout=15)
        assert resp.status == 200, resp.data
        assert json.loads(resp.data)["code"] == "0000"
        later = post_signed(url, path, event(case_no, "rental_filing", "511702", "approved",
                                             at="2026-11-23T10:00:00+08:00"), "county_511702")
        assert later.json()["code"] == "0000"
    assert stages_of(hub, case_no) == ["accepted", "approved"]


def test_wsse_in_config_is_checked_at_start(make_hub, store_url):
    for bad in ({"max_age_seconds": "soon"}, {"max_age_seconds": -5}):
        hub = make_hub(store_url, inbound=["bank_soap"], partners={BANK_PARTNER: {
            "base_url": "http://127.0.0.1:9", "bank_code": BANK, "wsse_in": bad}})
        try:
            with pytest.raises(ValueError, match=f"partners.{BANK_PARTNER}.wsse_in"):
                HubServer(hub)
        finally:
            hub.close()
