"""A county's 申请并受理 never writes into the province's namespace (issue 10).

Over the real server (waitress), on SQLite and PostgreSQL: a county's ``county_case_no``
is a key of that county's own (``cases.namespace``), so a province application with the
same number is created and delivered as usual, a county reusing the province's or
another county's number gets a case of its own and touches nothing of theirs, a repeat
is idempotent (also two at the same moment), and the key is the database's unique
constraint.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from store.models import Case, StageEvent
from tests.county_support import post_signed, province_messages, stages_of
from tests.hubserver import application, province_env

APPLY = "/api/county/v1/apply-and-accept"
ITEM = "rental_filing"
RENTAL = {"lessee_name": "李四", "lessee_id_no": "11010519491231002X", "lessor_name": "王五",
          "lessor_id_no": "110105198001011238", "house_id": "H-0001",
          "address": "通川区朝阳路1号"}


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url, inbound=["province", "county_smart"])
    yield e
    e.close()


def county_body(county: str, number: str, **extra):
    return {"item": ITEM, "county_code": county, "county_case_no": number,
            "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"},
            "data": dict(RENTAL), "at": "2026-11-23T09:00:00+08:00", "operator": "刘",
            **extra}


def open_by_county(env, county: str, number: str):
    r = post_signed(env.server.url, APPLY, county_body(county, number), f"county_{county}")
    assert r.status_code == 200 and r.json()["code"] == "0000", r.text
    return r.json()["data"]


def cases_numbered(hub, number: str) -> list[Case]:
    with hub.transaction() as s:
        return list(s.scalars(select(Case).where(Case.apply_no == number).order_by(Case.id)))


def test_province_application_after_a_county_used_its_number(env):
    opened = open_by_county(env, "511702", "510000-20261122-000001")
    assert opened["duplicate"] is False
    delivered_before = len(env.county.state.received)

    # the province's application with the very same number (and the same county)
    ans = env.client.submit(ITEM, application(ITEM, apply_no="510000-20261122-000001",
                                              counties=("511702", "511703")))
    assert ans.status == 200 and ans.body["code"] == "0000", ans.body
    subs = ans.body["data"]["sub_cases"]
    assert [s["county_code"] for s in subs] == ["511702", "511703"]
    assert opened["case_no"] not in {s["case_no"] for s in subs}
    assert ans.body["data"]["case_no"] != opened["parent_case_no"]
    assert env.drain() >= 2
    delivered = [body for _, body, _ in env.county.state.received[delivered_before:]]
    assert sorted(b["case_no"] for b in delivered) == sorted(s["case_no"] for s in subs)
    assert {b["apply_no"] for b in delivered} == {"510000-20261122-000001"}

    # a repeat of the province's application is still idempotent, on its own key
    again = env.client.submit(ITEM, application(ITEM, apply_no="510000-20261122-000001",
                                                counties=("511702", "511703")))
    assert again.body == ans.body
    rows = cases_numbered(env.hub, "510000-20261122-000001")
    assert len(rows) == 5  # the county's parent and sub-case, the province's three
    assert {(c.namespace, c.source) for c in rows} == {("511702", "county"), ("", "province")}
    # the county's case kept its one stage; the province's were not touched by it
    assert stages_of(env.hub, opened["case_no"]) == ["apply_and_accept"]


def test_county_reusing_the_provinces_or_another_countys_number(env):
    ans = env.client.submit(ITEM, application(ITEM, apply_no="P-0001",
                                              counties=("511702", "511703")))
    assert ans.body["code"] == "0000"
    province_subs = {s["county_code"]: s["case_no"] for s in ans.body["data"]["sub_cases"]}
    pushed_before = len(province_messages(env.hub))

    # a county of that application, a county not in it, and then another county again
    mine = open_by_county(env, "511702", "P-0001")
    other = open_by_county(env, "511722", "P-0001")
    third = open_by_county(env, "511703", "P-0001")
    numbers = {mine["case_no"], other["case_no"], third["case_no"]}
    assert len(numbers) == 3 and not numbers & set(province_subs.values())
    assert not any(d["duplicate"] for d in (mine, other, third))

    # the province's cases are untouched: no stage, and its answer is the first one
    for case_no in province_subs.values():
        assert stages_of(env.hub, case_no) == []
    assert env.client.submit(ITEM, application(ITEM, apply_no="P-0001",
                                               counties=("511702", "511703"))).body == ans.body
    pushed = province_messages(env.hub)[pushed_before:]
    assert [(p["stage"], p["county_code"]) for p in pushed] == [
        ("apply_and_accept", "511702"), ("apply_and_accept", "511722"),
        ("apply_and_accept", "511703")]
    assert {p["case_no"] for p in pushed} == numbers

    # each county's own repeat finds its own case, never another's
    for county, first in (("511702", mine), ("511722", other), ("511703", third)):
        r = post_signed(env.server.url, APPLY, county_body(county, "P-0001"), f"county_{county}")
        assert r.json()["data"] == {"case_no": first["case_no"], "duplicate": True}


def race(count: int, call):
    """``call()`` from ``count`` threads released at the same moment; the results."""
    barrier = threading.Barrier(count)
    answers: list = []

    def run() -> None:
        barrier.wait()
        answers.append(call())

    threads = [threading.Thread(target=run) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def test_concurrent_repeats_of_one_apply_and_accept_open_one_case(env):
    for round_no in range(4):
        number = f"WX-{round_no}"
        answers = race(6, lambda body=county_body("511722", number): post_signed(
            env.server.url, APPLY, body, "county_511722"))
        assert len(answers) == 6
        assert {(r.status_code, r.json()["code"]) for r in answers} == {(200, "0000")}
        assert len({r.json()["data"]["case_no"] for r in answers}) == 1
        assert sorted(r.json()["data"]["duplicate"] for r in answers) == [False] + [True] * 5
        assert len(cases_numbered(env.hub, number)) == 2  # one parent, one sub-case
        [case_no] = {r.json()["data"]["case_no"] for r in answers}
        assert stages_of(env.hub, case_no) == ["apply_and_accept"]
        assert [p["stage"] for p in province_messages(env.hub, case_no=case_no)] == [
            "apply_and_accept"]


def test_the_key_is_a_unique_constraint_of_the_store(env):
    opened = open_by_county(env, "511722", "WX-UNIQUE")
    with env.hub.transaction() as s:
        row = s.scalars(select(Case).where(Case.case_no == opened["case_no"])).one()
        copy = {c.key: getattr(row, c.key) for c in Case.__table__.columns if c.key != "id"}
    copy["case_no"] = "X-COPY"
    with pytest.raises(IntegrityError), env.hub.transaction() as s:
        s.execute(insert(Case.__table__).values(**copy))
    # the same number in the province's namespace ("") is another key
    with env.hub.transaction() as s:
        s.execute(insert(Case.__table__).values(**{**copy, "namespace": "", "parent_id": None}))
        assert s.scalar(select(StageEvent.id).where(StageEvent.case_id == row.id)) is not None
