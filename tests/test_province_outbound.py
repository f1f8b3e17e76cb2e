"""Hub → province through the outbox: stages, results and the review-link request,
signed under the hub's app id and checked by the simulated province; anything but
``0000`` is retried, never parked at once."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from adapters.signing import signed_headers
from store.cases import province_message, record_stage
from store.models import CallLogEntry, Case, OutboxMessage
from tests.hubserver import PROVINCE_SECRET, application, province_env


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url)
    yield e
    e.close()


def sub_case(env) -> Case:
    assert env.client.submit("rental_filing", application()).body["code"] == "0000"
    with env.hub.transaction() as s:
        return s.scalars(select(Case).where(Case.county_code == "511702")).one()


def province_rows(hub):
    with hub.transaction() as s:
        return list(s.scalars(select(OutboxMessage).where(OutboxMessage.partner == "province")
                              .order_by(OutboxMessage.id)))


def test_each_recorded_stage_is_pushed_signed(env):
    case = sub_case(env)
    with env.hub.transaction() as s:
        case = s.get(Case, case.id)
        record_stage(s, env.hub, case, "accepted", operator="李科员", opinion="材料齐全")
        record_stage(s, env.hub, case, "completed", operator="李科员", filing_no="ZL-2026-1")
    env.drain()
    pushes = env.province.state.pushes("status")
    assert [p.body["stage"] for p in pushes] == ["accepted", "completed"]
    assert {p.app_id for p in pushes} == {"cityhub_511700"}
    assert env.province.state.refused == []
    assert pushes[1].body["filing_no"] == "ZL-2026-1"
    assert pushes[0].body["case_no"] == case.case_no and pushes[0].body["county_code"] == "511702"
    assert all(m.status == "done" for m in province_rows(env.hub))


@pytest.mark.parametrize("mode", ["reject", "fail"])
def test_anything_but_0000_is_retried_until_accepted(env, mode):
    case = sub_case(env)
    env.province.state.mode = mode
    with env.hub.transaction() as s:
        record_stage(s, env.hub, s.get(Case, case.id), "accepted")
    env.drain(rounds=1)
    [row] = province_rows(env.hub)
    assert row.status == "pending" and row.attempts == 1 and row.last_error
    env.province.state.mode = "ok"
    with env.hub.transaction() as s:
        s.get(OutboxMessage, row.id).next_attempt_at = row.created_at
    env.drain()
    [row] = province_rows(env.hub)
    assert row.status == "done" and row.attempts == 2
    assert [p.body["stage"] for p in env.province.state.pushes("status")] == ["accepted"]


def test_a_wrong_key_is_refused_by_the_province(make_hub, store_url):
    e = province_env(make_hub, store_url)
    try:
        with e.hub.transaction() as s:
            s.add(Case(case_no="X1", item="rental_filing", apply_no="A1", city_code="511700",
                       county_code="", stage="received", payload_enc=b"x"))
        # the province's copy of the key differs from the hub's: every push is refused
        e.province.secret = b"some-other-secret-0000"
        with e.hub.transaction() as s:
            case = s.scalars(select(Case)).one()
            e.hub.enqueue(s, province_message(e.hub, case, "status", {"stage": "accepted"}))
        e.drain(rounds=1)
        assert e.province.state.pushes() == []
        assert [r["code"] for r in e.province.state.refused] == ["1001"]
        [row] = province_rows(e.hub)
        assert row.status == "pending" and "1001" in row.last_error
    finally:
        e.close()


def test_review_link_direct_and_through_the_outbox(env):
    case = sub_case(env)
    url = env.hub.adapter("province").review_link(case.apply_no, case.item, "511702", case.id)
    assert url and url.startswith("https://review.example.gov.cn/r/" + case.apply_no)
    [push] = env.province.state.pushes("review-link")
    assert push.body == {"apply_no": case.apply_no, "item": "rental_filing",
                         "county_code": "511702"}
    with env.hub.transaction() as s:
        log = s.scalars(select(CallLogEntry).where(
            CallLogEntry.interface == "province.review-link")).one()
        assert log.direction == "out" and log.outcome == "ok" and log.code == "0000"
        env.hub.enqueue(s, province_message(env.hub, s.get(Case, case.id), "review-link",
                                            push.body))
    env.drain()
    assert len(env.province.state.pushes("review-link")) == 2
    env.province.state.mode = "fail"
    assert env.hub.adapter("province").review_link(case.apply_no, case.item, "511702") is None


def test_the_simulated_province_refuses_replays_and_bad_signatures(env):
    import urllib3

    body = json.dumps({"stage": "accepted"}).encode()
    path = "/province/status"
    headers = signed_headers("cityhub_511700", PROVINCE_SECRET, "POST", path, body)
    http = urllib3.PoolManager()
    first = http.request("POST", env.province.url + path, body=body, headers=headers)
    again = http.request("POST", env.province.url + path, body=body, headers=headers)
    forged = http.request("POST", env.province.url + path, body=body + b" ", headers=headers)
    assert (first.status, again.status, forged.status) == (200, 401, 401)
    assert json.loads(again.data)["code"] == "1003" and json.loads(forged.data)["code"] == "1001"
    assert len(env.province.state.pushes()) == 1
