"""POS terminals through the real SOAP server: verification and payment per house."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from store.fund_models import FundEvent, FundHouse
from tests.test_bank_fixtures import ACC_SMART, HOUSE
from tests.test_bank_soap import answer_of, envelope, post

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
WHEN = datetime(2026, 11, 21, 15, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def pay(env, token, serial, house=HOUSE, amount="5000.00"):
    return env.client().PosPayment(
        token=token, serial_no=serial, terminal_id="POS-001", house_code=house,
        buyer_name="李四", amount=Decimal(amount), card_no_masked="622202******1234",
        occurred_at=WHEN)


def test_verify_answers_the_supervised_account_of_a_house_on_sale(fund):
    tok = fund.token("pos-terminal-1")
    svc = fund.client()
    ok = svc.PosPaymentVerify(token=tok, terminal_id="POS-001", house_code=HOUSE,
                              buyer_name="李四", amount=Decimal("5000.00"))
    assert (ok.result_code, ok.account_no, ok.project_name) == ("0000", ACC_SMART, "滨河花园")
    no = svc.PosPaymentVerify(token=tok, terminal_id="POS-001", house_code="NO-SUCH",
                              buyer_name="李四", amount=Decimal("5000.00"))
    assert (no.result_code, no.account_no) == ("3002", None)
    with fund.hub.transaction() as s:
        s.get(FundHouse, HOUSE).status = "withdrawn"
    again = svc.PosPaymentVerify(token=tok, terminal_id="POS-001", house_code=HOUSE,
                                 buyer_name="李四", amount=Decimal("5000.00"))
    assert again.result_code == "3002"
    assert fund.events() == []  # a verification books nothing


def test_payment_books_against_house_and_buyer_once(fund):
    tok = fund.token("pos-terminal-1")
    assert pay(fund, tok, "POS-1").result_code == "0000"
    assert pay(fund, tok, "POS-1").result_code == "0000"
    [row] = fund.ledger()
    assert (row.kind, row.account_no, row.house_code, row.amount_fen, row.direction) == (
        "pos_payment", ACC_SMART, HOUSE, 500000, "in")
    detail = fund.hub.cipher.open_json(row.detail_enc)
    assert detail["buyer_name"] == "李四" and detail["pay_method"] == "03"
    assert "李四".encode() not in row.detail_enc


def test_payment_for_a_house_not_on_sale_is_held_not_dropped(fund):
    tok = fund.token("pos-terminal-1")
    assert pay(fund, tok, "POS-2", house="NO-SUCH").result_code == "3002"
    assert fund.ledger() == []
    with fund.hub.db.session() as s:
        held = s.scalars(select(FundEvent)).one()
        assert (held.status, held.amount_fen, held.operation) == ("held", 500000, "PosPayment")


def test_raw_pos_verify_envelope(fund):
    tok = fund.token("pos-terminal-1")
    body = envelope("PosPaymentVerify", (
        f"<f:token>{tok}</f:token><f:terminal_id>POS-9</f:terminal_id>"
        f"<f:house_code>{HOUSE}</f:house_code><f:amount>10.00</f:amount>"))
    resp = post(fund, body)
    assert resp.status == 200 and answer_of(resp)[0] == "0000"
    assert ACC_SMART.encode() in resp.data
