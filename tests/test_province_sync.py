"""Sync queries: answered in the same call when the county answers in time; otherwise
``pending``, and the county's answer is pushed to the province's ``/results`` later."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from store.models import CallLogEntry, InterfaceSwitch, OutboxMessage
from tests.hubserver import application, province_env
from tests.support import ROOT, wait_until

VERIFY = "presale_contract_verify"


@pytest.fixture
def env(make_hub, store_url, tmp_path: Path):
    table = yaml.safe_load((ROOT / "routes/tables/dazhou.yaml").read_text(encoding="utf-8"))
    for item in table["counties"]["511702"]["items"]:
        table["counties"]["511702"]["items"][item] = {"timeout": 1, "retry": "query"}
    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True))
    e = province_env(make_hub, store_url, routing_table=str(path))
    yield e
    e.close()


def county_rows(hub):
    with hub.transaction() as s:
        return list(s.scalars(select(OutboxMessage).where(
            OutboxMessage.interface.like("county.%"))))


def test_answered_in_the_same_call(env):
    env.county.state.answers[VERIFY] = {"filed": True}
    ans = env.client.submit(VERIFY, application(VERIFY))
    assert ans.status == 200 and ans.body == {"code": "0000", "message": "ok",
                                              "data": {"filed": True}}
    [(path, body, headers)] = env.county.state.received
    assert path == f"/county/511702/{VERIFY}" and body["data"]["contract_no"] == "YS-2026-0001"
    assert headers["X-App-Id"] == "cityhub_511700"
    [row] = county_rows(env.hub)
    assert row.status == "done" and row.attempts == 1
    with env.hub.transaction() as s:
        out = s.scalars(select(CallLogEntry).where(CallLogEntry.direction == "out")).one()
        assert out.interface == f"county.{VERIFY}" and out.outcome == "ok"
    env.drain()
    assert env.province.state.pushes("results") == []  # answered already, nothing to push
    # a repeat returns the same answer without calling the county again
    again = env.client.submit(VERIFY, application(VERIFY))
    assert again.body == ans.body and len(env.county.state.received) == 1


def test_manual_county_answers_pending(env):
    ans = env.client.submit(VERIFY, application(VERIFY, counties=("511725",)))
    assert ans.status == 200 and ans.body["code"] == "0000"
    assert ans.body["data"]["status"] == "pending" and ans.body["data"]["case_no"]
    assert county_rows(env.hub) == [] and env.county.state.received == []


def test_slow_county_answers_pending_then_results_are_pushed(env):
    env.county.state.answers[VERIFY] = {"filed": False}
    env.county.state.mode, env.county.state.delay = "slow", 2.5
    started = time.monotonic()
    ans = env.client.submit(VERIFY, application(VERIFY))
    assert time.monotonic() - started < 2.4  # the route's 1 s timeout, not the county's pace
    assert ans.body["code"] == "0000" and ans.body["data"]["status"] == "pending"
    [row] = county_rows(env.hub)
    assert row.status == "pending" and row.attempts == 1 and "Timeout" in row.last_error
    env.county.state.mode = "ok"
    wait_until(lambda: env.drain() and False or env.province.state.pushes("results"),
               timeout=15, what="the /results push")
    [push] = env.province.state.pushes("results")
    sub_case_no = ans.body["data"]["sub_cases"][0]["case_no"]
    assert push.body == {"apply_no": "510000-20261122-000001", "item": VERIFY,
                         "county_code": "511702", "case_no": sub_case_no,
                         "data": {"filed": False}}
    assert env.province.state.refused == []


def test_disabled_county_interface_answers_pending_and_delivers_when_enabled(env):
    env.county.state.answers[VERIFY] = {"filed": True}
    with env.hub.transaction() as s:
        s.add(InterfaceSwitch(kind="interface", name=f"county.{VERIFY}", enabled=False))
    ans = env.client.submit(VERIFY, application(VERIFY))
    assert ans.body["data"]["status"] == "pending"
    assert env.county.state.received == []
    with env.hub.transaction() as s:
        s.get(InterfaceSwitch, ("interface", f"county.{VERIFY}")).enabled = True
        s.query(OutboxMessage).update({"next_attempt_at": OutboxMessage.created_at})
    env.drain()
    env.drain()
    [push] = env.province.state.pushes("results")
    assert push.body["data"] == {"filed": True}


def test_async_query_result_in_the_county_answer_is_pushed(env):
    env.county.state.answers["property_info_query"] = {
        "summaries": [{"house_id": "H1", "area": "89.5"}], "images": ["aGVsbG8="]}
    ans = env.client.submit("property_info_query", application("property_info_query"))
    assert ans.body["code"] == "0000" and "status" not in ans.body["data"]
    env.drain()
    env.drain()
    [push] = env.province.state.pushes("results")
    assert push.body["item"] == "property_info_query"
    assert push.body["data"]["images"] == ["aGVsbG8="]
