"""The hub's fund SOAP service through a real HTTP server: zeep and hand-written
envelopes, the ledger, idempotency, holding, alerts, routing, hardening."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import urllib3
import zeep
from lxml import etree
from sqlalchemy import func, select, update

from adapters.bank_soap import fund_desk
from adapters.dispatch import Dispatcher
from adapters.fund.instructions import issue
from adapters.fund.soap import hardened_parser
from store.fund_models import FundEvent, FundInstruction, FundToken, LedgerEntry
from store.models import Alert, CallLogEntry, OutboxMessage
from tests.test_bank_fixtures import ACC_MANUAL, ACC_SMART, BANK, HOUSE, PASSWORD, build_env

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
TZ = ZoneInfo("Asia/Shanghai")
WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=TZ)
HTTP = urllib3.PoolManager(retries=False)
XSD = "http://www.w3.org/2001/XMLSchema"


def post(env, body: bytes | str, content_type: str = "text/xml; charset=utf-8"):
    data = body.encode() if isinstance(body, str) else body
    return HTTP.request("POST", env.url, body=data, headers={
        "Content-Type": content_type, "SOAPAction": '""'}, timeout=10)


def envelope(op: str, fields: str, header: str = "") -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:f="urn:cityhub:fund:v1"><soapenv:Header>{header}</soapenv:Header>'
            f'<soapenv:Body><f:{op}>{fields}</f:{op}></soapenv:Body></soapenv:Envelope>')


def answer_of(resp) -> tuple[str, str]:
    root = etree.fromstring(resp.data, hardened_parser())
    code = root.findtext(".//{urn:cityhub:fund:v1}result_code")
    msg = root.findtext(".//{urn:cityhub:fund:v1}result_msg")
    return code, msg


def deposit(env, token, serial="D1", account=ACC_SMART, amount="100.00", house=HOUSE, **kw):
    return env.client().DepositNotice(
        token=token, serial_no=serial, account_no=account, amount=Decimal(amount),
        occurred_at=kw.pop("occurred_at", WHEN), payer_name="张三",
        payer_account="6222020000000001", pay_method=kw.pop("pay_method", "01"),
        house_code=house, buyer_name="张三", remark=None, **kw)


# ------------------------------------------------------------------------ WSDL


def test_wsdl_is_valid_schema_and_a_fresh_client_calls_every_operation(fund):
    resp = HTTP.request("GET", fund.url + "?wsdl")
    assert resp.status == 200
    wsdl = etree.fromstring(resp.data, hardened_parser())
    assert wsdl.get("targetNamespace") == "urn:cityhub:fund:v1"
    schemas = wsdl.findall(f".//{{{XSD}}}schema")
    assert schemas
    for schema in schemas:  # each embedded schema compiles as XML Schema (with the
        # namespace declarations it inherits from the WSDL root)
        standalone = etree.Element(schema.tag, attrib=dict(schema.attrib),
                                   nsmap={**wsdl.nsmap, **schema.nsmap})
        standalone.extend(copy.deepcopy(list(schema)))
        etree.XMLSchema(standalone)
    client = zeep.Client(fund.url + "?wsdl", settings=zeep.Settings(strict=True))
    svc = client.service
    ops = {op for service in client.wsdl.services.values()
           for port in service.ports.values() for op in port.binding._operations}
    assert len(ops) == 12
    tok = svc.Authenticate(bank_code=BANK, username="icbc-front", password=PASSWORD).token
    pos = svc.Authenticate(bank_code=BANK, username="pos-terminal-1", password=PASSWORD).token
    settings = fund_desk(fund.hub).settings
    with fund.hub.transaction() as s:
        nos = {t: issue(fund.hub, s, settings, t, BANK, f).instruction_no for t, f in {
            "01": {"account_no": ACC_SMART, "date": WHEN.date()},
            "02": {"account_no": ACC_MANUAL, "reason": "竣工"},
            "03": {"account_no": ACC_SMART, "amount": "50.00", "payee_account": "1",
                   "payee_name": "建筑公司"},
            "04": {"developer_name": "新开发商", "project_name": "新项目", "permit_no": "P9",
                   "branch_name": "达州分行"}}.items()}
    codes = {
        "DepositNotice": deposit(fund, tok).result_code,
        "WithdrawalNotice": svc.WithdrawalNotice(
            token=tok, serial_no="W1", account_no=ACC_SMART, amount=Decimal("30.00"),
            occurred_at=WHEN, payee_name="建筑公司", payee_account="1",
            instruction_no=nos["03"]).result_code,
        "TransferResult": svc.TransferResult(
            token=tok, serial_no="T1", instruction_no=nos["03"], account_no=ACC_SMART,
            amount=Decimal("50.00"), result="00", message="ok", occurred_at=WHEN).result_code,
        "ReconciliationResult": svc.ReconciliationResult(
            token=tok, serial_no="R1", instruction_no=nos["01"], account_no=ACC_SMART,
            date=WHEN.date(), opening_balance=Decimal("0"), total_in=Decimal("100.00"),
            total_out=Decimal("30.00"), closing_balance=Decimal("70.00")).result_code,
        "AccountSetupResult": svc.AccountSetupResult(
            token=tok, serial_no="A1", instruction_no=nos["04"], account_no="6217000000000099",
            account_name="新开发商", branch_name="达州分行", result="00",
            message="ok").result_code,
        "CancelSupervisionResult": svc.CancelSupervisionResult(
            token=tok, serial_no="C1", instruction_no=nos["02"], account_no=ACC_MANUAL,
            result="00", message="ok").result_code,
        "AccountFrozenNotice": svc.AccountFrozenNotice(
            token=tok, serial_no="F1", account_no=ACC_SMART, amount=Decimal("10.00"),
            authority="法院", document_no="X1", occurred_at=WHEN).result_code,
        "AccountUnfrozenNotice": svc.AccountUnfrozenNotice(
            token=tok, serial_no="U1", account_no=ACC_SMART, amount=Decimal("10.00"),
            authority="法院", document_no="X2", occurred_at=WHEN).result_code,
        "JudicialDeductionNotice": svc.JudicialDeductionNotice(
            token=tok, serial_no="J1", account_no=ACC_SMART, amount=Decimal("5.00"),
            authority="法院", document_no="X3", occurred_at=WHEN).result_code,
        "PosPaymentVerify": svc.PosPaymentVerify(
            token=pos, terminal_id="T-1", house_code=HOUSE, buyer_name="李四",
            amount=Decimal("20.00")).result_code,
        "PosPayment": svc.PosPayment(
            token=pos, serial_no="P1", terminal_id="T-1", house_code=HOUSE, buyer_name="李四",
            amount=Decimal("20.00"), card_no_masked="622202******0001",
            occurred_at=WHEN).result_code,
    }
    assert codes == dict.fromkeys(codes, "0000")
    rows = fund.ledger(ACC_SMART)
    assert [(r.kind, r.direction, r.amount_fen) for r in rows] == [
        ("deposit", "in", 10000), ("withdrawal", "out", 3000), ("frozen", "none", 1000),
        ("unfrozen", "none", 1000), ("judicial_deduction", "out", 500),
        ("pos_payment", "in", 2000)]
    with fund.hub.db.session() as s:
        ins = {i.type_code: i for i in s.scalars(select(FundInstruction))}
        assert {t: i.status for t, i in ins.items()} == dict.fromkeys(ins, "answered")
        recon = s.execute(select(FundInstruction.account_no).where(
            FundInstruction.type_code == "04")).scalar()
        assert recon == "6217000000000099"  # the setup result registered the new account


# ------------------------------------------------------------------------ ledger


def test_same_deposit_twice_books_once_and_routes_to_the_county(fund):
    tok = fund.token()
    first = deposit(fund, tok, serial="DUP-1")
    again = deposit(fund, tok, serial="DUP-1")
    assert (first.result_code, again.result_code) == ("0000", "0000")
    assert first.result_msg == again.result_msg
    # the same serial with another amount is not a repeat (contract: 2005)
    assert deposit(fund, tok, serial="DUP-1", amount="999.00").result_code == "2005"
    [row] = fund.ledger()
    assert (row.amount_fen, row.house_code, row.unlinked) == (10000, HOUSE, False)
    assert row.book_date.isoformat() == "2026-11-20"
    with fund.hub.db.session() as s:
        [msg] = s.scalars(select(OutboxMessage)).all()
        assert (msg.partner, msg.item, msg.division) == ("county_511702", "fund_supervision",
                                                         "511702")
        raw = msg.payload_enc + row.detail_enc + s.scalars(select(FundEvent)).one().payload_enc
        assert "张三".encode() not in raw and b"6222020000000001" not in raw
        logs = s.scalars(select(CallLogEntry).where(
            CallLogEntry.interface == "soap.fund.DepositNotice")).all()
        assert [x.code for x in logs] == ["0000", "0000", "2005"]
        assert {x.party for x in logs} == {BANK} and {x.division for x in logs} == {"511702"}
        logged = fund.hub.cipher.open_json(logs[0].request_enc)
        text = logged["text"] if isinstance(logged, dict) else logged
        assert tok not in text
    assert Dispatcher(fund.hub, "w").run_once() == 1
    [got] = fund.county.state.received
    assert got.path == "/county/511702/fund_supervision"
    assert got.body["event"] == "DepositNotice" and got.body["fields"]["amount"] == "100.00"
    assert got.body["account"]["project_name"] == "滨河花园"


def test_unlinked_unknown_and_manual_nothing_dropped(fund):
    tok = fund.token()
    assert deposit(fund, tok, serial="N1", house=None).result_code == "0000"
    unknown = deposit(fund, tok, serial="N2", account="6217999999999999")
    assert unknown.result_code == "3001"
    assert deposit(fund, tok, serial="N2", account="6217999999999999").result_code == "3001"
    # a house the hub has not registered (HOUSE is on sale under ACC_SMART: 3002 here)
    assert deposit(fund, tok, serial="N3", account=ACC_MANUAL,
                   house="511725-001-0101").result_code == "0000"
    rows = fund.ledger()
    assert [(r.serial_no, r.unlinked) for r in rows] == [("N1", True), ("N3", False)]
    events = {e.serial_no: e for e in fund.events()}
    assert events["N2"].status == "held" and events["N2"].amount_fen == 10000
    assert events["N3"].route_mode == "manual" and events["N3"].message_id is None
    assert events["N1"].route_mode == "auto" and events["N1"].message_id is not None
    with fund.hub.db.session() as s:
        kinds = sorted(a.kind for a in s.scalars(select(Alert)))
        assert kinds == ["fund_held", "fund_unlinked"]
        assert s.query(OutboxMessage).count() == 1


def test_bad_or_expired_token_books_nothing(fund):
    assert deposit(fund, "not-a-token").result_code == "1001"
    fresh = fund.token()
    with fund.hub.transaction() as s:
        s.execute(update(FundToken).values(expires_at=datetime(2020, 1, 1)))
    assert deposit(fund, fresh).result_code == "1001"
    pos = fund.token("pos-terminal-1")
    assert deposit(fund, pos).result_code == "1001"  # a POS login may not notify deposits
    bad = fund.client().Authenticate(bank_code=BANK, username="icbc-front", password="wrong")
    assert bad.result_code == "1001" and bad.token is None
    assert fund.ledger() == [] and fund.events() == []


def test_abnormal_events_alert_at_once_and_are_routed(fund):
    tok = fund.token()
    svc = fund.client()
    recent = datetime.now(TZ) - timedelta(hours=1)  # reported in time (within 24 h)
    for op, serial in (("AccountFrozenNotice", "F1"), ("AccountUnfrozenNotice", "U1"),
                       ("JudicialDeductionNotice", "J1")):
        answer = getattr(svc, op)(token=tok, serial_no=serial, account_no=ACC_SMART,
                                  amount=Decimal("1234.56"), authority="通川区人民法院",
                                  document_no="(2026)川1702执1号", occurred_at=recent)
        assert answer.result_code == "0000"
    with fund.hub.db.session() as s:
        alerts = s.scalars(select(Alert).order_by(Alert.id)).all()
        # the deduction takes more than the (empty) account holds: flagged as well
        assert [(a.kind, a.severity, a.division) for a in alerts] == [
            ("fund_frozen", "critical", "511702"), ("fund_unfrozen", "critical", "511702"),
            ("fund_overdrawn", "critical", "511702"),
            ("fund_judicial_deduction", "critical", "511702")]
        msgs = s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert [m.interface for m in msgs] == ["fund.AccountFrozenNotice",
                                               "fund.AccountUnfrozenNotice",
                                               "fund.JudicialDeductionNotice"]
    assert [(r.direction, r.amount_fen) for r in fund.ledger()] == [
        ("none", 123456), ("none", 123456), ("out", 123456)]


def test_invalid_fields_answer_2002_and_change_nothing(fund):
    tok = fund.token()
    assert deposit(fund, tok, serial="B1", pay_method="07").result_code == "2002"
    naive = deposit(fund, tok, serial="B2", occurred_at=datetime(2026, 11, 20, 10, 0))
    assert naive.result_code == "2002" and "offset" in naive.result_msg
    assert deposit(fund, tok, serial="B3", amount="0.00").result_code == "2002"
    three_places = envelope("DepositNotice", (
        f"<f:token>{tok}</f:token><f:serial_no>B4</f:serial_no>"
        f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>1.005</f:amount>"
        "<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at>"))
    resp = post(fund, three_places)
    assert resp.status == 200 and answer_of(resp)[0] == "2002"
    missing = envelope("DepositNotice", f"<f:token>{tok}</f:token><f:serial_no>B5</f:serial_no>")
    assert answer_of(post(fund, missing))[0] == "2002"
    assert fund.ledger() == [] and fund.events() == []


# ------------------------------------------------------------------------ raw envelopes


def test_raw_envelopes_from_a_non_python_bank(fund):
    tok = fund.token()
    header = f"<f:AuthToken>{tok}</f:AuthToken>"
    dep = envelope("DepositNotice", (
        f"<f:serial_no>RAW-1</f:serial_no><f:account_no>{ACC_SMART}</f:account_no>"
        "<f:amount>2500.50</f:amount><f:occurred_at>2026-11-20T09:15:00+08:00</f:occurred_at>"
        "<f:payer_name>王五</f:payer_name><f:pay_method>02</f:pay_method>"
        f"<f:house_code>{HOUSE}</f:house_code>"), header)
    resp = post(fund, dep)
    assert resp.status == 200 and answer_of(resp) == ("0000", "booked")
    assert answer_of(post(fund, dep)) == ("0000", "booked")  # repeat: same answer
    wd = envelope("WithdrawalNotice", (
        f"<f:token>{tok}</f:token><f:serial_no>RAW-2</f:serial_no>"
        f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>500.25</f:amount>"
        "<f:occurred_at>2026-11-20T11:00:00+08:00</f:occurred_at>"))
    assert answer_of(post(fund, wd))[0] == "0000"
    frz = envelope("AccountFrozenNotice", (
        f"<f:token>{tok}</f:token><f:serial_no>RAW-3</f:serial_no>"
        f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>100.00</f:amount>"
        "<f:authority>法院</f:authority><f:occurred_at>2026-11-20T12:00:00Z</f:occurred_at>"))
    assert answer_of(post(fund, frz))[0] == "0000"
    pos_tok = fund.token("pos-terminal-1")
    pay = envelope("PosPayment", (
        f"<f:token>{pos_tok}</f:token><f:serial_no>RAW-4</f:serial_no>"
        f"<f:terminal_id>T-9</f:terminal_id><f:house_code>{HOUSE}</f:house_code>"
        "<f:buyer_name>赵六</f:buyer_name><f:amount>88.80</f:amount>"
        "<f:occurred_at>2026-11-20T13:00:00+08:00</f:occurred_at>"))
    assert answer_of(post(fund, pay))[0] == "0000"
    bad_tok = envelope("DepositNotice", (
        "<f:token>forged</f:token><f:serial_no>RAW-5</f:serial_no>"
        f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>1.00</f:amount>"
        "<f:occurred_at>2026-11-20T13:00:00+08:00</f:occurred_at>"))
    assert answer_of(post(fund, bad_tok))[0] == "1001"
    assert [(r.serial_no, r.kind, r.amount_fen) for r in fund.ledger()] == [
        ("RAW-1", "deposit", 250050), ("RAW-2", "withdrawal", 50025),
        ("RAW-3", "frozen", 10000), ("RAW-4", "pos_payment", 8880)]


XXE = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
       'xmlns:f="urn:cityhub:fund:v1"><soapenv:Body><f:DepositNotice>'
       '<f:token>TOKEN</f:token><f:serial_no>X1</f:serial_no>'
       f'<f:account_no>{ACC_SMART}</f:account_no><f:amount>1.00</f:amount>'
       '<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at><f:remark>&xxe;</f:remark>'
       '</f:DepositNotice></soapenv:Body></soapenv:Envelope>')
LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'
                    for i in range(1, 10))
          + ']><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
          '<soapenv:Body>&lol9;</soapenv:Body></soapenv:Envelope>')


def test_xxe_billion_laughs_and_oversize_are_refused_and_server_stays_healthy(fund):
    tok = fund.token()
    for body in (XXE.replace("TOKEN", tok), LAUGHS, "not xml at all",
                 envelope("NoSuchOperation", "")):
        resp = post(fund, body)
        assert resp.status == 500
        root = etree.fromstring(resp.data, hardened_parser())
        fault = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
        assert fault is not None and fault.findtext("faultstring").startswith("2001")
        assert b"root:" not in resp.data
    big = envelope("DepositNotice", "<f:remark>" + "x" * (600 * 1024) + "</f:remark>")
    assert post(fund, big).status == 413
    assert fund.ledger() == [] and fund.events() == []
    assert HTTP.request("GET", fund.server.url + "/healthz").status == 200
    assert deposit(fund, tok, serial="AFTER").result_code == "0000"
    with fund.hub.db.session() as s:
        refused = s.scalars(select(CallLogEntry).where(CallLogEntry.code == "2001")).all()
        assert len(refused) >= 4 and {r.outcome for r in refused} == {"rejected"}


def test_bank_counting_in_fen_is_converted_at_the_edge(make_hub, store_url):
    env, stop = build_env(make_hub, store_url, partner={"amounts_in_fen": True})
    try:
        tok = env.token()
        assert deposit(env, tok, serial="FEN1", amount="12345").result_code == "0000"
        assert deposit(env, tok, serial="FEN2", amount="123.45").result_code == "2002"
        [row] = env.ledger()
        assert row.amount_fen == 12345
    finally:
        for thing in stop:
            thing.stop()


def test_token_expiry_is_configured(fund):
    tok = fund.token()
    with fund.hub.db.session() as s:
        row = s.scalars(select(FundToken)).one()
        ttl = row.expires_at - datetime.utcnow()
    assert timedelta(minutes=29) < ttl <= timedelta(minutes=30)
    assert deposit(fund, tok, serial="OK1").result_code == "0000"
    with fund.hub.db.session() as s:
        assert s.scalars(select(LedgerEntry)).one().serial_no == "OK1"


def test_the_same_notice_sent_concurrently_books_once(fund):
    from concurrent.futures import ThreadPoolExecutor

    tok = fund.token()
    body = envelope("DepositNotice", (
        f"<f:token>{tok}</f:token><f:serial_no>RACE-1</f:serial_no>"
        f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>42.00</f:amount>"
        "<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at>"))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: answer_of(post(fund, body)), range(16)))
    assert set(answers) == {("0000", "booked, unlinked: no house_code")}
    assert [r.amount_fen for r in fund.ledger()] == [4200]
    assert len(fund.events()) == 1


def test_concurrent_notices_share_commits_and_each_is_booked_routed_and_logged_once(fund):
    """On SQLite movement notices are units of the hub's group commit
    (adapters.fund.soap): under concurrency fewer commits than notices, yet every notice
    has its event, ledger row, outbox message and call-log row exactly once; an unlinked
    one its alert; a repeat and a reused serial in the same burst answer as alone and
    book nothing more. On PostgreSQL each notice has its own transaction."""
    from concurrent.futures import ThreadPoolExecutor

    tok = fund.token()
    group = fund.hub.group_commit
    before = (group.groups, group.units)

    def body(serial: str, amount: str = "10.00", house: str = HOUSE) -> str:
        return envelope("DepositNotice", (
            f"<f:token>{tok}</f:token><f:serial_no>{serial}</f:serial_no>"
            f"<f:account_no>{ACC_SMART}</f:account_no><f:amount>{amount}</f:amount>"
            "<f:occurred_at>2026-11-20T10:00:00+08:00</f:occurred_at>"
            + (f"<f:house_code>{house}</f:house_code>" if house else "")))

    assert answer_of(post(fund, body("G-FIRST")))[0] == "0000"
    bodies = [body(f"G-{i}", house="" if i == 5 else HOUSE) for i in range(40)]
    bodies[10] = body("G-FIRST")  # an exact repeat: the first answer again
    bodies[20] = body("G-FIRST", amount="99.00")  # reused with other content: 2005
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: answer_of(post(fund, b)), bodies))
    assert answers[10] == ("0000", "booked")
    assert answers[20][0] == "2005"
    assert answers[5] == ("0000", "booked, unlinked: no house_code")
    assert all(a == ("0000", "booked") for i, a in enumerate(answers) if i not in (5, 10, 20))
    serials = sorted(["G-FIRST"] + [f"G-{i}" for i in range(40) if i not in (10, 20)])
    assert sorted(e.serial_no for e in fund.events()) == serials
    assert sorted(r.serial_no for r in fund.ledger()) == serials
    with fund.hub.db.session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == len(serials)
        calls = list(s.scalars(select(CallLogEntry).where(
            CallLogEntry.interface == "soap.fund.DepositNotice")))
        assert len(calls) == 1 + len(bodies) and len({c.ref_id for c in calls}) == len(calls)
        assert sorted(c.code for c in calls).count("0000") == len(bodies)
        unlinked = s.scalars(select(Alert).where(Alert.kind == "fund_unlinked")).all()
        assert [a.title for a in unlinked] == ["入账 G-5 未注明房屋编码（未关联）"]
    groups, units = group.groups - before[0], group.units - before[1]
    if fund.hub.db.postgres:  # each notice in its own transaction (adapters.fund.soap)
        assert (groups, units) == (0, 0)
        return
    assert units >= len(bodies) - 2  # every notice but the repeat and the reuse, grouped
    assert groups < units  # notices that arrived while a group committed shared the next
