"""One final stage per sub-case, under real concurrent requests (issue 10).

Threads released together by a barrier post stage callbacks for one sub-case to the
hub served by waitress, on SQLite and PostgreSQL, several rounds: exactly one final
stage is recorded, every other answer is ``0000`` with ``"duplicate": true``, and
exactly one ``/status`` for it is queued for the province. Forward-only holds under the
same race, an operator's mark and an Excel import race the callbacks by the same rule,
and the rule is the database's: a conditional UPDATE refuses a stale move by itself.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import Any

import openpyxl
import pytest

from adapters.manual_excel import export_workbook, import_workbook, mark_stage
from mapping.items import can_follow
from store.cases import StageConflict, advance_stages
from tests.county_support import (
    case_of,
    event,
    new_case,
    post_signed,
    province_messages,
    served,
    stages_of,
)
from tests.support import DEAD_URL

EVENTS = "/api/county/v1/events"
ITEM = "rental_filing"
COUNTY = "511702"
ROUNDS = 4


@pytest.fixture
def hub(make_hub, store_url):
    return make_hub(store_url, inbound=["county_smart"])


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at the same moment (one thread each, a barrier); their results."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = calls[n]()
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def callback(url: str, body: dict[str, Any]) -> Callable[[], Any]:
    return lambda: post_signed(url, EVENTS, body, f"county_{COUNTY}")


def accepted_case(hub, url: str, apply_no: str) -> str:
    case_no = new_case(hub, ITEM, COUNTY, apply_no=apply_no)
    r = post_signed(url, EVENTS, event(case_no, ITEM, COUNTY, "accepted"), f"county_{COUNTY}")
    assert r.json()["data"]["recorded"] is True
    return case_no


def assert_one_final(hub, case_no: str, answers) -> None:
    assert {(r.status_code, r.json()["code"]) for r in answers} == {(200, "0000")}, \
        [r.text for r in answers]
    recorded = [r for r in answers if r.json()["data"]["recorded"]]
    assert len(recorded) == 1, [r.text for r in answers]
    assert all(r.json()["data"]["duplicate"] is True for r in answers if r not in recorded)
    stages = stages_of(hub, case_no)
    assert stages[:-1] == ["accepted"] and stages[-1] in ("completed", "rejected")
    assert case_of(hub, case_no).stage == stages[-1]
    pushed = province_messages(hub, case_no=case_no)
    assert [p["stage"] for p in pushed] == stages  # one /status per recorded stage
    assert recorded[0].json()["data"]["stage"] == stages[-1]


def test_completed_and_rejected_at_the_same_moment(hub):
    with served(hub) as url:
        for n in range(ROUNDS):
            case_no = accepted_case(hub, url, f"R-{n}")
            calls = [callback(url, event(case_no, ITEM, COUNTY, "completed",
                                         filing_no=f"ZL-{n}-{i}", opinion="准予备案"))
                     for i in range(3)]
            calls += [callback(url, event(case_no, ITEM, COUNTY, "rejected", opinion="不予受理"))
                      for _ in range(3)]
            assert_one_final(hub, case_no, race(calls))


def test_two_completed_with_different_filing_numbers(hub):
    with served(hub) as url:
        for n in range(ROUNDS):
            case_no = accepted_case(hub, url, f"C-{n}")
            answers = race([callback(url, event(case_no, ITEM, COUNTY, "completed",
                                                filing_no=f"ZL-{n}-{i}")) for i in range(2)])
            assert_one_final(hub, case_no, answers)
            [final] = [p for p in province_messages(hub, case_no=case_no)
                       if p["stage"] == "completed"]
            assert final["filing_no"] in {f"ZL-{n}-0", f"ZL-{n}-1"}


def test_forward_only_under_concurrency(hub):
    with served(hub) as url:
        for n in range(ROUNDS):
            case_no = new_case(hub, ITEM, COUNTY, apply_no=f"F-{n}")
            bodies = [event(case_no, ITEM, COUNTY, "accepted"),
                      event(case_no, ITEM, COUNTY, "accepted"),
                      event(case_no, ITEM, COUNTY, "approved", at="2026-11-23T10:00:00+08:00"),
                      event(case_no, ITEM, COUNTY, "approved", at="2026-11-23T11:00:00+08:00"),
                      event(case_no, ITEM, COUNTY, "completed", filing_no=f"ZL-{n}"),
                      event(case_no, ITEM, COUNTY, "rejected")]
            answers = race([callback(url, b) for b in bodies])
            assert {(r.status_code, r.json()["code"]) for r in answers} == {(200, "0000")}
            stages = stages_of(hub, case_no)
            previous = None
            for stage in stages:  # every recorded stage may follow the one before it
                assert can_follow(previous, stage), stages
                previous = stage
            assert sum(s in ("completed", "rejected") for s in stages) <= 1
            assert sum(r.json()["data"]["recorded"] for r in answers) == len(stages)
            assert [p["stage"] for p in province_messages(hub, case_no=case_no)] == stages
            if stages:
                assert case_of(hub, case_no).stage == stages[-1]


def operators_and_county(hub, url: str, county: str, case_no: str, workbook: bytes
                         ) -> list[Callable[[], Any]]:
    """A county's 办结 callback, two operators' marks and an Excel import, for one case."""
    return [
        lambda: post_signed(url, EVENTS, event(case_no, ITEM, county, "completed",
                                               filing_no="ZL-county"), f"county_{county}"),
        lambda: mark_stage(hub, case_no, "completed", "admin02", filing_no="ZL-operator"),
        lambda: mark_stage(hub, case_no, "rejected", "admin03"),
        lambda: import_workbook(hub, workbook, "admin04"),
    ]


def test_operator_mark_and_excel_import_race_the_callbacks_by_the_same_rule(make_hub,
                                                                           store_url):
    manual = "511725"  # 渠县: a manual county (its app here only to race the operators)
    hub = make_hub(store_url, inbound=["county_smart"], partners={
        f"county_{manual}": {"base_url": f"{DEAD_URL}/county/{manual}", "division": manual}})
    with served(hub) as url:
        for n in range(ROUNDS):
            case_no = new_case(hub, ITEM, manual, apply_no=f"M-{n}")
            mark_stage(hub, case_no, "accepted", "admin01")
            xlsx, _ = export_workbook(hub, manual, ITEM, with_materials=False)
            wb = openpyxl.load_workbook(io.BytesIO(xlsx))
            ws = wb.worksheets[0]
            header = [c.value for c in ws[1]]
            row = next(r for r in range(2, ws.max_row + 1)
                       if ws.cell(row=r, column=header.index("案件编号") + 1).value == case_no)
            ws.cell(row=row, column=header.index("新环节") + 1).value = "不予受理"
            out = io.BytesIO()
            wb.save(out)
            workbook = out.getvalue()
            answers = race(operators_and_county(hub, url, manual, case_no, workbook))
            http, *marks, imported = answers
            recorded = [http.json()["data"]["recorded"] if http.json()["code"] == "0000"
                        else False, *(m.recorded for m in marks), imported.applied == 1]
            stages = stages_of(hub, case_no)
            assert stages[:-1] == ["accepted"] and stages[-1] in ("completed", "rejected")
            assert sum(recorded) == 1, (answers, stages)
            assert [p["stage"] for p in province_messages(hub, case_no=case_no)] == stages


def test_the_database_refuses_a_stale_move(hub):
    """The conditional UPDATE alone (no lock taken): a move from a stage the case is no
    longer at, or out of a closed stage, matches no row and changes nothing."""
    case_no = new_case(hub, ITEM, COUNTY, apply_no="S-1")
    case_id = case_of(hub, case_no).id
    with hub.transaction() as s:
        advance_stages(s, [(case_id, "received", "accepted")], case_of(hub, case_no).created_at)
    with pytest.raises(StageConflict), hub.transaction() as s:
        advance_stages(s, [(case_id, "received", "rejected")], case_of(hub, case_no).created_at)
    assert case_of(hub, case_no).stage == "accepted"
    with hub.transaction() as s:
        advance_stages(s, [(case_id, "accepted", "completed")], case_of(hub, case_no).created_at)
    with pytest.raises(StageConflict), hub.transaction() as s:
        advance_stages(s, [(case_id, "completed", "rejected")], case_of(hub, case_no).created_at)
    assert case_of(hub, case_no).stage == "completed"
