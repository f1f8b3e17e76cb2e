"""Unified numbers belong to one county, one project and one case (contracts/numbering.md:
"a county may only ask for its own projects (1004)", "A number appears once"), through
the real server and the simulated province:

- a project's county is the division in its 工改项目编码, never whoever asked first;
- a construction permit registered to another project while the province issued the
  number: 2002, nothing recorded, an alert for the number the province issued;
- a project registered as another county's meanwhile: 1004 and that alert too;
- one number closes (办结) one case, in the database, under concurrent callbacks.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

from sqlalchemy import func, select

from adapters.case_plan import open_case
from mapping.canonical import Applicant, CanonicalCase
from store.models import Alert, Case
from store.numbering_models import ConstructionPermit, IssuedNumber, Project
from tests.county_support import DATA, stages_of
from tests.manual_jobs import export_zip, import_page
from tests.numbering_support import (  # noqa: F401  (fixture)
    CHALING,
    PERMIT,
    YOUXIAN,
    contract_body,
    numbering_env,
    presale_body,
)

V1 = "/api/county/v1"
YOUXIAN_PROJECT = "2406-430223-70-01-000001"
CHALING_PERMIT = "430224202406200101"


def _counts(hub) -> tuple[int, int, int]:
    with hub.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t))  # type: ignore[return-value]
                     for t in (IssuedNumber, Project, ConstructionPermit))


def _unrecorded_alerts(hub) -> list[str]:
    with hub.db.session() as s:
        return list(s.scalars(select(Alert.title).where(Alert.kind == "number_reissued")))


def test_a_county_cannot_claim_a_project_coded_for_another(numbering_env):  # noqa: F811
    env = numbering_env
    # 茶陵县, with a construction permit of its own, asks first for 攸县's project code
    r = env.post(f"{V1}/numbers/presale-permit",
                 presale_body(permit=CHALING_PERMIT, project=YOUXIAN_PROJECT), county=CHALING)
    assert (r.status_code, r.json()["code"]) == (403, "1004"), r.text
    assert _counts(env.hub) == (0, 0, 0) and not env.province.state.issued
    # a code off the national format is a field error
    r = env.post(f"{V1}/numbers/presale-permit", presale_body(project="ZZ-2024-0001"))
    assert r.json()["code"] == "2002" and [e["field"] for e in r.json()["errors"]] == [
        "project_code"]
    # 攸县 gets its project: it was not taken
    r = env.post(f"{V1}/numbers/presale-permit", presale_body(project=YOUXIAN_PROJECT))
    assert r.json()["code"] == "0000", r.text
    with env.hub.db.session() as s:
        assert s.get(Project, YOUXIAN_PROJECT).county_code == YOUXIAN


def test_a_permit_registered_to_another_project_meanwhile_records_nothing(numbering_env):  # noqa: F811
    env = numbering_env
    env.province.state.mode, env.province.state.delay = "slow", 0.8
    answers: dict[str, dict] = {}

    def ask(project: str) -> None:
        answers[project] = env.post(f"{V1}/numbers/presale-permit",
                                    presale_body(project=project)).json()

    projects = (YOUXIAN_PROJECT, "2406-430223-70-01-000002")  # one permit, two projects
    threads = [threading.Thread(target=ask, args=(p,)) for p in projects]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(a["code"] for a in answers.values())
    assert codes == ["0000", "2002"], answers
    [lost] = [a for a in answers.values() if a["code"] == "2002"]
    assert lost["errors"][0]["field"] == "construction_permits[0].no"
    with env.hub.db.session() as s:
        [(winner, permit_project)] = s.execute(select(
            IssuedNumber.project_code, ConstructionPermit.project_code).join(
            ConstructionPermit, ConstructionPermit.permit_no == PERMIT)).all()
        assert winner == permit_project and s.scalar(
            select(func.count()).select_from(Project)) == 1
    [title] = _unrecorded_alerts(env.hub)
    assert "未登记" in title and "施工许可证" in title


def test_a_project_registered_as_another_countys_meanwhile_alerts(numbering_env):  # noqa: F811
    env = numbering_env
    env.province.state.mode, env.province.state.delay = "slow", 0.8
    answer: dict[str, dict] = {}
    t = threading.Thread(target=lambda: answer.setdefault("r", env.post(
        f"{V1}/numbers/presale-permit", presale_body(project=YOUXIAN_PROJECT)).json()))
    t.start()
    import time

    time.sleep(0.3)  # the province is issuing: a project row of before this check lands
    with env.hub.transaction() as s:
        s.add(Project(project_code=YOUXIAN_PROJECT, county_code=CHALING, project_name="旧项目",
                      developer_name="某公司", presale_since=date(2024, 1, 1)))
    t.join()
    assert answer["r"]["code"] == "1004", answer
    with env.hub.db.session() as s:
        assert s.scalar(select(func.count()).select_from(IssuedNumber)) == 0
    [title] = _unrecorded_alerts(env.hub)
    assert YOUXIAN_PROJECT in title and "其他区县" in title


def _contract_case(env, apply_no: str) -> str:
    canonical = CanonicalCase(
        item="presale_contract_filing", apply_no=apply_no, city_code="430200",
        county_codes=[YOUXIAN], applicant=Applicant("张三", "1", "11010519491231002X"),
        submitted_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        data=dict(DATA["presale_contract_filing"]))
    with env.hub.transaction() as s:
        return open_case(s, env.hub, canonical).subs[0][0].case_no


def _event(env, case_no: str, stage: str, filing_no: str | None = None):
    return env.post(f"{V1}/events", {
        "case_no": case_no, "item": "presale_contract_filing", "county_code": YOUXIAN,
        "stage": stage, "at": "2026-11-23T09:00:00+08:00", "operator": "王窗口",
        "opinion": None, "filing_no": filing_no, "result": None})


def test_one_number_closes_one_case_under_concurrent_callbacks(numbering_env):  # noqa: F811
    env = numbering_env
    assert env.post(f"{V1}/numbers/presale-permit", presale_body()).json()["code"] == "0000"
    scan = env.upload().json()["data"]["file_id"]
    numbers = [env.post(f"{V1}/numbers/contract-filing",
                        contract_body(f"{PERMIT}-Y01", scan, room_nos=[f"1-10{i}"])
                        ).json()["data"]["number"] for i in range(3)]
    for round_, number in enumerate(numbers):
        cases = [_contract_case(env, f"HN-{round_}-{i}") for i in range(4)]
        for c in cases:
            assert _event(env, c, "accepted").json()["code"] == "0000"
        start = threading.Barrier(len(cases))
        codes: dict[str, str] = {}

        def close(case_no: str, number=number, start=start, codes=codes) -> None:
            start.wait()
            codes[case_no] = _event(env, case_no, "completed", number).json()["code"]

        threads = [threading.Thread(target=close, args=(c,)) for c in cases]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes.values()) == ["0000", "2002", "2002", "2002"], codes
        [winner] = [c for c, code in codes.items() if code == "0000"]
        with env.hub.db.session() as s:
            bound = s.scalar(select(Case.case_no).join(
                IssuedNumber, IssuedNumber.case_id == Case.id).where(
                IssuedNumber.number == number))
        assert bound == winner
        for c in cases:
            assert stages_of(env.hub, c) == (["accepted", "completed"] if c == winner
                                             else ["accepted"])
    # the winner's repeat is a duplicate, another case's later try a field error
    later = _contract_case(env, "HN-later")
    _event(env, later, "accepted")
    r = _event(env, later, "completed", numbers[0])
    assert r.json()["code"] == "2002" and "another case" in r.json()["errors"][0]["reason"]


def test_marks_and_imports_keep_one_number_to_one_case(numbering_env):  # noqa: F811
    """An operator's mark and an imported workbook: a number another case closed, or one
    two rows of the workbook both use, is refused in Chinese and nothing is applied."""
    import io
    import zipfile

    import openpyxl

    from tests.test_admin_fixtures import COUNTY_FUNCTIONS, Client, add_operator

    env = numbering_env
    assert env.post(f"{V1}/numbers/presale-permit", presale_body()).json()["code"] == "0000"
    scan = env.upload().json()["data"]["file_id"]
    first, second = (env.post(f"{V1}/numbers/contract-filing", contract_body(
        f"{PERMIT}-Y01", scan, room_nos=[room])).json()["data"]["number"]
        for room in ("1-101", "1-102"))
    cases = []
    for i in range(3):
        case_no = _contract_case(env, f"HN-M{i}")
        with env.hub.transaction() as s:
            s.scalars(select(Case).where(Case.case_no == case_no)).one().route_mode = "manual"
        cases.append(case_no)
    add_operator(env.hub, "youxian-op", COUNTY_FUNCTIONS, divisions=(YOUXIAN,))
    op = Client(env.url)
    assert op.login("youxian-op").status_code == 200

    def mark(case_no: str, stage: str, filing_no: str = "") -> str:
        return op.post("/admin/manual/mark", {"case_no": case_no, "stage": stage,
                                              "filing_no": filing_no}).text

    for c in cases:
        assert f"{c} 已标记为" in mark(c, "受理")
    assert f"{cases[0]} 已标记为" in mark(cases[0], "办结", first)
    page = mark(cases[1], "办结", first)
    assert "未能标记：" in page and "该统一编号已用于其他案件的办结" in page
    assert stages_of(env.hub, cases[1]) == ["accepted"]

    export = export_zip(op)
    with zipfile.ZipFile(io.BytesIO(export.content)) as z:
        xlsx = z.read(next(n for n in z.namelist() if n.endswith(".xlsx")))
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    [ws] = wb.worksheets
    header = [c.value for c in ws[1]]
    col = {label: header.index(label) + 1 for label in ("案件编号", "新环节", "备案号", "经办人")}
    rows = {ws.cell(row=r, column=col["案件编号"]).value: r for r in range(2, ws.max_row + 1)}
    for c in cases[1:]:  # both open cases 办结 with the same (free) number
        for label, value in (("新环节", "办结"), ("备案号", second), ("经办人", "王")):
            ws.cell(row=rows[c], column=col[label]).value = value
    out = io.BytesIO()
    wb.save(out)
    page = import_page(op, out.getvalue(), "q.xlsx")
    assert page.count("该统一编号已用于其他案件的办结") == 2, page
    for c in cases[1:]:
        assert stages_of(env.hub, c) == ["accepted"]
    with env.hub.db.session() as s:
        assert s.scalar(select(IssuedNumber.case_id).where(IssuedNumber.number == second)) \
            is None


def test_two_permits_of_one_new_project_at_once_are_both_recorded(numbering_env):  # noqa: F811
    """One batch of construction permits may carry several presale permits: two requests
    for one project not yet registered, answered by the province at the same time."""
    env = numbering_env
    env.province.state.mode, env.province.state.delay = "slow", 0.5
    answers: list[dict] = []
    permits = (PERMIT, "430223202406200102")
    threads = [threading.Thread(target=lambda p=p: answers.append(env.post(
        f"{V1}/numbers/presale-permit", presale_body(permit=p)).json())) for p in permits]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a["code"] for a in answers) == ["0000", "0000"], answers
    with env.hub.db.session() as s:
        assert sorted(s.scalars(select(ConstructionPermit.project_code))) == [
            YOUXIAN_PROJECT, YOUXIAN_PROJECT]
        assert s.scalar(select(func.count()).select_from(IssuedNumber)) == 2
