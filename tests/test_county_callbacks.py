"""County → hub callbacks over real HTTP: stages forward only, duplicates and out-of-order
events answered without change, 1004 for another county's case, apply-and-accept, the
review link (province simulator), and every recorded stage queued for the province."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from adapters.sim.province import ProvinceSim
from store.models import CallLogEntry, Case
from tests.county_support import (
    case_of,
    event,
    new_case,
    outbox_count,
    post_signed,
    province_messages,
    secret,
    served,
    stages_of,
)
from tests.support import DEAD_URL

EVENTS = "/api/county/v1/events"


@pytest.fixture
def hub(make_hub, store_url):
    return make_hub(store_url, inbound=["county_smart"])


def test_stages_forward_and_pushed_in_order(hub):
    case_no = new_case(hub, "rental_filing", "511702")
    with served(hub) as url:
        steps = [
            event(case_no, "rental_filing", "511702", "accepted", at="2026-11-23T09:00:00+08:00"),
            event(case_no, "rental_filing", "511702", "approved", at="2026-11-23T10:00:00+08:00"),
            event(case_no, "rental_filing", "511702", "approved", at="2026-11-23T11:00:00+08:00",
                  operator="科长"),
            event(case_no, "rental_filing", "511702", "completed", at="2026-11-23T12:00:00+08:00",
                  filing_no="ZL2026-0001"),
        ]
        for body in steps:
            r = post_signed(url, EVENTS, body, "county_511702")
            assert r.status_code == 200, r.text
            assert r.json()["code"] == "0000" and r.json()["data"]["recorded"] is True
    assert stages_of(hub, case_no) == ["accepted", "approved", "approved", "completed"]
    assert case_of(hub, case_no).stage == "completed"
    pushed = province_messages(hub, case_no=case_no)
    assert [p["stage"] for p in pushed] == ["accepted", "approved", "approved", "completed"]
    assert pushed[0]["at"] == "2026-11-23T01:00:00+00:00"
    assert pushed[-1]["filing_no"] == "ZL2026-0001" and pushed[-1]["case_no"] == case_no
    assert {p["county_code"] for p in pushed} == {"511702"}


def test_duplicate_and_out_of_order_change_nothing(hub):
    case_no = new_case(hub, "survey_review", "511702",
                       data={"enterprise_name": "达州测绘", "project_name": "凤凰城"})
    with served(hub) as url:
        early = post_signed(url, EVENTS, event(case_no, "survey_review", "511702", "approved"),
                            "county_511702")
        assert early.status_code == 200 and early.json()["data"]["recorded"] is False
        assert stages_of(hub, case_no) == [] and province_messages(hub) == []

        accepted = event(case_no, "survey_review", "511702", "accepted")
        assert post_signed(url, EVENTS, accepted, "county_511702").json()["data"]["recorded"]
        before = outbox_count(hub)
        again = post_signed(url, EVENTS, accepted, "county_511702")
        assert again.status_code == 200 and again.json()["code"] == "0000"
        assert again.json()["data"]["duplicate"] is True
        assert outbox_count(hub) == before

        done = event(case_no, "survey_review", "511702", "completed",
                     at="2026-11-24T09:00:00+08:00")
        assert post_signed(url, EVENTS, done, "county_511702").json()["data"]["recorded"]
        late = post_signed(url, EVENTS, event(case_no, "survey_review", "511702", "approved",
                                              at="2026-11-25T09:00:00+08:00"), "county_511702")
        assert late.json()["code"] == "0000" and late.json()["data"]["duplicate"] is True
    assert stages_of(hub, case_no) == ["accepted", "completed"]
    assert [p["stage"] for p in province_messages(hub)] == ["accepted", "completed"]


def test_an_earlier_approval_sent_again_is_a_duplicate(hub):
    """Approvals may repeat (several levels), but a county re-sending its first approval
    after its second (at-least-once delivery) had it recorded and pushed again: only
    the last approval was compared."""
    case_no = new_case(hub, "rental_filing", "511702")
    first = event(case_no, "rental_filing", "511702", "approved", at="2026-11-23T10:00:00+08:00",
                  operator="审批员甲")
    second = event(case_no, "rental_filing", "511702", "approved",
                   at="2026-11-23T11:00:00+08:00", operator="审批员乙")
    with served(hub) as url:
        accepted = event(case_no, "rental_filing", "511702", "accepted",
                         at="2026-11-23T09:00:00+08:00")
        assert post_signed(url, EVENTS, accepted, "county_511702").json()["data"]["recorded"]
        for body in (first, second):
            assert post_signed(url, EVENTS, body, "county_511702").json()["data"]["recorded"]
        before = outbox_count(hub)
        for body in (first, second, first):
            again = post_signed(url, EVENTS, body, "county_511702").json()
            assert again["code"] == "0000" and again["data"]["duplicate"] is True, again
        assert outbox_count(hub) == before
    assert stages_of(hub, case_no) == ["accepted", "approved", "approved"]


def test_cross_county_callback_refused_with_1004(hub):
    case_no = new_case(hub, "rental_filing", "511702")
    before = outbox_count(hub)
    with served(hub) as url:
        # county 511703's app speaking for county 511702
        r = post_signed(url, EVENTS, event(case_no, "rental_filing", "511702", "accepted"),
                        "county_511703")
        assert r.status_code == 403 and r.json()["code"] == "1004"
        # ... or naming itself but moving 511702's case
        r = post_signed(url, EVENTS, event(case_no, "rental_filing", "511703", "accepted"),
                        "county_511703")
        assert r.status_code == 403 and r.json()["code"] == "1004"
        # the province's app is not a county
        r = post_signed(url, EVENTS, event(case_no, "rental_filing", "511702", "accepted"),
                        "province")
        assert r.status_code == 403 and r.json()["code"] == "1004"
    assert stages_of(hub, case_no) == [] and case_of(hub, case_no).stage == "received"
    assert outbox_count(hub) == before
    # logged under the caller's own county, never the one it claimed: the admin's
    # call-log pages are scoped by division (511702's operators saw 511703's attempt)
    with hub.transaction() as s:
        logged = s.execute(select(CallLogEntry.party, CallLogEntry.division)
                           .where(CallLogEntry.code == "1004").order_by(CallLogEntry.id)).all()
    assert [tuple(r) for r in logged] == [("county_511703", "511703"),
                                          ("county_511703", "511703"), ("province", None)]


def test_bad_input_gets_its_code_and_changes_nothing(hub):
    case_no = new_case(hub, "rental_filing", "511702")
    with served(hub) as url:
        post_signed(url, EVENTS, event(case_no, "rental_filing", "511702", "accepted"),
                    "county_511702")
        before = outbox_count(hub)
        cases = [
            (event(case_no, "rental_filing", "511702", "completed"), 400, "2002", "filing_no"),
            (event(case_no, "rental_filing", "511702", "finished"), 400, "2002", "stage"),
            (event(case_no, "rental_filing", "511702", "approved", at="yesterday"), 400, "2002",
             "at"),
            (event("511702209901019999", "rental_filing", "511702", "approved"), 400, "2002",
             "case_no"),
            (event(case_no, "presale_contract_filing", "511702", "approved"), 400, "2002", "item"),
            (event(case_no, "no_such_item", "511702", "approved"), 404, "4001", None),
        ]
        for body, status, code, field in cases:
            r = post_signed(url, EVENTS, body, "county_511702")
            assert (r.status_code, r.json()["code"]) == (status, code), (body, r.text)
            if field:
                assert field in [e["field"] for e in r.json()["errors"]]
        # before the case began (submitted 2026-11-22 10:00 Beijing): a typing error
        for at in ("1900-01-01T00:00:00+08:00", "2026-11-22T09:54:00+08:00"):
            early = post_signed(url, EVENTS, event(case_no, "rental_filing", "511702",
                                                   "approved", at=at), "county_511702")
            assert early.json()["code"] == "2002", early.text
            assert [e["field"] for e in early.json()["errors"]] == ["at"], early.text
        r = post_signed(url, EVENTS, [1, 2], "county_511702")
        assert (r.status_code, r.json()["code"]) == (400, "2001")
        wrong = post_signed(url, EVENTS, event(case_no, "rental_filing", "511702", "approved"),
                            "county_511702", key=b"not-the-secret")
        assert (wrong.status_code, wrong.json()["code"]) == (401, "1001")
    assert stages_of(hub, case_no) == ["accepted"] and outbox_count(hub) == before
    case_id = case_of(hub, case_no).id
    with hub.transaction() as s:
        logged = s.scalars(select(CallLogEntry).where(CallLogEntry.interface == "county.events")
                           .order_by(CallLogEntry.id)).all()
        assert len(logged) == 11 and logged[1].outcome == "rejected" and logged[1].code == "2002"
        assert logged[0].case_id == case_id and logged[0].party == "county_511702"


def test_property_info_result_is_pushed_to_results(hub):
    case_no = new_case(hub, "property_info_query", "511703")
    result = {"summaries": [{"house_id": "H-0001", "address": "朝阳东路1号"}],
              "images": [{"name": "cert.jpg", "base64": "/9j/AA=="}]}
    with served(hub) as url:
        for stage in ("accepted", "completed"):
            extra = {"result": result} if stage == "completed" else {}
            r = post_signed(url, EVENTS, event(case_no, "property_info_query", "511703", stage,
                                               **extra), "county_511703")
            assert r.json()["code"] == "0000", r.text
    assert [p["stage"] for p in province_messages(hub)] == ["accepted", "completed"]
    [pushed] = province_messages(hub, "results")
    assert pushed["case_no"] == case_no and pushed["data"] == result


def test_maintenance_fund_apply_and_accept_then_stages(hub):
    body = {"item": "maintenance_fund_deposit", "county_code": "511722",
            "county_case_no": "WX-511722-0001",
            "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"},
            "data": {"amount": "3200.00"}, "at": "2026-11-23T09:00:00+08:00", "operator": "刘"}
    with served(hub) as url:
        r = post_signed(url, "/api/county/v1/apply-and-accept", body, "county_511722")
        assert r.status_code == 200 and r.json()["code"] == "0000", r.text
        case_no = r.json()["data"]["case_no"]
        again = post_signed(url, "/api/county/v1/apply-and-accept", body, "county_511722")
        assert again.json()["data"] == {"case_no": case_no, "duplicate": True}
        other = post_signed(url, "/api/county/v1/apply-and-accept", body, "county_511702")
        assert other.json()["code"] == "1004"
        for stage in ("approved", "completed"):
            r = post_signed(url, EVENTS, event(case_no, "maintenance_fund_deposit", "511722",
                                               stage), "county_511722")
            assert r.json()["data"]["recorded"] is True
    with hub.transaction() as s:
        cases = s.scalars(select(Case).where(Case.apply_no == "WX-511722-0001")).all()
        assert len(cases) == 2 and {c.source for c in cases} == {"county"}
    assert stages_of(hub, case_no) == ["apply_and_accept", "approved", "completed"]
    pushed = province_messages(hub)
    assert [p["stage"] for p in pushed] == ["apply_and_accept", "approved", "completed"]
    assert pushed[0]["apply_no"] == "WX-511722-0001" and pushed[0]["operator"] == "刘"
    assert outbox_count(hub) == 3  # nothing was delivered back to the county that opened it


def test_apply_and_accept_holds_the_applicant_to_the_provinces_rules(hub):
    """A status-only case a county opens itself took an applicant the province intake
    refuses (a NUL or an escape in the name, an invisible character in an ID number, a
    USCC whose check character is wrong, a phone that is a list) and showed it in the
    manual export. Each is 2002 naming the field now, and opens nothing."""
    good = {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"}
    bad = [({**good, "name": "张\u0000三"}, "applicant.name"),
           ({**good, "name": "张\u001b[2J三"}, "applicant.name"),
           ({**good, "id_type": "3", "id_no": "E1234\u200b5678"}, "applicant.id_no"),
           ({**good, "id_type": "7", "id_no": "91430223MA4L00000X"}, "applicant.id_no"),
           ({**good, "uscc": {"a": 1}}, "applicant.uscc"),
           ({**good, "phone": ["1"]}, "applicant.phone")]
    with served(hub) as url:
        for n, (applicant, field) in enumerate(bad):
            body = {"item": "maintenance_fund_deposit", "county_code": "511722",
                    "county_case_no": f"WX-BAD-{n}", "applicant": applicant, "data": {},
                    "at": "2026-11-23T09:00:00+08:00"}
            r = post_signed(url, "/api/county/v1/apply-and-accept", body, "county_511722")
            got = r.json()
            assert got["code"] == "2002", (applicant, got)
            assert field in {e["field"] for e in got["errors"]}, (applicant, got)
    with hub.transaction() as s:
        assert s.scalars(select(Case).where(Case.apply_no.like("WX-BAD-%"))).all() == []


def test_review_link_after_completed_only(make_hub, store_url):
    province = ProvinceSim(secret("province")).start()
    try:
        hub = make_hub(store_url, inbound=["county_smart"],
                       partners={"province": {"base_url": province.base_url}})
        case_no = new_case(hub, "survey_review", "511702",
                           data={"enterprise_name": "达州测绘", "project_name": "凤凰城"})
        with served(hub) as url:
            early = post_signed(url, "/api/county/v1/review-link", {"case_no": case_no},
                                "county_511702")
            assert early.status_code == 400 and early.json()["code"] == "2002"
            for stage in ("accepted", "completed"):
                post_signed(url, EVENTS, event(case_no, "survey_review", "511702", stage),
                            "county_511702")
            other = post_signed(url, "/api/county/v1/review-link", {"case_no": case_no},
                                "county_511703")
            assert other.json()["code"] == "1004"
            r = post_signed(url, "/api/county/v1/review-link", {"case_no": case_no},
                            "county_511702")
            assert r.status_code == 200, r.text
            assert r.json()["data"]["url"].startswith("https://review.example.gov.cn/r/A-0001/")
        [asked] = province.state.pushes("review-link")
        case_id = case_of(hub, case_no).id
        assert asked.body == {"apply_no": "A-0001", "item": "survey_review",
                              "county_code": "511702"}
        assert asked.app_id == "cityhub_511700"
        with hub.transaction() as s:
            out = s.scalars(select(CallLogEntry).where(
                CallLogEntry.interface == "province.review-link")).one()
            assert out.direction == "out" and out.outcome == "ok"
            assert out.case_id == case_id
    finally:
        province.stop()


def test_review_link_province_unreachable_is_an_error_code(make_hub, store_url):
    hub = make_hub(store_url, inbound=["county_smart"],
                   partners={"province": {"base_url": f"{DEAD_URL}/province", "timeout": 2}})
    case_no = new_case(hub, "survey_review", "511702",
                       data={"enterprise_name": "达州测绘", "project_name": "凤凰城"})
    with served(hub) as url:
        for stage in ("accepted", "completed"):
            post_signed(url, EVENTS, event(case_no, "survey_review", "511702", stage),
                        "county_511702")
        r = post_signed(url, "/api/county/v1/review-link", {"case_no": case_no}, "county_511702")
    assert r.json()["code"] == "3001" and r.status_code != 500
    with hub.transaction() as s:
        out = s.scalars(select(CallLogEntry).where(
            CallLogEntry.interface == "province.review-link")).one()
        assert out.outcome == "error" and out.error
