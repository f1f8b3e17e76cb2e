"""Unified numbers (contracts/numbering.md, Hunan profile) through the real server and
the simulated province numbering service: the seed's own example numbers, serials per
batch and per permit, cancellation, 1004 across counties, 2002 for incomplete requests
and for a 办结 without a registered number, 3001 when the province is slow, the QR code."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import func, select, text

from adapters.case_plan import open_case
from hub import Hub, load_config
from mapping.canonical import Applicant, CanonicalCase
from store.models import Alert, CallLogEntry, Case
from store.numbering_models import IssuedNumber, Project
from tests.county_support import DATA, stages_of
from tests.hubserver import HubServer
from tests.manual_jobs import export_zip, import_page
from tests.numbering_support import (  # noqa: F401  (fixture)
    CHALING,
    PERMIT,
    YOUXIAN,
    contract_body,
    numbering_env,
    presale_body,
    zhuzhou_config,
)
from tests.support import wait_until

V1 = "/api/county/v1"


def _register_count(hub) -> int:
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(IssuedNumber))


def _scan(env) -> str:
    r = env.upload()
    assert r.status_code == 200, r.text
    return r.json()["data"]["file_id"]


def test_the_seeds_numbers_serials_and_cancellation(numbering_env):  # noqa: F811
    env = numbering_env
    first = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert first.status_code == 200, first.text
    assert first.json()["data"]["number"] == "430223202406200101-Y01"
    chain = first.json()["data"]["chain_code"]
    assert chain
    back = env.post(f"{V1}/numbers/presale-permit", presale_body(backfill=True))
    assert back.json()["data"]["number"] == "430223202406200101-Z01"
    second = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert second.json()["data"]["number"] == "430223202406200101-Y02"

    scan = _scan(env)
    contract = env.post(f"{V1}/numbers/contract-filing",
                        contract_body("430223202406200101-Y01", scan))
    assert contract.status_code == 200, contract.text
    assert contract.json()["data"]["number"] == "430223202406200101-Y01-B0001"

    # cancelled at the province and kept in the register; never issued again
    r = env.post(f"{V1}/numbers/430223202406200101-Y02/cancel", {"reason": "信息填报错误"})
    assert r.status_code == 200 and r.json()["data"]["cancelled"] is True, r.text
    again = env.post(f"{V1}/numbers/430223202406200101-Y02/cancel", {"reason": "再次"})
    assert again.json()["data"]["duplicate"] is True
    third = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert third.json()["data"]["number"] == "430223202406200101-Y03"
    with env.hub.transaction() as s:
        rows = {r.number: r for r in s.scalars(select(IssuedNumber))}
        assert set(rows) == {"430223202406200101-Y01", "430223202406200101-Z01",
                             "430223202406200101-Y02", "430223202406200101-Y03",
                             "430223202406200101-Y01-B0001"}
        assert rows["430223202406200101-Y02"].cancelled_at is not None
        assert rows["430223202406200101-Y02"].cancel_reason == "信息填报错误"
        assert rows["430223202406200101-Y01-B0001"].parent_number == "430223202406200101-Y01"
        assert rows["430223202406200101-Y01"].chain_code == chain
        # the buyers' IDs are sealed at rest
        raw = s.execute(text("SELECT request_enc FROM numbering_numbers")).scalars().all()
        assert all(b"11010519491231002X" not in bytes(v) for v in raw)
        project = s.get(Project, "2406-430223-70-01-000001")
        assert project is not None and project.county_code == YOUXIAN
        # every province call went through the one logged path
        logged = s.scalars(select(CallLogEntry.interface).where(
            CallLogEntry.direction == "out")).all()
        assert logged.count("province.numbers.presale-permit") == 4
        assert "province.numbers.contract-filing" in logged

    # a contract on the cancelled permit: refused before the province is asked
    asked = len(env.province.state.received)
    r = env.post(f"{V1}/numbers/contract-filing", contract_body("430223202406200101-Y02", scan))
    assert (r.status_code, r.json()["code"]) == (400, "2002")
    assert [e["field"] for e in r.json()["errors"]] == ["presale_permit_no"]
    assert len(env.province.state.received) == asked


def test_a_county_may_ask_only_for_its_own_projects(numbering_env):  # noqa: F811
    env = numbering_env
    assert env.post(f"{V1}/numbers/presale-permit", presale_body()).status_code == 200
    before, asked = _register_count(env.hub), len(env.province.state.received)
    # 茶陵县 asking on 攸县's construction permit, or for 攸县's project
    r = env.post(f"{V1}/numbers/presale-permit", presale_body(), county=CHALING)
    assert (r.status_code, r.json()["code"]) == (403, "1004"), r.text
    r = env.post(f"{V1}/numbers/presale-permit",
                 presale_body(permit="430224202406200101"), county=CHALING)
    assert (r.status_code, r.json()["code"]) == (403, "1004"), r.text
    # ... a contract on 攸县's permit, cancelling, reading the QR, reporting acceptance
    scan = _scan(env)
    r = env.post(f"{V1}/numbers/contract-filing",
                 contract_body("430223202406200101-Y01", scan), county=CHALING)
    assert r.json()["code"] == "1004"
    r = env.post(f"{V1}/numbers/430223202406200101-Y01/cancel", {"reason": "x"}, county=CHALING)
    assert r.json()["code"] == "1004"
    assert env.get(f"{V1}/numbers/430223202406200101-Y01/qr.png", county=CHALING).json()[
        "code"] == "1004"
    r = env.post(f"{V1}/projects/2406-430223-70-01-000001/acceptance",
                 {"kind": "five_party", "date": "2026-07-01"}, county=CHALING)
    assert r.json()["code"] == "1004"
    assert _register_count(env.hub) == before
    assert len(env.province.state.received) == asked
    with env.hub.transaction() as s:
        assert s.get(Project, "2406-430223-70-01-000001").acceptance_date is None


def test_incomplete_requests_get_2002_with_every_field_and_change_nothing(numbering_env):  # noqa: F811
    env = numbering_env
    body = presale_body(developer_uscc="123", presale_area=-1,
                        construction_permits=[{"no": "4302232024", "planned_completion": "x"}])
    del body["building_nos"]
    r = env.post(f"{V1}/numbers/presale-permit", body)
    assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"construction_permits[0].no", "construction_permits[0].planned_completion",
            "building_nos", "developer_uscc", "presale_area"} <= fields
    r = env.post(f"{V1}/numbers/contract-filing",
                 contract_body("430223202406200101-Y1", "nofile", payment="cash", buyers=[]))
    assert r.json()["code"] == "2002"
    assert {"presale_permit_no", "payment", "buyers"} <= {e["field"] for e in r.json()["errors"]}
    # a loan larger than the price; a scan that is not this county's material
    r = env.post(f"{V1}/numbers/contract-filing",
                 contract_body("430223202406200101-Y01", "f" * 32, loan_amount="900000.00"))
    assert {"loan_amount"} <= {e["field"] for e in r.json()["errors"]}
    r = env.post(f"{V1}/numbers/contract-filing", [1, 2])
    assert r.json()["code"] == "2001"
    assert env.province.state.received == [] and _register_count(env.hub) == 0


def test_the_provinces_refusal_passes_through_and_a_silent_province_gives_3001(numbering_env):  # noqa: F811
    env = numbering_env
    # the hub's checks pass, the province refuses (its field errors reach the county)
    env.province.state.mode = "slow"
    env.province.state.delay = 3  # the province partner's timeout is 2 s
    r = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert (r.status_code, r.json()["code"]) == (503, "3001"), r.text
    assert _register_count(env.hub) == 0
    wait_until(lambda: env.province.state.received, what="the slow answer at the province")
    env.province.state.mode = "ok"
    r = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert r.json()["data"]["number"] == "430223202406200101-Y02"  # Y01 was lost at the province
    # the province refuses what the hub's checks passed: its code and field errors pass
    # through (the province has lost the permit) and nothing is recorded
    env.province.state.issued.clear()
    r = env.post(f"{V1}/numbers/contract-filing",
                 contract_body("430223202406200101-Y02", _scan(env)))
    assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
    assert [e["field"] for e in r.json()["errors"]] == ["presale_permit_no"]
    assert "the province refused" in r.json()["message"]
    assert _register_count(env.hub) == 1
    # a province answering a number the register holds: never recorded twice, alerted
    env.province.state.mode = "repeat"
    r = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert r.json()["code"] == "3001"
    assert _register_count(env.hub) == 1
    with env.hub.transaction() as s:
        alert = s.scalars(select(Alert).where(Alert.kind == "number_reissued")).one()
        assert alert.division == YOUXIAN and "430223202406200101-Y02" in alert.title


def test_completion_of_a_presale_contract_filing_needs_a_registered_number(numbering_env):  # noqa: F811
    env = numbering_env
    canonical = CanonicalCase(
        item="presale_contract_filing", apply_no="HN-0001", city_code="430200",
        county_codes=[YOUXIAN], applicant=Applicant("张三", "1", "11010519491231002X"),
        submitted_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        data=dict(DATA["presale_contract_filing"]))
    with env.hub.transaction() as s:
        case_no = open_case(s, env.hub, canonical).subs[0][0].case_no

    def event(stage: str, filing_no: str | None = None, county: str = YOUXIAN):
        return env.post(f"{V1}/events", {
            "case_no": case_no, "item": "presale_contract_filing", "county_code": county,
            "stage": stage, "at": "2026-11-23T09:00:00+08:00", "operator": "王窗口",
            "opinion": None, "filing_no": filing_no, "result": None}, county=county)

    assert event("accepted").json()["code"] == "0000"
    r = event("completed", "430223202406200101-Y01-B0001")  # not in the register
    assert (r.status_code, r.json()["code"]) == (400, "2002"), r.text
    assert [e["field"] for e in r.json()["errors"]] == ["filing_no"]
    r = event("completed", "YS2026-0001")  # a local number, not the province's
    assert r.json()["code"] == "2002"
    assert stages_of(env.hub, case_no) == ["accepted"]

    env.post(f"{V1}/numbers/presale-permit", presale_body())
    number = env.post(f"{V1}/numbers/contract-filing",
                      contract_body("430223202406200101-Y01", _scan(env))).json()["data"]["number"]
    r = event("completed", number)
    assert r.status_code == 200 and r.json()["data"]["recorded"] is True, r.text
    with env.hub.transaction() as s:
        assert s.scalars(select(Case.stage).where(Case.case_no == case_no)).one() == "completed"


def test_operator_marks_and_imports_are_checked_against_the_register(numbering_env):  # noqa: F811
    """The same 办结 check as the callbacks (adapters/county_stages.apply_stage) for an
    operator's mark and an imported workbook, with a Chinese error and nothing recorded."""
    from tests.test_admin_fixtures import COUNTY_FUNCTIONS, Client, add_operator

    env = numbering_env
    canonical = CanonicalCase(
        item="presale_contract_filing", apply_no="HN-0002", city_code="430200",
        county_codes=[YOUXIAN], applicant=Applicant("张三", "1", "11010519491231002X"),
        submitted_at=datetime(2026, 11, 22, 2, 0, tzinfo=UTC),
        data=dict(DATA["presale_contract_filing"]))
    with env.hub.transaction() as s:
        case = open_case(s, env.hub, canonical).subs[0][0]
        case.route_mode = "manual"  # this county works it by hand (the export lists it)
        case_no = case.case_no
    add_operator(env.hub, "youxian-op", COUNTY_FUNCTIONS, divisions=(YOUXIAN,))
    op = Client(env.url)
    assert op.login("youxian-op").status_code == 200

    def mark(stage: str, filing_no: str = "") -> str:
        return op.post("/admin/manual/mark", {"case_no": case_no, "stage": stage,
                                              "filing_no": filing_no}).text

    assert f"{case_no} 已标记为" in mark("受理")
    page = mark("办结", "430223202406200101-Y01-B0001")  # well formed, not in the register
    assert "未能标记：" in page and "不是省平台发给本区县的统一编号" in page
    assert stages_of(env.hub, case_no) == ["accepted"]

    import openpyxl

    export = export_zip(op)  # the operator's divisions: 攸县
    assert export.status_code == 200, export.text
    with __import__("zipfile").ZipFile(io.BytesIO(export.content)) as z:
        xlsx = z.read(next(n for n in z.namelist() if n.endswith(".xlsx")))
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    [ws] = wb.worksheets
    header = [c.value for c in ws[1]]
    for label, value in (("新环节", "办结"), ("备案号", "YS2026-0001"), ("经办人", "王")):
        ws.cell(row=2, column=header.index(label) + 1).value = value
    out = io.BytesIO()
    wb.save(out)
    page = import_page(op, out.getvalue(), "q.xlsx")
    assert "不是省平台发给本区县的统一编号" in page
    assert stages_of(env.hub, case_no) == ["accepted"]

    env.post(f"{V1}/numbers/presale-permit", presale_body())
    number = env.post(f"{V1}/numbers/contract-filing",
                      contract_body("430223202406200101-Y01", _scan(env))).json()["data"]["number"]
    assert f"{case_no} 已标记为" in mark("办结", number)
    assert stages_of(env.hub, case_no) == ["accepted", "completed"]


def test_the_qr_code_decodes_to_the_chain_string(numbering_env):  # noqa: F811
    env = numbering_env
    data = env.post(f"{V1}/numbers/presale-permit", presale_body()).json()["data"]
    r = env.get(f"{V1}/numbers/{data['number']}/qr.png")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert round(image.info["dpi"][0]) == 300
    assert image.height > 295  # the 25 mm symbol (295 px at 300 dpi) with the caption below
    found = zxingcpp.read_barcodes(image)
    assert [b.text for b in found] == [data["chain_code"]]
    # the symbol alone fills 25 mm: crop it and decode again
    width = image.width
    symbol = image.crop(((width - 295) // 2, 0, (width - 295) // 2 + 295, 295))
    assert [b.text for b in zxingcpp.read_barcodes(symbol)] == [data["chain_code"]]
    svg = env.get(f"{V1}/numbers/{data['number']}/qr.svg")
    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml")
    assert "湘建云APP或湖南智慧住建公众号扫码查询" in svg.text and 'width="25.0"' in svg.text
    assert env.get(f"{V1}/numbers/430223202406200101-Y09/qr.png").json()["code"] == "4001"
    assert env.get(f"{V1}/numbers/<script>/qr.png").json()["code"] == "2002"


def test_control_characters_and_unprintable_chain_codes_are_never_a_5000(numbering_env):  # noqa: F811
    """A NUL in a request's text (no PostgreSQL text column holds one: the province had
    issued the number when the register's INSERT failed, 5000, and nobody knew) is 2002
    before the province is asked. A chain code the province answers with a control
    character or too long for a QR code (2000 Chinese characters) is 3001, nothing
    recorded, and the operators are alerted (the province issued the number); a
    registered chain code that does not fit is 3001 from the QR endpoint, not 5000."""
    env = numbering_env
    for field, value in (("developer_name", "某\x00公司"), ("project_name", "p\x00"),
                         ("building_nos", ["1\x00"])):
        r = env.post(f"{V1}/numbers/presale-permit", presale_body(**{field: value}))
        assert (r.status_code, r.json()["code"]) == (400, "2002"), (field, r.text)
    assert env.province.state.received == [] and _register_count(env.hub) == 0
    for serial, chain in (("Y01", "链" * 2000), ("Y02", "HNJSBC1.\x00")):
        env.province.state.chain = chain
        r = env.post(f"{V1}/numbers/presale-permit", presale_body())
        assert (r.status_code, r.json()["code"]) == (503, "3001"), r.text
        with env.hub.transaction() as s:
            titles = list(s.scalars(select(Alert.title).where(Alert.kind == "number_reissued")))
        assert any(f"430223202406200101-{serial}" in t for t in titles), titles
    assert _register_count(env.hub) == 0
    env.province.state.chain = None
    number = env.post(f"{V1}/numbers/presale-permit", presale_body()).json()["data"]["number"]
    with env.hub.transaction() as s:  # as if registered before answers were checked
        s.execute(text("UPDATE numbering_numbers SET chain_code = :c WHERE number = :n"),
                  {"c": "链" * 2000, "n": number})
    r = env.get(f"{V1}/numbers/{number}/qr.png")
    assert (r.status_code, r.json()["code"]) == (503, "3001"), r.text[:300]
    with env.hub.transaction() as s:
        assert "5000" not in set(s.scalars(select(CallLogEntry.code)))


def test_numbers_and_codes_are_ascii_digits_and_buyers_are_checked_text(numbering_env):  # noqa: F811
    """Python's ``\\d`` matches full-width and Arabic-Indic digits: a permit
    430223２０２４０６２００１０２ was issued and registered, and a project code in
    full-width digits stored as a project of its own. A buyer's name with a NUL and an
    ID number with a zero-width space went to the province. Each is 2002 before the
    province is asked."""
    env = numbering_env
    for field, body in (
            ("construction_permits[0].no", presale_body(permit="430223２０２４０６２００１０２")),
            ("construction_permits[0].no", presale_body(permit="430223٢٠٢٤٠٦٢٠٠١٠٢")),
            ("project_code", presale_body(project="２４０６-430223-70-01-００００04"))):
        r = env.post(f"{V1}/numbers/presale-permit", body)
        assert (r.status_code, r.json()["code"]) == (400, "2002"), (field, r.text)
        assert field in {e["field"] for e in r.json()["errors"]}, r.text
    for buyer, field in (({"name": "张\x00三", "id_type": "1", "id_no": "11010519491231002X"},
                          "buyers[0].name"),
                         ({"name": "张三", "id_type": "2", "id_no": "E12\u200b345"},
                          "buyers[0].id_no")):
        r = env.post(f"{V1}/numbers/contract-filing",
                     contract_body("430223202406200101-Y01", "f" * 32, buyers=[buyer]))
        assert r.json()["code"] == "2002", r.text
        assert field in {e["field"] for e in r.json()["errors"]}, r.text
    assert env.province.state.received == [] and _register_count(env.hub) == 0
    with env.hub.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Project)) == 0


def test_without_a_profile_the_endpoints_answer_4001(tmp_path, sqlite_url):
    hub = Hub(load_config(zhuzhou_config(tmp_path / "hub", sqlite_url, "http://127.0.0.1:9",
                                         profile=None)))
    server = HubServer(hub).start()
    try:
        from tests.numbering_support import Env

        env = Env(hub, server.url, None)  # type: ignore[arg-type]
        for path in ("numbers/presale-permit", "numbers/contract-filing",
                     "numbers/430223202406200101-Y01/cancel", "projects/P-1/acceptance"):
            r = env.post(f"{V1}/{path}", presale_body())
            assert (r.status_code, r.json()["code"]) == (404, "4001"), (path, r.text)
        assert env.get(f"{V1}/numbers/430223202406200101-Y01/qr.png").json()["code"] == "4001"
        from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

        add_operator(hub, "city", ALL_FUNCTIONS)
        operator = Client(server.url)
        operator.login("city")
        assert operator.get("/admin/presale-projects").status_code == 404
        assert "预售项目监管" not in operator.get("/admin/deadlines").text
    finally:
        server.stop()
        hub.close()


@pytest.mark.parametrize("numbering, why", [
    ({"profile": "hubei"}, "numbering.profile: one of hunan or none"),
    ({"profile": "hunan", "caption_font": "/no/such/font.ttc"}, "numbering.caption_font:"),
    ({"profle": "hunan"}, "numbering.profle: unknown setting"),
])
def test_a_wrong_numbering_section_is_a_start_up_error(tmp_path, sqlite_url, numbering, why):
    import yaml

    from hub import ConfigError

    path = zhuzhou_config(tmp_path / "hub", sqlite_url, "http://127.0.0.1:9")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["numbering"] = numbering
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    with pytest.raises(ConfigError, match=why.replace(".", r"\.")) as exc:
        Hub(load_config(path))
    assert str(path) in str(exc.value)


def test_a_register_that_fails_after_the_province_issued_alerts_the_operators(numbering_env):  # noqa: F811
    """The province has issued a number and the register's INSERT then fails for a reason
    of the store's own (here an engine event refusing that INSERT, as a full disk or a
    trigger would): the county is answered with an error and nothing is recorded, and
    the operators get a critical alert naming the number — the province issued a
    number the register lacks. Once the store takes writes again the next number is
    recorded as usual."""
    from sqlalchemy import event

    env = numbering_env
    engine = env.hub.db.engine
    failures = []

    def refuse(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO NUMBERING_NUMBERS"):
            failures.append(statement[:40])
            raise RuntimeError("the store refused the write (disk full)")

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        r = env.post(f"{V1}/numbers/presale-permit", presale_body())
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert failures, "the register's INSERT was never reached"
    assert (r.status_code, r.json()["code"]) == (500, "5000"), r.text  # the store, not input
    assert len(env.province.state.received) == 1 and _register_count(env.hub) == 0
    with env.hub.transaction() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.kind == "number_reissued")))
    assert [(a.severity, a.division, a.ref) for a in alerts] == [
        ("critical", YOUXIAN, "number:430223202406200101-Y01")]
    assert "登记失败" in alerts[0].title
    again = env.post(f"{V1}/numbers/presale-permit", presale_body())
    assert again.json()["data"]["number"] == "430223202406200101-Y02", again.text
    assert _register_count(env.hub) == 1
