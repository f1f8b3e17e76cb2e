"""Personal data masked in every admin view for a role without ``view_personal_data``,
through the real server: stored bodies that are JSON with personal data under
unexpected keys and lists, truncated, not JSON, XML, 1000 levels deep; call-log pages,
the case journey (applicant, bodies, stage opinion), alerts, messages, the fund pages
(buyer, payer and account through the real SOAP service), the audit trail. Masking never
fails open: what cannot be parsed shows nothing of itself."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update

from store.calllog import CallRecord, call_row
from store.cases import record_stage
from store.models import Alert, AuditEntry, CallLogEntry, Case, OutboxMessage, utcnow
from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator, new_case, serve_app
from tests.test_bank_fixtures import ACC_SMART, HOUSE

pytest_plugins = ["tests.test_bank_fixtures"]  # the `fund` fixture

ID_NO = "11010519491231002X"
PHONE = "13800138000"
NAME = "欧阳锋"
CARD = "6222020200112233445"
#: What must never appear on a masked page (the name's tail too: 欧*** keeps only 欧).
MARKERS = (ID_NO, PHONE, NAME, "阳锋", CARD)
TEXT = f"联系人{NAME}，电话{PHONE}，身份证{ID_NO}，卡号{CARD}"
WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


def _shapes() -> dict[str, object]:
    """Stored bodies of every shape, each carrying all the markers."""
    full = {"applicant": {"name": NAME, "id_no": ID_NO, "phone": PHONE}}
    return {
        "unexpected_keys": {"remark": TEXT, "x": [[NAME, ID_NO], [PHONE, CARD]], NAME: "k",
                            "n": int(PHONE), "card": int(CARD), "ok_code": TEXT,
                            "msg": f"{ID_NO} {PHONE}", "holderInfo": {"HolderName": NAME}},
        "truncated_json": json.dumps(full, ensure_ascii=False)[:-9],
        "not_json": f"name={NAME}&id={ID_NO}&tel={PHONE}&card={CARD}",
        "logged_truncated": {"truncated": True, "bytes": 300000,
                             "text": json.dumps(full, ensure_ascii=False)[:-3]},
        "logged_text": {"truncated": False, "bytes": 90, "text": TEXT},
        "deep_1000": "[" * 1000 + json.dumps(TEXT, ensure_ascii=False) + "]" * 1000,
        "deep_1000_obj": '{"a":' * 1000 + json.dumps(TEXT, ensure_ascii=False) + "}" * 1000,
        "deep_60": json.loads("[" * 60 + json.dumps(TEXT, ensure_ascii=False) + "]" * 60),
        "xml": (f"<Envelope><Body><Notice><BuyerName>{NAME}</BuyerName><IdNo>{ID_NO}</IdNo>"
                f"<Remark>{TEXT}</Remark><Acct no=\"{CARD}\">{CARD}</Acct></Notice></Body>"
                "</Envelope>"),
        "broken_xml": f"<Envelope><BuyerName>{NAME}</BuyerName><IdNo>{ID_NO}",
        "xxe": ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/hostname">]>'
                f"<r><Name>{NAME}</Name><Remark>{TEXT}&e;</Remark></r>"),
        "json_in_string": json.dumps(full, ensure_ascii=False),
        "plain_string_list": [TEXT, [TEXT, [TEXT]]],
    }


def _assert_masked(text: str, where: str) -> None:
    for marker in MARKERS:
        assert marker not in text, (where, marker)


@pytest.fixture
def masked_env(fund):  # type: ignore[no-untyped-def]
    """A deposit with the markers through the real SOAP service, a case with call-log
    rows of every shape, a stage opinion, alerts, a failed message and audit rows with
    the markers; the admin page over HTTP."""
    svc = fund.client()
    answer = svc.DepositNotice(
        token=fund.token(), serial_no="S-MARK", account_no=ACC_SMART, amount=Decimal("10.00"),
        occurred_at=WHEN, payer_name=NAME, payer_account=CARD, pay_method="01",
        house_code=HOUSE, buyer_name=NAME, remark=TEXT)
    assert answer.result_code == "0000"
    hub = fund.hub
    add_operator(hub, "root", ALL_FUNCTIONS)
    add_operator(hub, "viewer", ("view", "export", "view_audit"), ("511702",))
    case = new_case(hub, ["511702"], "A-MASK", id_no=ID_NO)
    calls: dict[str, int] = {}
    with hub.transaction() as s:
        parent = s.scalars(select(Case).where(Case.case_no == case["parent"])).one()
        for name, body in _shapes().items():
            rec = CallRecord(interface=f"shape.{name}", direction="in", party="province",
                             started_at=utcnow(), division="511702", case_id=parent.id,
                             outcome="error", code="2002", error=TEXT, request=body,
                             response={"code": "2002", "msg": TEXT})
            calls[name] = s.execute(insert(CallLogEntry).values(**call_row(hub.cipher, rec))
                                    .returning(CallLogEntry.id)).scalar_one()
        sub = s.get(Case, case["sub_ids"]["511702"])
        record_stage(s, hub, sub, "accepted", operator=NAME, opinion=TEXT, push=False)
        for i, detail in enumerate((json.dumps({"who": NAME, "rows": [[ID_NO, PHONE]]},
                                               ensure_ascii=False),
                                    TEXT, _shapes()["deep_1000"])):
            s.add(Alert(kind="test", severity="warning", title=f"告警{i} {ID_NO} {PHONE}",
                        detail=detail, division="511702", ref=f"t{i}"))
        s.execute(update(OutboxMessage).where(OutboxMessage.division == "511702")
                  .values(last_error=TEXT, status="dead"))
        hub.audit(s, "root", "test_marker", case["parent"],
                  {"reason": TEXT, "people": [{"n": NAME}]})
        s.add(AuditEntry(actor="root", action="test_raw", target="x", detail=TEXT))
    url, stop = serve_app(hub)
    yield hub, url, case, calls
    stop()


def _pages(case: dict, calls: dict[str, int]) -> list[str]:  # type: ignore[type-arg]
    return [
        f"/admin/cases/{case['parent']}", f"/admin/cases/{case['subs']['511702']}",
        *(f"/admin/calls/{cid}" for cid in calls.values()),
        "/admin/calls", "/admin/interfaces", "/admin/", "/admin/messages?status=dead",
        "/admin/fund", f"/admin/fund/{ACC_SMART}", "/admin/audit",
    ]


def test_every_view_masks_personal_data_in_every_shape(masked_env):  # type: ignore[no-untyped-def]
    hub, url, case, calls = masked_env
    viewer = Client(url)
    assert viewer.login("viewer").status_code == 200
    root = Client(url)
    assert root.login("root").status_code == 200
    for path in _pages(case, calls):
        for who, client in (("viewer", viewer), ("root", root)):
            resp = client.get(path)
            assert resp.status_code == 200, (who, path, resp.status_code)
            _assert_masked(resp.text, f"{who} {path}")
    # the resubmit dry run lists the failed messages with their errors
    root.get("/admin/messages")
    preview = root.post("/admin/messages/resubmit", {"status": "dead", "division": "511702",
                                                     "dry_run": "1"})
    assert preview.status_code == 200 and 'id="preview"' in preview.text
    assert 'id="preview-count">0<' not in preview.text
    _assert_masked(preview.text, "resubmit preview")
    # what can be masked is still there, masked (not blanket-hidden)
    page = viewer.get(f"/admin/cases/{case['parent']}").text
    assert "110***********002X" in page and "138****8000" in page and "欧**" in page
    for name in ("truncated_json", "not_json", "deep_1000", "deep_1000_obj", "broken_xml"):
        text = viewer.get(f"/admin/calls/{calls[name]}").text
        assert "不予显示" in text or "无法解密" in text, name
    xxe = viewer.get(f"/admin/calls/{calls['xxe']}").text
    assert "不予显示" in xxe or "欧**" in xxe
    hostname = Path("/etc/hostname").read_text().strip()
    assert not hostname or f">{hostname}" not in xxe
    xml = viewer.get(f"/admin/calls/{calls['xml']}").text
    assert "BuyerName" in xml and "欧**" in xml
    assert "层级过深" in viewer.get(f"/admin/calls/{calls['deep_60']}").text


def test_revealing_shows_the_markers(masked_env):  # type: ignore[no-untyped-def]
    """The markers are really in the store (so the masked pages above could fail): the
    city-wide operator with ``view_personal_data`` reveals them, audited."""
    hub, url, case, calls = masked_env
    root = Client(url)
    root.login("root")
    root.get(f"/admin/calls/{calls['unexpected_keys']}")
    shown = root.post(f"/admin/calls/{calls['unexpected_keys']}").text
    assert ID_NO in shown and NAME in shown and PHONE in shown
    root.get(f"/admin/cases/{case['parent']}")
    revealed = root.post(f"/admin/cases/{case['parent']}/reveal", {"reason": "核对"}).text
    assert ID_NO in revealed and TEXT in revealed
    root.get(f"/admin/fund/{ACC_SMART}")
    fund_page = root.post(f"/admin/fund/{ACC_SMART}/reveal", {"reason": "核对"}).text
    assert NAME in fund_page and CARD in fund_page
    viewer = Client(url)
    viewer.login("viewer")
    viewer.get(f"/admin/calls/{calls['unexpected_keys']}")
    assert viewer.post(f"/admin/calls/{calls['unexpected_keys']}").status_code == 403
