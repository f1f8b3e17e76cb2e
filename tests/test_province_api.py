"""The province's inbound API over a real server: accepted applications, splitting per
county, idempotency (also under 50 concurrent duplicates), and validation failures
recorded and pushed to the simulated province."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from store.models import CallLogEntry, Case, OutboxMessage, StageEvent
from tests.hubserver import application, province_env


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url)
    yield e
    e.close()


def cases(hub, **where):
    with hub.transaction() as s:
        stmt = select(Case).order_by(Case.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(Case, k) == v)
        return list(s.scalars(stmt))


def county_messages(hub):
    with hub.transaction() as s:
        return list(s.scalars(select(OutboxMessage).where(
            OutboxMessage.interface.like("county.%")).order_by(OutboxMessage.id)))


def test_application_is_committed_answered_and_delivered(env):
    ans = env.client.submit("rental_filing", application())
    assert ans.status == 200 and ans.body["code"] == "0000", ans.body
    data = ans.body["data"]
    assert data["case_no"].startswith("511700") and data["receiver"] == "cityhub_511700"
    [sub] = data["sub_cases"]
    assert sub["county_code"] == "511702" and sub["case_no"].startswith("511702")
    parent, child = cases(env.hub)
    assert (parent.county_code, child.county_code, child.parent_id) == ("", "511702", parent.id)
    assert parent.stage == child.stage == "received"
    # personal data sealed at rest; the answer stored for repeats
    assert b"11010519491231002X" not in parent.payload_enc
    assert env.hub.cipher.open_json(parent.answer_enc) == ans.body
    [msg] = county_messages(env.hub)
    assert msg.status == "pending" and msg.partner == "county_511702"
    env.drain()
    [(path, body, headers)] = env.county.state.received
    assert path == "/county/511702/rental_filing"
    assert body["case_no"] == sub["case_no"] and body["county_code"] == "511702"
    assert headers["X-App-Id"] == "cityhub_511700"
    with env.hub.transaction() as s:
        log = s.scalars(select(CallLogEntry).where(CallLogEntry.direction == "in")).one()
        assert (log.interface, log.party, log.code, log.item, log.division, log.case_id) == (
            "province.in.rental_filing", "province", "0000", "rental_filing", "511702", parent.id)
        assert log.ref_id == ans.headers["X-Ref-Id"]


def test_three_counties_make_three_sub_cases_each_delivered_to_its_county(env):
    counties = ("511702", "511703", "511722")
    ans = env.client.submit("property_info_query",
                            application("property_info_query", counties=counties))
    assert ans.status == 200 and ans.body["code"] == "0000"
    assert [s["county_code"] for s in ans.body["data"]["sub_cases"]] == list(counties)
    parent = cases(env.hub, county_code="")[0]
    subs = cases(env.hub, parent_id=parent.id)
    assert sorted(c.county_code for c in subs) == sorted(counties)
    assert len({c.case_no for c in subs}) == 3
    assert sorted(m.division for m in county_messages(env.hub)) == sorted(counties)
    env.drain()
    got = {p: b for p, b, _ in env.county.state.received}
    assert sorted(got) == [f"/county/{c}/property_info_query" for c in sorted(counties)]
    by_county = {c.county_code: c.case_no for c in subs}
    for code in counties:
        body = got[f"/county/{code}/property_info_query"]
        assert body["county_code"] == code and body["case_no"] == by_county[code]


def test_manual_county_gets_a_sub_case_but_no_delivery(env):
    ans = env.client.submit("rental_filing", application(counties=("511702", "511725")))
    assert ans.body["code"] == "0000"
    subs = [c for c in cases(env.hub) if c.parent_id]
    modes = {c.county_code: c.route_mode for c in subs}
    assert modes == {"511702": "auto", "511725": "manual"}
    assert [m.division for m in county_messages(env.hub)] == ["511702"]


def test_repeat_returns_the_first_answer_and_creates_nothing(env):
    first = env.client.submit("rental_filing", application())
    again = env.client.submit("rental_filing", application())
    assert again.status == 200 and again.body == first.body
    # even a different (here invalid) body under the same key gets the first answer
    changed = application()
    changed["applicant"]["id_no"] = "110105194912310021"
    third = env.client.submit("rental_filing", changed)
    assert third.status == 200 and third.body == first.body
    assert len(cases(env.hub)) == 2 and len(county_messages(env.hub)) == 1
    # the same apply_no under another item is another case
    other = env.client.submit("survey_review", application("survey_review"))
    assert other.body["code"] == "0000" and other.body["data"]["case_no"] != first.body[
        "data"]["case_no"]


def test_fifty_concurrent_duplicates_create_one_case(env):
    body = json.dumps(application(counties=("511702", "511703")), ensure_ascii=False).encode()
    with ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: env.client.submit("rental_filing", body), range(50)))
    assert [a.status for a in answers] == [200] * 50
    assert len({json.dumps(a.body, sort_keys=True) for a in answers}) == 1
    assert len(cases(env.hub, county_code="")) == 1
    assert len(cases(env.hub)) == 3
    assert len(county_messages(env.hub)) == 2


def test_concurrent_applications_share_commits_and_each_is_whole(env):
    """Thirty different applications at once: the intake groups them into fewer commits
    (store.group_commit), and each still gets its own case, sub-case, county message and
    call-log row, and an answer that matches what was stored."""
    bodies = [json.dumps(application(apply_no=f"510000-20261122-{n:06d}"),
                         ensure_ascii=False).encode() for n in range(30)]
    before = (env.hub.group_commit.groups, env.hub.group_commit.units)
    with ThreadPoolExecutor(30) as pool:
        answers = list(pool.map(lambda b: env.client.submit("rental_filing", b), bodies))
    assert [a.body["code"] for a in answers] == ["0000"] * 30
    groups = env.hub.group_commit.groups - before[0]
    units = env.hub.group_commit.units - before[1]
    assert units == 30 and groups < units  # some commits carried several applications
    parents = {c.case_no: c for c in cases(env.hub, county_code="")}
    assert len(parents) == 30 and len(cases(env.hub)) == 60
    for answer in answers:
        parent = parents[answer.body["data"]["case_no"]]
        assert env.hub.cipher.open_json(parent.answer_enc) == answer.body
    assert {m.case_id for m in county_messages(env.hub)} == {
        c.id for c in cases(env.hub) if c.county_code == "511702"}
    with env.hub.transaction() as s:
        logged = s.execute(select(CallLogEntry.case_id, CallLogEntry.code).where(
            CallLogEntry.direction == "in")).all()
    assert sorted(logged) == sorted((c.id, "0000") for c in parents.values())


def test_validation_failure_lists_every_field_records_and_pushes_it(env):
    body = application()
    body["applicant"]["id_no"] = "110105194912310021"  # wrong check digit
    body["data"]["lessee_id_no"] = "110105198001011230"  # wrong check digit
    del body["data"]["house_id"]
    ans = env.client.submit("rental_filing", body)
    assert ans.status == 400 and ans.body["code"] == "2002"
    fields = sorted(e["field"] for e in ans.body["errors"])
    assert fields == ["applicant.id_no", "data.house_id", "data.lessee_id_no"]
    assert all(e["reason"] for e in ans.body["errors"])
    # recorded: a parent at validation_failed, no sub-case, no county message
    [parent] = cases(env.hub)
    assert parent.stage == "validation_failed" and parent.county_code == ""
    assert county_messages(env.hub) == []
    with env.hub.transaction() as s:
        [event] = s.scalars(select(StageEvent)).all()
        assert event.stage == "validation_failed" and "data.house_id" in event.opinion
    env.drain()
    [push] = env.province.state.pushes("status")
    assert push.app_id == "cityhub_511700" and env.province.state.refused == []
    assert push.body["stage"] == "validation_failed"
    assert push.body["apply_no"] == body["apply_no"] and push.body["case_no"] == parent.case_no


def test_a_corrected_request_takes_over_the_failed_record(env):
    bad = application()
    bad["data"]["lessee_id_no"] = "110105198001011230"
    assert env.client.submit("rental_filing", bad).body["code"] == "2002"
    again = env.client.submit("rental_filing", bad)
    assert again.body["code"] == "2002"
    good = env.client.submit("rental_filing", application())
    assert good.status == 200 and good.body["code"] == "0000"
    parent = cases(env.hub, county_code="")[0]
    assert parent.stage == "received" and good.body["data"]["case_no"] == parent.case_no
    assert len(cases(env.hub, parent_id=parent.id)) == 1
    assert len(county_messages(env.hub)) == 1
    with env.hub.transaction() as s:
        stages = s.scalars(select(StageEvent.stage).where(StageEvent.case_id == parent.id)).all()
        assert stages == ["validation_failed", "validation_failed"]
    # and from now on the accepted answer is the one repeated
    assert env.client.submit("rental_filing", bad).body == good.body


def test_a_request_without_usable_apply_no_is_answered_but_not_recorded(env):
    body = application(apply_no="bad apply no!")
    ans = env.client.submit("rental_filing", body)
    assert ans.status == 400 and ans.body["code"] == "2002"
    assert [e["field"] for e in ans.body["errors"]] == ["apply_no"]
    assert cases(env.hub) == []
    with env.hub.transaction() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
