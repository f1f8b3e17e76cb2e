"""Every error code of contracts/province.md over a real server: the HTTP status, the
code, the ``errors`` list where there is one, and that nothing was stored (no case, no
outgoing message) — only the call-log row."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select, text

from adapters.signing import new_nonce
from store.models import CallLogEntry, Case, InterfaceSwitch, OutboxMessage, StoredFile
from tests.hubserver import application, province_env


@pytest.fixture
def env(make_hub, store_url):
    partners = {
        # a second provincial app limited to one item (1004 for the others)
        "province_lite": {"base_url": "http://127.0.0.1:9/p", "role": "province",
                          "items": ["property_info_query"]},
    }
    e = province_env(make_hub, store_url, partners=partners,
                     limits={"max_body_bytes": 64 * 1024})
    yield e
    e.close()


def count(hub, model) -> int:
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def assert_nothing_stored(env, ans, status: int, code: str) -> None:
    assert ans.status == status, ans.body
    assert ans.body["code"] == code, ans.body
    assert "Traceback" not in ans.raw.decode("utf-8", "replace")
    assert count(env.hub, Case) == 0
    assert count(env.hub, OutboxMessage) == 0
    assert count(env.hub, StoredFile) == 0
    with env.hub.transaction() as s:
        log = s.scalars(select(CallLogEntry).where(
            CallLogEntry.ref_id == ans.headers["X-Ref-Id"])).one()
        assert log.code == code and log.outcome == "rejected"


BODY = json.dumps(application(), ensure_ascii=False).encode()


def test_1001_unknown_app_id(env):
    ans = env.client.submit("rental_filing", BODY, app_id="nobody")
    assert_nothing_stored(env, ans, 401, "1001")


def test_1001_wrong_signature(env):
    ans = env.client.submit("rental_filing", BODY, secret=b"not-the-secret-at-all")
    assert_nothing_stored(env, ans, 401, "1001")


def test_1001_body_changed_after_signing(env):
    ans = env.client.submit("rental_filing", BODY, headers={"X-Signature": "0" * 64})
    assert_nothing_stored(env, ans, 401, "1001")


def test_1001_unsigned(env):
    ans = env.client.submit("rental_filing", BODY, sign=False)
    assert_nothing_stored(env, ans, 401, "1001")


def test_1001_a_county_app_may_not_pose_as_the_province_with_a_wrong_key(env):
    ans = env.client.submit("rental_filing", BODY, app_id="county_511702")
    assert_nothing_stored(env, ans, 401, "1001")


@pytest.mark.parametrize("skew", [-400, 400])
def test_1002_timestamp_outside_the_window(env, skew):
    ans = env.client.submit("rental_filing", BODY, now=time.time() + skew)
    assert_nothing_stored(env, ans, 401, "1002")


def test_one_request_sent_ten_times_at_once_is_accepted_once(env):
    """The same signed request (same nonce) ten times concurrently: exactly one answer is
    0000, the others 1003, and one case exists — also when several share a commit group
    (store.group_commit, where the nonces of a group are recorded together)."""
    from concurrent.futures import ThreadPoolExecutor

    nonce, now = new_nonce(), time.time()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: env.client.submit(
            "rental_filing", BODY, nonce=nonce, now=now), range(10)))
    codes = sorted(a.body["code"] for a in answers)
    assert codes == ["0000"] + ["1003"] * 9
    assert count(env.hub, Case) == 2  # one parent and its sub-case


def test_a_nonce_seen_before_the_window_is_accepted_again_once(env):
    """A sighting older than the replay window (housekeeping has not removed it yet) is
    not a replay: the request is accepted and the sighting refreshed, so the same nonce
    once more is 1003."""
    from datetime import timedelta

    from store.models import Nonce, utcnow

    nonce = new_nonce()
    long_ago = utcnow() - timedelta(seconds=env.hub.config.scheduler.nonce_window_seconds + 60)
    with env.hub.transaction() as s:
        s.add(Nonce(app_id="province", nonce=nonce, seen_at=long_ago))
    first = env.client.submit("rental_filing", BODY, nonce=nonce)
    assert first.status == 200 and first.body["code"] == "0000", first.body
    with env.hub.transaction() as s:
        assert s.get(Nonce, ("province", nonce)).seen_at > long_ago
    again = env.client.submit("survey_review", application("survey_review"), nonce=nonce)
    assert again.status == 401 and again.body["code"] == "1003"
    assert count(env.hub, Case) == 2  # the first request's parent and sub-case only


def test_1003_nonce_replayed(env):
    nonce = new_nonce()
    first = env.client.submit("property_info_query",
                              application("property_info_query"), nonce=nonce)
    assert first.status == 200 and first.body["code"] == "0000"
    replay = env.client.submit("rental_filing", BODY, nonce=nonce)
    assert replay.status == 401 and replay.body["code"] == "1003"
    assert count(env.hub, Case) == 2  # the first request's parent and sub-case only
    with env.hub.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Case).where(
            Case.item == "rental_filing")) == 0


def test_1004_item_not_allowed_for_this_app(env):
    lite_secret = b"secret-province_lite-0123456789"
    ans = env.client.submit("rental_filing", BODY, app_id="province_lite", secret=lite_secret)
    assert_nothing_stored(env, ans, 403, "1004")
    ok = env.client.submit("property_info_query", application("property_info_query"),
                           app_id="province_lite", secret=lite_secret)
    assert ok.status == 200 and ok.body["code"] == "0000"


def test_1004_a_county_app_may_not_call_the_province_api(env):
    ans = env.client.submit("rental_filing", BODY, app_id="county_511702",
                            secret=b"secret-county_511702-0123456789")
    assert_nothing_stored(env, ans, 403, "1004")


@pytest.mark.parametrize("raw, why", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"[1, 2, 3]", "an array"),
    (b'"just a string"', "a string"),
    (b"", "empty"),
    (b'{"apply_no": NaN}', "NaN"),
    (json.dumps({**application(), "applicant": {"name": "\ud800", "id_type": "1",
                                                "id_no": "11010519491231002X"}}).encode(),
     "a lone surrogate in a name (no UTF-8 can hold it: was 5000)"),
    (json.dumps({**application(), "\udc00": 1}).encode(), "a lone surrogate in a key"),
    (b'{"a": ' + b"[" * 22 + b"1" + b"]" * 22 + b"}", "depth 23"),
    (b"[" * 30_000 + b"]" * 30_000, "very deep (within the size limit)"),
    (json.dumps({"data": {"house_ids": list(range(10_001))}}).encode(), "huge array"),
])
def test_2001_body_not_acceptable(env, raw, why):
    ans = env.client.submit("rental_filing", raw)
    assert_nothing_stored(env, ans, 400, "2001")
    assert env.client.submit("rental_filing", application()).body["code"] == "0000"  # unharmed


def test_2001_body_over_the_size_limit(env):
    big = application()
    big["data"]["address"] = "x" * (70 * 1024)
    ans = env.client.submit("rental_filing", json.dumps(big).encode())
    assert_nothing_stored(env, ans, 400, "2001")


def test_2002_lists_every_bad_field_with_its_path(env):
    body = application("presale_contract_filing", buyer_name="甲", buyer_id_no="110105198001011230",
                       seller_name="乙", seller_id_no="110105198001011238", house_id="H1",
                       address="某路1号", co_ownership="2",
                       co_owners=[{"name": "甲", "id_type": "1", "id_no": "110105198001011238",
                                   "share": "50"},
                                  {"name": "乙", "id_type": "1", "id_no": "11010519491231002X",
                                   "share": "40"}],
                       price=12.5)
    body["applicant"]["id_type"] = "7"
    body["applicant"]["id_no"] = "91510100MA61234567"  # bad USCC check character
    del body["submitted_at"]
    ans = env.client.submit("presale_contract_filing", body)
    assert ans.status == 400 and ans.body["code"] == "2002"
    fields = {e["field"] for e in ans.body["errors"]}
    assert {"applicant.id_no", "submitted_at", "data.buyer_id_no", "data.price"} <= fields
    assert any(f.startswith("data.co_owners") for f in fields)
    # the failed attempt is recorded (statistics) but nothing goes to a county
    with env.hub.transaction() as s:
        assert s.scalars(select(Case.stage)).all() == ["validation_failed"]
        assert s.scalars(select(OutboxMessage.interface)).all() == ["province.status"]


def test_2002_a_control_character_in_a_field_is_a_field_error(env):
    """A NUL in a name, an address or a material's file id (no PostgreSQL text column
    holds one) is 2002 naming the field, recorded as a failed validation; line breaks
    stay text."""
    body = application(address="某路\x001号")
    body["applicant"]["name"] = "张\x00三"
    body["materials"] = [{"file_id": "f\x00", "name": "身份证.pdf"}]
    ans = env.client.submit("rental_filing", body)
    assert (ans.status, ans.body["code"]) == (400, "2002"), ans.raw[:400]
    assert {e["field"] for e in ans.body["errors"]} == {
        "applicant.name", "data.address", "materials[0].file_id"}
    with env.hub.transaction() as s:
        assert s.scalars(select(Case.stage)).all() == ["validation_failed"]
    lines = application(apply_no="510000-20261122-000002", address="某路1号\n2单元")
    assert env.client.submit("rental_filing", lines).body["code"] == "0000"


def test_2003_not_this_city(env):
    body = application()
    body["city_code"] = "440700"
    ans = env.client.submit("rental_filing", body)
    assert ans.status == 400 and ans.body["code"] == "2003"
    assert ans.body["errors"][0]["field"] == "city_code"
    with env.hub.transaction() as s:
        assert s.scalars(select(Case.stage)).all() == ["validation_failed"]
        assert s.scalars(select(OutboxMessage.interface)).all() == ["province.status"]


def test_2004_not_a_county_of_this_city(env):
    ans = env.client.submit("rental_filing", application(counties=("511702", "440703")))
    assert ans.status == 400 and ans.body["code"] == "2004"
    assert ans.body["errors"] == [
        {"field": "county_codes[1]", "reason": "440703 is not a county of 511700"}]
    with env.hub.transaction() as s:
        assert s.scalars(select(Case.stage)).all() == ["validation_failed"]
        assert s.scalars(select(OutboxMessage.interface)).all() == ["province.status"]


def test_3001_interface_disabled_by_an_operator(env):
    with env.hub.transaction() as s:
        s.add(InterfaceSwitch(kind="interface", name="province.in.rental_filing",
                              enabled=False, reason="maintenance"))
    ans = env.client.submit("rental_filing", BODY)
    assert_nothing_stored(env, ans, 503, "3001")
    # other items still work
    assert env.client.submit("survey_review", application("survey_review")).status == 200


def test_4001_unknown_item(env):
    ans = env.client.submit("no_such_item", BODY)
    assert_nothing_stored(env, ans, 404, "4001")
    status_only = env.client.submit("maintenance_fund_deposit", BODY)
    assert status_only.status == 404 and status_only.body["code"] == "4001"


def test_4001_unknown_item_still_needs_a_signature(env):
    ans = env.client.submit("no_such_item", BODY, sign=False)
    assert ans.status == 401 and ans.body["code"] == "1001"


def test_5000_has_a_reference_that_finds_the_logged_error_and_no_stack_trace(env):
    with env.hub.transaction() as s:  # break the store under the running server
        s.execute(text("ALTER TABLE cases RENAME TO cases_gone"))
    ans = env.client.submit("rental_filing", BODY)
    assert ans.status == 500 and ans.body["code"] == "5000"
    raw = ans.raw.decode()
    assert "Traceback" not in raw and "cases" not in raw
    ref = ans.body["data"]["ref_id"]
    assert ref in ans.body["message"] and ans.headers["X-Ref-Id"] == ref
    with env.hub.transaction() as s:
        log = s.scalars(select(CallLogEntry).where(CallLogEntry.ref_id == ref)).one()
        assert log.outcome == "error" and "Traceback" in log.error and "cases" in log.error
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
