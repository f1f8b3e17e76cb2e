"""Hostile JSON and numeric headers (issue 10), over the real server on both stores.

Every endpoint that parses a caller's JSON (county events, apply-and-accept, review link,
the province intake) has the same limits — size, depth, array length, no NaN or
Infinity, bounded numbers, no repeated key — and answers 2001 without changing
anything; ``X-Timestamp`` values that are not Unix seconds are 1002, never 5000. The hub
sends no NaN or Infinity to anyone: outbound JSON, its own answers, a county's answer
that carries one is a failed delivery, and a workbook's result cell is refused.
"""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openpyxl
import pytest
import requests
from sqlalchemy import func, select

from adapters.base import Partner
from adapters.http import JsonClient
from adapters.manual_excel import export_workbook, import_workbook
from adapters.signing import new_nonce, signature
from store.models import CallLogEntry, Case, OutboxMessage, StageEvent
from tests.county_support import event, new_case, post_signed, secret, served
from tests.hubserver import PROVINCE_SECRET, HubServer, application, province_env

EVENTS = "/api/county/v1/events"
APPLY = "/api/county/v1/apply-and-accept"
REVIEW = "/api/county/v1/review-link"
MAX_BODY = 64 * 1024

#: (what, a JSON text with the placeholder @ where the hostile value goes)
HOSTILE = [
    ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
    ("1e309 (becomes inf)", "1e309"), ("-1e400", "-1e400"),
    ("a 10 000-digit integer", "9" * 10_000), ("a 23-digit integer", "99999999999999999999999"),
    ("nested 25 deep", "[" * 25 + "]" * 25),
    ("an array of 10 001", "[" + ",".join(["0"] * 10_001) + "]"),
    # a string no UTF-8 can hold (was 5000: sealing failed on it)
    ("a lone surrogate", '"\\ud800"'), ("a lone low surrogate in an object", '{"k": "a\\udc00"}'),
]


def count(hub, model) -> int:
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def state(hub) -> tuple[int, int, int]:
    return count(hub, Case), count(hub, StageEvent), count(hub, OutboxMessage)


def post_raw(url: str, path: str, raw: bytes, app_id: str, timestamp: str | None = None,
             key: bytes | None = None) -> requests.Response:
    """A request signed over ``raw`` as it is (and over ``timestamp`` as given)."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    nonce = new_nonce()
    headers = {"Content-Type": "application/json", "X-App-Id": app_id, "X-Timestamp": ts,
               "X-Nonce": nonce,
               "X-Signature": signature(key or secret(app_id), "POST", path, ts, nonce, raw)}
    return requests.post(url + path, data=raw, headers=headers, timeout=30)


def with_value(body: dict, field: str, value: str) -> bytes:
    """``body`` as JSON with ``field``'s value replaced by the raw text ``value``."""
    text = json.dumps({**body, field: "@@HOSTILE@@"}, ensure_ascii=False)
    return text.replace('"@@HOSTILE@@"', value).encode()


@pytest.fixture
def hub(make_hub, store_url):
    return make_hub(store_url, inbound=["county_smart"], limits={"max_body_bytes": MAX_BODY})


def test_county_endpoints_refuse_hostile_json_and_change_nothing(hub):
    case_no = new_case(hub, "property_info_query", "511703", apply_no="J-1")
    accepted = event(case_no, "property_info_query", "511703", "accepted")
    completed = event(case_no, "property_info_query", "511703", "completed")
    opened = {"item": "maintenance_fund_deposit", "county_code": "511703",
              "county_case_no": "WX-J-1", "at": "2026-11-23T09:00:00+08:00",
              "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"}}
    with served(hub) as url:
        assert post_signed(url, EVENTS, accepted, "county_511703").json()["code"] == "0000"
        before = state(hub)
        for what, value in HOSTILE:
            for path, body, field in ((EVENTS, completed, "result"), (APPLY, opened, "data"),
                                      (REVIEW, {"case_no": case_no}, "extra")):
                r = post_raw(url, path, with_value(body, field, value), "county_511703")
                assert (r.status_code, r.json()["code"]) == (400, "2001"), (what, path, r.text)
        # the same inside an object that is otherwise a valid completed event
        for what, value in HOSTILE[:5]:
            raw = with_value(completed, "result", '{"summaries": [], "area": ' + value + "}")
            r = post_raw(url, EVENTS, raw, "county_511703")
            assert (r.status_code, r.json()["code"]) == (400, "2001"), (what, r.text)
        # a repeated key (two parties could read one signed body two ways)
        raw = json.dumps(completed).replace('"stage": "completed"',
                                            '"stage": "completed", "stage": "rejected"').encode()
        r = post_raw(url, EVENTS, raw, "county_511703")
        assert (r.status_code, r.json()["code"]) == (400, "2001"), r.text
        # larger than the limit, and not UTF-8
        big = with_value(completed, "opinion", json.dumps("意" * MAX_BODY))
        assert post_raw(url, EVENTS, big, "county_511703").json()["code"] == "2001"
        assert post_raw(url, EVENTS, b"\xff\xfe{}", "county_511703").json()["code"] == "2001"
        # a time Python cannot hold after its offset is applied: a field error
        r = post_signed(url, EVENTS, {**accepted, "stage": "approved",
                                      "at": "0001-01-01T00:00:00+08:00"}, "county_511703")
        assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
        assert [e["field"] for e in r.json()["errors"]] == ["at"]
    assert state(hub) == before
    with hub.transaction() as s:
        codes = set(s.scalars(select(CallLogEntry.code)))
    assert "5000" not in codes and "2001" in codes


BAD_TIMESTAMPS = ["1e309", "99999999999999999999999", "-1", "nan", "NaN", "inf", "9" * 10_000,
                  "", "1.5", "+1764000000", "0x10", "1764000000" + "0" * 30]


def test_numeric_headers_are_bounded_before_conversion(make_hub, store_url):
    env = province_env(make_hub, store_url, inbound=["province", "county_smart"])
    try:
        url = env.server.url
        case_no = new_case(env.hub, "rental_filing", "511702", apply_no="T-1")
        before = state(env.hub)
        county_raw = json.dumps(event(case_no, "rental_filing", "511702", "accepted")).encode()
        province_raw = json.dumps(application()).encode()
        for ts in BAD_TIMESTAMPS:
            r = post_raw(url, EVENTS, county_raw, "county_511702", timestamp=ts)
            expected = "1001" if ts == "" else "1002"  # an empty header is a missing one
            assert (r.status_code, r.json()["code"]) == (401, expected), (ts[:30], r.text)
            r = post_raw(url, "/api/province/v1/rental_filing", province_raw, "province",
                         timestamp=ts, key=PROVINCE_SECRET)
            assert (r.status_code, r.json()["code"]) == (401, expected), (ts[:30], r.text)
        assert state(env.hub) == before
        with env.hub.transaction() as s:
            codes = list(s.scalars(select(CallLogEntry.code)))
        assert "5000" not in codes and codes.count("1002") == 2 * (len(BAD_TIMESTAMPS) - 1)
    finally:
        env.close()


def test_province_intake_refuses_nan_and_unbounded_numbers(make_hub, store_url):
    env = province_env(make_hub, store_url)
    try:
        for what, value in HOSTILE[:7]:
            body = application()
            raw = with_value(body, "data", '{"price": ' + value + "}")
            ans = env.client.submit("rental_filing", raw)
            assert (ans.status, ans.body["code"]) == (400, "2001"), (what, ans.body)
        assert count(env.hub, Case) == 0 and count(env.hub, OutboxMessage) == 0
    finally:
        env.close()


class _NanAnswer(BaseHTTPRequestHandler):
    """A partner whose answers carry NaN (Python's json would read it as a float)."""

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.hits += 1  # type: ignore[attr-defined]
        raw = b'{"code": "0000", "message": "ok", "data": {"area": NaN}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def test_the_hub_never_sends_or_takes_nan(hub, peer):
    partner = Partner(app_id="county_511702", base_url=peer.url + "/county/511702",
                      secret=b"k" * 16, division="511702")
    client = JsonClient("cityhub_511700", pool_size=1)
    try:
        for bad in (float("nan"), float("inf"), float("-inf")):
            result = client.post(partner, "rental_filing", {"case_no": "X", "area": bad}, 5)
            assert not result.ok and result.permanent and "not sent" in result.error
        assert peer.state.received == []  # nothing went out

        nan_peer = ThreadingHTTPServer(("127.0.0.1", 0), _NanAnswer)
        nan_peer.hits = 0  # type: ignore[attr-defined]
        threading.Thread(target=nan_peer.serve_forever, daemon=True).start()
        try:
            far = Partner(app_id="county_511702", secret=b"k" * 16, division="511702",
                          base_url=f"http://127.0.0.1:{nan_peer.server_address[1]}/c")
            result = client.post(far, "property_info_query", {"case_no": "X"}, 5)
            assert nan_peer.hits == 1  # type: ignore[attr-defined]
            assert not result.ok and "not JSON" in result.error
        finally:
            nan_peer.shutdown()
            nan_peer.server_close()
    finally:
        client.close()
    # the web app's own answers are strict JSON too
    server = HubServer(hub).start()
    try:
        with pytest.raises(ValueError):
            server.app.json.dumps({"area": float("nan")})
    finally:
        server.stop()


def test_workbook_result_cell_with_nan_is_a_row_error(make_hub, store_url):
    hub = make_hub(store_url)
    new_case(hub, "presale_contract_verify", "511725", apply_no="X-1")
    xlsx, _ = export_workbook(hub, "511725", with_materials=False)
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    ws.cell(row=2, column=header.index("新环节") + 1).value = "受理"
    ws.append([c.value for c in ws[2]])
    ws.cell(row=3, column=header.index("新环节") + 1).value = "办结"
    ws.cell(row=3, column=header.index("结果") + 1).value = '{"filed": NaN}'
    out = io.BytesIO()
    wb.save(out)
    report = import_workbook(hub, out.getvalue(), "admin01")
    assert report.applied == 0 and [(r, "JSON" in why) for _, r, why in report.errors] == [
        (3, True)]
    assert count(hub, StageEvent) == 0 and count(hub, OutboxMessage) == 0


def test_wrong_types_in_every_field_are_answered_with_a_contract_code(hub):
    case_no = new_case(hub, "rental_filing", "511702", apply_no="W-1")
    good = event(case_no, "rental_filing", "511702", "accepted")
    opened = {"item": "maintenance_fund_deposit", "county_code": "511702",
              "county_case_no": "WX-W-1", "at": "2026-11-23T09:00:00+08:00",
              "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"}}
    odd = [{"a": 1}, [1, 2], 12345678901234, 1.5, True, None, "x" * 5000]
    sent = 0
    with served(hub) as url:
        before = state(hub)
        for path, body in ((EVENTS, good), (APPLY, opened), (REVIEW, {"case_no": case_no})):
            for field in body:
                for value in odd:
                    r = post_signed(url, path, {**body, field: value}, "county_511702")
                    sent += 1
                    assert r.status_code < 500 and r.json()["code"] in (
                        "0000", "1004", "2001", "2002", "4001"), (path, field, value, r.text)
        # nothing was recorded by any of them but, at most, the one valid accepted
        assert stages_of_count(hub) <= 1 and state(hub)[0] == before[0]
    with hub.transaction() as s:
        logged = s.scalar(select(func.count()).select_from(CallLogEntry)) or 0
        codes = set(s.scalars(select(CallLogEntry.code)))
    assert logged == sent and "5000" not in codes


def stages_of_count(hub) -> int:
    return count(hub, StageEvent)


def test_control_characters_and_unholdable_times_are_field_errors(hub):
    """A NUL (no PostgreSQL text column can hold one: was 5000 there) or another control
    character in a county's stage fields or case number, and a time with no UTC a
    datetime can hold in apply-and-accept (was 5000 on both stores), are 2002 with the
    field, and change nothing; an opinion keeps its line breaks, a name its 全角空格."""
    case_no = new_case(hub, "rental_filing", "511703", apply_no="NUL-1")
    opened = {"item": "rental_filing", "county_code": "511703", "county_case_no": "WX-N-1",
              "at": "2026-11-23T09:00:00+08:00",
              "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"},
              "data": {"lessee_name": "李四", "lessee_id_no": "11010519491231002X",
                       "lessor_name": "王五", "lessor_id_no": "110105198001011238",
                       "house_id": "H-1", "address": "通川区某路1号"}}
    with served(hub) as url:
        ok = event(case_no, "rental_filing", "511703", "accepted", operator="王　窗口",
                   opinion="材料齐全\n同意受理")
        r = post_signed(url, EVENTS, ok, "county_511703")
        assert r.json()["code"] == "0000" and r.json()["data"]["recorded"], r.text
        before = state(hub)
        for field, value in (("filing_no", "F\x00"), ("operator", "王\x00"),
                             ("operator", "王\x1b[31m"), ("opinion", "同意\x00")):
            body = event(case_no, "rental_filing", "511703", "completed",
                         **{"filing_no": "F-1", field: value})
            r = post_signed(url, EVENTS, body, "county_511703")
            assert (r.status_code, r.json()["code"]) == (400, "2002"), (field, r.text)
            assert [e["field"] for e in r.json()["errors"]] == [field]
        r = post_signed(url, EVENTS, event("5\x001", "rental_filing", "511703", "accepted"),
                        "county_511703")
        assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
        r = post_signed(url, APPLY, {**opened, "at": "9999-12-31T23:59:59-14:00"},
                        "county_511703")
        assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
        assert [e["field"] for e in r.json()["errors"]] == ["at"]
        r = post_signed(url, APPLY, {**opened, "operator": "李\x00"}, "county_511703")
        assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
        assert state(hub) == before
    with hub.transaction() as s:
        assert "5000" not in set(s.scalars(select(CallLogEntry.code)))


def test_a_stage_time_ahead_of_the_clock_is_a_field_error(hub):
    """A stage reported later than 300 s past the hub's clock (the contracts' tolerance
    for a caller's clock) — 9999-12-31, or an hour from now — is 2002 naming ``at`` on
    the events API and in apply-and-accept, and changes nothing; a minute ahead (a
    county's clock a little fast) is taken."""
    from datetime import UTC, datetime, timedelta

    case_no = new_case(hub, "rental_filing", "511703", apply_no="AHEAD-1")
    now = datetime.now(UTC)
    opened = {"item": "rental_filing", "county_code": "511703", "county_case_no": "WX-A-1",
              "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"},
              "data": {"lessee_name": "李四", "lessee_id_no": "11010519491231002X",
                       "lessor_name": "王五", "lessor_id_no": "110105198001011238",
                       "house_id": "H-1", "address": "通川区某路1号"}}
    with served(hub) as url:
        before = state(hub)
        for at in ("9999-12-31T20:00:00Z", (now + timedelta(hours=1)).isoformat()):
            r = post_signed(url, EVENTS, event(case_no, "rental_filing", "511703", "accepted",
                                               at=at), "county_511703")
            assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
            assert [e["field"] for e in r.json()["errors"]] == ["at"]
            r = post_signed(url, APPLY, {**opened, "at": at}, "county_511703")
            assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
            assert [e["field"] for e in r.json()["errors"]] == ["at"]
        assert state(hub) == before
        soon = (now + timedelta(seconds=60)).isoformat()
        r = post_signed(url, EVENTS, event(case_no, "rental_filing", "511703", "accepted",
                                           at=soon), "county_511703")
        assert r.json()["code"] == "0000" and r.json()["data"]["recorded"], r.text
        r = post_signed(url, APPLY, {**opened, "at": soon}, "county_511703")
        assert r.json()["code"] == "0000", r.text
