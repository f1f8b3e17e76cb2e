"""资金监管 on the admin page: accounts and balances in the operator's divisions, an
account's ledger with personal data masked (revealed and audited with the function),
and a 404 for an account of another division. Deposits arrive through the real SOAP
service (zeep), the admin page is served over real HTTP."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from store.models import AuditEntry
from tests.test_admin_fixtures import (
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    Client,
    add_operator,
    serve_app,
)
from tests.test_bank_fixtures import ACC_MANUAL, ACC_SMART, HOUSE

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture
WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def _deposit(svc, token: str, serial: str, account: str, amount: str,
             house: str | None) -> str:
    answer = svc.DepositNotice(
        token=token, serial_no=serial, account_no=account, amount=Decimal(amount),
        occurred_at=WHEN, payer_name="张三", payer_account="6222020000000001",
        pay_method="01", house_code=house, buyer_name="张三", remark=None)
    return answer.result_code


@pytest.fixture
def admin_fund(fund):  # type: ignore[no-untyped-def]
    """Three deposits on two accounts in two counties, and one for an unknown account;
    the hub's admin page served over HTTP; a city-wide and two 通川区 operators."""
    svc = fund.client()
    token = fund.token()
    assert _deposit(svc, token, "S-1", ACC_SMART, "100.00", HOUSE) == "0000"
    assert _deposit(svc, token, "S-2", ACC_SMART, "50.25", None) == "0000"  # unlinked
    assert _deposit(svc, token, "M-1", ACC_MANUAL, "300.00", None) == "0000"
    assert _deposit(svc, token, "U-1", "6217999999999999", "7.00", None) == "3001"  # held
    hub = fund.hub
    add_operator(hub, "root", ALL_FUNCTIONS)
    add_operator(hub, "op702", COUNTY_FUNCTIONS, ("511702",))
    add_operator(hub, "pd702", ("view", "view_personal_data"), ("511702",))
    url, stop = serve_app(hub)
    yield fund, url
    stop()


def _row(page: str, account_no: str) -> str:
    found = re.search(rf'<tr id="account-{account_no}">(.*?)</tr>', page, re.S)
    assert found, account_no
    return found.group(1)


def _cell(row: str, cls: str) -> str:
    found = re.search(rf'class="num {cls}">([^<]*)<', row)
    assert found, cls
    return found.group(1)


def test_city_wide_user_sees_both_counties_with_balances(admin_fund):
    _, url = admin_fund
    root = Client(url)
    root.login("root")
    page = root.get("/admin/fund")
    assert page.status_code == 200
    assert "资金监管" in page.text
    smart, manual = _row(page.text, ACC_SMART), _row(page.text, ACC_MANUAL)
    assert _cell(smart, "balance") == "150.25" and _cell(smart, "unlinked") == "1"
    assert _cell(manual, "balance") == "300.00" and _cell(manual, "unlinked") == "1"
    assert "滨河花园" in smart and "渠江苑" in manual
    held = page.text.split('id="fund-held"')[1]
    assert "U-1" in held and "6217999999999999" in held  # no division: city-wide only
    only = root.get("/admin/fund?division=511725").text
    assert ACC_MANUAL in only and ACC_SMART not in only
    assert root.get("/admin/fund?bank=NOPE").text.count('id="account-') == 0
    ledger = root.get(f"/admin/fund/{ACC_MANUAL}")
    assert ledger.status_code == 200
    assert 'id="balance">300.00<' in ledger.text


def test_county_operator_sees_only_its_county(admin_fund):
    _, url = admin_fund
    op = Client(url)
    op.login("op702")
    page = op.get("/admin/fund").text
    assert ACC_SMART in page and ACC_MANUAL not in page and "渠江苑" not in page
    assert "U-1" not in page  # a held event of no division
    assert op.get("/admin/fund?division=511725").text.count('id="account-') == 0
    resp = op.get(f"/admin/fund/{ACC_MANUAL}")
    assert resp.status_code == 404 and "渠江苑" not in resp.text
    assert op.get("/admin/fund/NO-SUCH-ACCOUNT").status_code == 404
    ledger = op.get(f"/admin/fund/{ACC_SMART}")
    assert ledger.status_code == 200
    assert 'id="balance">150.25<' in ledger.text
    assert "S-1" in ledger.text and "S-2" in ledger.text and HOUSE in ledger.text
    assert "未关联" in ledger.text.split('id="entry-S-2"')[1].split("</tr>")[0]
    # personal data masked, and no way to reveal it
    assert "张三" not in ledger.text and "张*" in ledger.text
    assert "6222020000000001" not in ledger.text
    assert 'id="reveal"' not in ledger.text
    assert op.post(f"/admin/fund/{ACC_SMART}/reveal", {"reason": "x"}).status_code == 403


def test_names_are_shown_and_audited_with_view_personal_data(admin_fund):
    fund, url = admin_fund
    pd = Client(url)
    pd.login("pd702")
    masked = pd.get(f"/admin/fund/{ACC_SMART}").text
    assert "张三" not in masked and 'id="reveal"' in masked
    with fund.hub.db.session() as s:
        assert not s.scalars(select(AuditEntry).where(
            AuditEntry.action == "view_personal_data")).all()
    shown = pd.post(f"/admin/fund/{ACC_SMART}/reveal", {"reason": "核对缴款人"})
    assert shown.status_code == 200
    assert "张三" in shown.text and "6222020000000001" in shown.text
    with fund.hub.db.session() as s:
        rows = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "view_personal_data")).all()
    assert [(r.actor, r.target) for r in rows] == [("pd702", f"fund:{ACC_SMART}")]
    assert "核对缴款人" in (rows[0].detail or "")
    # another county's account stays a 404 even when revealing
    assert pd.post(f"/admin/fund/{ACC_MANUAL}/reveal", {"reason": "x"}).status_code == 404


def test_a_bank_partners_messages_are_named_by_the_bank(fund):
    """A bank partner's app id (``bank_icbc_dazhou``, config) showed as is on the
    message list: its ``bank_code`` names it (中国工商银行)."""
    from adapters.bank_soap import fund_desk
    from adapters.fund.instructions import issue

    with fund.hub.transaction() as s:
        issue(fund.hub, s, fund_desk(fund.hub).settings, "01", "ICBC",
              {"account_no": ACC_SMART, "date": "2026-11-20"}, division="511702")
    add_operator(fund.hub, "root", ALL_FUNCTIONS)
    root = Client(fund.server.url)
    root.login("root")
    listing = root.get("/admin/messages").text.split('id="message-list"')[1]
    assert "中国工商银行" in listing and ">bank_icbc_dazhou<" not in listing, listing[:2000]
