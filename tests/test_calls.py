"""The one logged-call path (adapters/calls.py): every outbound call that is not an outbox
delivery is logged once, and the hub keeps one signed JSON client per partner."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select

from store.models import CallLogEntry
from tests.county_support import event, new_case, post_signed
from tests.hubserver import application, province_env
from tests.support import ROOT

CONSTRUCTED = re.compile(r"\bJsonClient\(")
#: Where a JsonClient may be built: the helper, and the test of the client itself.
ALLOWED = {"adapters/calls.py", "tests/test_county_json_limits.py"}
VERIFY = "presale_contract_verify"


def test_no_json_client_built_outside_the_helper():
    found = [f"{rel}:{n}: {line.strip()}"
             for path in sorted(ROOT.rglob("*.py"))
             if ".venv" not in path.parts and "node_modules" not in path.parts
             and (rel := path.relative_to(ROOT).as_posix()) not in ALLOWED
             and rel != Path(__file__).relative_to(ROOT).as_posix()
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if CONSTRUCTED.search(line)]
    assert found == []


def out_rows(hub, interface: str) -> list[CallLogEntry]:
    with hub.transaction() as s:
        return list(s.scalars(select(CallLogEntry).where(
            CallLogEntry.interface == interface, CallLogEntry.direction == "out")))


def test_sync_query_and_review_link_each_log_one_call(make_hub, store_url):
    env = province_env(make_hub, store_url, inbound=["province", "county_smart"])
    try:
        hub = env.hub
        env.county.state.answers[VERIFY] = {"filed": True}
        ans = env.client.submit(VERIFY, application(VERIFY))
        assert ans.body["code"] == "0000" and ans.body["data"] == {"filed": True}
        [sync] = out_rows(hub, f"county.{VERIFY}")
        assert sync.outcome == "ok" and sync.party == "county_511702"

        case_no = new_case(hub, "survey_review", "511702",
                           data={"enterprise_name": "达州测绘", "project_name": "凤凰城"})
        for stage in ("accepted", "completed"):
            r = post_signed(env.server.url, "/api/county/v1/events",
                            event(case_no, "survey_review", "511702", stage), "county_511702")
            assert r.json()["code"] == "0000", r.text
        r = post_signed(env.server.url, "/api/county/v1/review-link", {"case_no": case_no},
                        "county_511702")
        assert r.status_code == 200 and r.json()["code"] == "0000", r.text
        [link] = out_rows(hub, "province.review-link")
        assert link.outcome == "ok" and link.party == "province" and link.division == "511702"
        assert link.request_enc and b"survey_review" not in link.request_enc  # sealed
        assert len(env.province.state.pushes("review-link")) == 1

        # the province's one client served the review link; the county's the sync query
        province = hub.partner("province")
        assert hub.adapter("province").client(province) is hub.calls.client("province")
        assert hub.calls.client("county_511702") is not hub.calls.client("province")
    finally:
        env.close()
