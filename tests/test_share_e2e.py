"""The data-sharing gateway end to end, real servers only: the simulated province sends
filings to the hub (waitress), the simulated county files them and calls back 办结, the
hub pushes them to the simulated tax bureau and fund centre, and simulated departments
(a bank's credit system, the police, the court) query and push, signed."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from sqlalchemy import select, update

from adapters import manual_excel
from adapters.sim.county import CountySim, SimConfig
from adapters.sim.departments import DepartmentClient, DepartmentSim
from adapters.sim.province import ProvinceClient, ProvinceSim
from store import share
from store.models import Case, OutboxMessage
from store.share_models import ShareAccess
from tests.county_support import secret, served
from tests.support import wait_until

COUNTY = "511702"
BUYER = "11010519491231002X"
SELLER = "51072219800101001X"
LISTED = "110105198001011238"
BANK_RATE = 12
HEADER_START = ["时间（北京时间）", "部门", "操作"]


@pytest.fixture
def world(make_hub, store_url):
    province = ProvinceSim(secret("province")).start()
    county = CountySim(SimConfig(hub_url="http://127.0.0.1:9",
                                 secrets={COUNTY: secret(f"county_{COUNTY}")},
                                 delays=(0.05, 0.05, 0.05))).start()
    depts = DepartmentSim({"tax": secret("tax"), "fund": secret("fund")}).start()
    partners = {
        "province": {"base_url": province.base_url},
        f"county_{COUNTY}": {"base_url": county.county_url(COUNTY), "division": COUNTY},
        "bank_icbc": {"department": "bank", "rate_per_minute": BANK_RATE},
        "bank_boc": {"department": "bank"},  # no secret: not enabled
        "police": {"department": "police"},
        "court": {"department": "court"},
        "tax": {"department": "tax", "base_url": depts.base("tax")},
        "fund": {"department": "fund", "base_url": depts.base("fund")},
    }
    hub = make_hub(store_url, inbound=["province", "county_smart", "departments"],
                   partners=partners, secrets={"bank_boc": ""})
    hub.start_workers(2)
    with served(hub) as url:
        county.config.hub_url = url
        clients = {a: DepartmentClient(url, a, secret(a))
                   for a in ("bank_icbc", "police", "court", "tax", "fund")}
        yield hub, url, ProvinceClient(url, secret("province")), province, county, depts, clients
        for c in clients.values():
            c.close()
    county.stop()
    province.stop()
    depts.stop()


def filing(item: str, apply_no: str, buyer: str = BUYER, house: str = "H-0001",
           price: str = "880000.00") -> dict:
    return {"apply_no": apply_no, "city_code": "511700", "county_codes": [COUNTY],
            "applicant": {"name": "张三", "id_type": "1", "id_no": buyer, "uscc": None,
                          "phone": "13800138000"},
            "submitted_at": "2026-11-22T10:00:00+08:00", "materials": [],
            "data": {"buyer_name": "张三", "buyer_id_no": buyer, "seller_name": "李四",
                     "seller_id_no": SELLER, "house_id": house, "address": "通川区朝阳路1号",
                     "price": price}}


def sub_case_no(answer) -> str:
    return answer.body["data"]["sub_cases"][0]["case_no"]


def stages_pushed(province, case_no):
    return [p.body["stage"] for p in province.state.pushes("status")
            if p.body.get("case_no") == case_no]


def audit_rows(hub, **where):
    with hub.transaction() as s:
        stmt = select(ShareAccess).order_by(ShareAccess.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(ShareAccess, k) == v)
        return [{c: getattr(r, c) for c in ("app_id", "action", "operator", "purpose", "asked",
                                             "asked_hash", "returned", "count", "code",
                                             "direction")}
                for r in s.scalars(stmt)]


def test_resale_filed_pushed_to_tax_then_queried_by_the_bank(world):
    hub, _url, province, prov_sim, county, depts, c = world
    answer = province.submit("resale_contract_filing", filing("resale_contract_filing", "RS-1"))
    assert answer.status == 200 and answer.body["code"] == "0000", answer.body
    case_no = sub_case_no(answer)
    wait_until(lambda: "completed" in stages_pushed(prov_sim, case_no), what="办结 pushed")
    wait_until(lambda: depts.state.of("tax"), what="tax receives the filing")
    [got] = depts.state.of("tax")
    contract = got.body["contract"]
    filing_no = contract["filing_no"]
    assert got.signer == "cityhub_511700" and got.body["event"] == "filed"
    assert filing_no.startswith("BA511702") and contract["kind"] == "resale"
    assert contract["price"] == "880000.00"
    assert {"role": "buyer", "name": "张三", "id_no": BUYER} in contract["parties"]
    wait_until(lambda: depts.state.of("fund"), what="fund receives the filing")

    def tax_done():  # through the outbox, so resubmittable and call-logged
        with hub.transaction() as s:
            out = s.scalars(select(OutboxMessage).where(OutboxMessage.partner == "tax")).one()
            return out.status == "done" and out.interface == "share.out.tax"

    wait_until(tax_done, what="the tax push recorded as done")

    purpose = "个人住房贷款审批 (2026)贷字第77号"
    found = c["bank_icbc"].contracts(BUYER.lower(), operator="loan-officer-7", purpose=purpose)
    assert found.status == 200 and found.body["code"] == "0000", found.body
    [entry] = found.body["data"]["contracts"]
    assert entry["filing_no"] == filing_no and entry["price"] == "880000.00"
    assert entry["status"] == "filed" and entry["county_code"] == COUNTY
    count = c["bank_icbc"].housing_count(BUYER, operator="loan-officer-7", purpose=purpose)
    assert count.body["data"]["count"] == 1 and count.body["data"]["as_of"]
    assert c["bank_icbc"].housing_count(SELLER).body["data"]["count"] == 0  # seller: no home

    rows = audit_rows(hub, app_id="bank_icbc", code="0000")
    assert [r["action"] for r in rows] == ["query.contracts", "query.housing_count",
                                           "query.housing_count"]
    asked = rows[0]
    assert asked["operator"] == "loan-officer-7" and asked["purpose"] == purpose
    assert asked["returned"] == filing_no and asked["count"] == 1
    with hub.db.session() as s:  # the ID number only as a keyed hash, never in clear
        raw = s.execute(select(ShareAccess.__table__.c.asked_hash, ShareAccess.__table__.c.asked)
                        .where(ShareAccess.__table__.c.app_id == "bank_icbc")).first()
    assert raw.asked_hash == hub.cipher.blind_index(BUYER) and BUYER not in json.dumps(
        list(raw))
    wait_until(lambda: audit_rows(hub, app_id="tax"), what="the push audited")
    [pushed] = audit_rows(hub, app_id="tax")
    assert pushed["direction"] == "out" and pushed["returned"] == filing_no

    police = c["police"].contracts(BUYER, purpose="刑事案件协查")
    [seen] = police.body["data"]["contracts"]
    assert "price" not in seen and seen["filing_no"] == filing_no


def test_scope_purpose_and_rate(world):
    hub, _url, province, _p, _county, _d, c = world
    tax = c["tax"].housing_count(BUYER)
    assert tax.status == 403 and tax.body["code"] == "1004"
    police = c["police"].call("seizures", {"house_id": "H-0001"})
    assert police.status == 403 and police.body["code"] == "1004"
    pushes = c["bank_icbc"].list_defaulter(BUYER, "张三", "(2026)川1702执1号", "通川区人民法院")
    assert pushes.body["code"] == "1004"  # only a court lists defaulters
    for headers in ({"operator": None}, {"purpose": None}):
        missing = c["bank_icbc"].contracts(BUYER, **headers)
        assert missing.status == 400 and missing.body["code"] == "2002", missing.body
    broken = c["bank_icbc"].contracts(BUYER, headers={"X-Purpose": "%E4%B8"})  # not UTF-8
    assert broken.body["code"] == "2002"
    long = c["bank_icbc"].contracts(BUYER, purpose="审" * 201)
    assert long.body["code"] == "2002"
    bad = c["bank_icbc"].call("contracts", {"id_no": BUYER, "house_id": "H-1"})
    assert bad.body["code"] == "2002"
    # the province is a partner but not a department; a department without a secret: 1001
    not_dept = province.request("POST", "/api/share/v1/contracts", b'{"id_no":"x"}')
    assert not_dept.status == 403 and not_dept.body["code"] == "1004"
    boc = DepartmentClient(c["bank_icbc"].hub_url, "bank_boc", b"guessed-secret-000000")
    assert boc.contracts(BUYER).body["code"] == "1001"
    codes = [c["bank_icbc"].housing_count(BUYER).body["code"] for _ in range(BANK_RATE)]
    assert codes.count("1005") >= 1 and codes[0] == "0000"
    limited = c["bank_icbc"].housing_count(BUYER)
    assert limited.status == 429 and limited.body["code"] == "1005"
    refused = [r["code"] for r in audit_rows(hub, app_id="bank_icbc")]
    assert "1005" in refused and "2002" in refused and "1004" in refused
    police_ok = c["police"].contracts(BUYER)  # other departments keep their own rate
    assert police_ok.body["code"] == "0000"


def test_housekeeping_forgets_past_rate_windows(world):
    from datetime import timedelta

    from scheduler import housekeeping
    from store.models import utcnow
    from store.share_models import ShareRateWindow

    hub, _url, _province, _p, _county, _d, c = world
    assert c["bank_icbc"].housing_count(BUYER).body["code"] == "0000"
    assert c["police"].contracts(BUYER).body["code"] == "0000"
    with hub.transaction() as s:  # the bank's minute is two hours old, the police's current
        s.execute(update(ShareRateWindow).where(ShareRateWindow.app_id == "bank_icbc")
                  .values(minute=utcnow() - timedelta(hours=2)))
    assert housekeeping(hub)["share_rate_windows"] == 1
    with hub.db.session() as s:
        assert s.scalars(select(ShareRateWindow.app_id)).all() == ["police"]


def test_listed_buyer_refused_then_accepted_after_removal(world):
    hub, _url, province, prov_sim, county, _d, c = world
    court = c["court"]
    listed = court.list_defaulter(LISTED, "王五", "(2026)川1702执123号", "达州市通川区人民法院")
    assert listed.body["code"] == "0000" and listed.body["data"]["changed"] == 1
    again = court.list_defaulter(LISTED, "王五", "(2026)川1702执123号", "达州市通川区人民法院")
    assert again.body["data"]["changed"] == 0  # idempotent on (id_no, case_no)

    refused = province.submit("presale_contract_filing",
                              filing("presale_contract_filing", "PS-1", buyer=LISTED))
    assert refused.status == 200 and refused.body["code"] == "0000", refused.body
    data = refused.body["data"]
    assert data["stage"] == "rejected" and "(2026)川1702执123号" in data["reason"]
    assert "失信被执行人" in data["reason"] and LISTED not in data["reason"]
    case_no = sub_case_no(refused)
    wait_until(lambda: stages_pushed(prov_sim, case_no) == ["rejected"], what="不予受理 pushed")
    [status] = [p.body for p in prov_sim.state.pushes("status") if p.body["case_no"] == case_no]
    assert "(2026)川1702执123号" in status["opinion"]
    repeat = province.submit("presale_contract_filing",
                             filing("presale_contract_filing", "PS-1", buyer=LISTED))
    assert repeat.body == refused.body  # the first answer, nothing new
    with hub.transaction() as s:
        assert s.scalars(select(Case.stage).where(Case.case_no == case_no)).one() == "rejected"
        assert not s.scalars(select(OutboxMessage).where(
            OutboxMessage.interface.like("county.%"))).all()
    assert county.received == []  # nothing went to the county

    removed = court.list_defaulter(LISTED, "王五", "(2026)川1702执123号", "达州市通川区人民法院",
                                   removed_at="2026-11-30")
    assert removed.body["data"]["changed"] == 1
    accepted = province.submit("presale_contract_filing",
                               filing("presale_contract_filing", "PS-2", buyer=LISTED))
    assert "stage" not in accepted.body["data"], accepted.body
    wait_until(lambda: [r for r in county.received if r.body["apply_no"] == "PS-2"],
               what="the new filing delivered")


def test_rule_switched_off_lets_a_listed_buyer_through(world):
    hub, _url, province, _p, county, _d, c = world
    c["court"].list_defaulter(LISTED, "王五", "(2026)川1702执9号", "达州市通川区人民法院")
    with hub.transaction() as s:
        share.set_rule(s, "presale_contract_filing", False, "admin")
    passed = province.submit("presale_contract_filing",
                             filing("presale_contract_filing", "PS-9", buyer=LISTED))
    assert "stage" not in passed.body["data"]
    resale = province.submit("resale_contract_filing",  # the rule is per item: still on here
                             filing("resale_contract_filing", "RS-9", buyer=LISTED))
    assert resale.body["data"]["stage"] == "rejected"


def test_seized_house_delivered_with_the_warning(world):
    hub, _url, province, _p, county, _d, c = world
    seized = c["court"].seize("CF-2026-001", "H-0777", "达州市中级人民法院", "(2026)川17执保5号")
    assert seized.body["code"] == "0000" and seized.body["data"]["duplicate"] is False
    assert c["court"].seize("CF-2026-001", "H-0777", "达州市中级人民法院",
                            "(2026)川17执保5号").body["data"]["duplicate"] is True
    province.submit("resale_contract_filing",
                    filing("resale_contract_filing", "RS-7", house="H-0777"))
    got = wait_until(lambda: [r for r in county.received if r.body["apply_no"] == "RS-7"],
                     what="the filing delivered")
    assert got[0].body["warnings"] == [{"kind": "seizure", "seizure_no": "CF-2026-001",
                                        "court": "达州市中级人民法院",
                                        "document_no": "(2026)川17执保5号"}]
    answer = c["bank_icbc"].call("seizures", {"house_id": "H-0777"})
    assert [z["seizure_no"] for z in answer.body["data"]["seizures"]] == ["CF-2026-001"]
    # released: the next filing goes without the warning
    c["court"].seize("CF-2026-001", "H-0777", "达州市中级人民法院", "(2026)川17执保5号",
                     released_at="2026-11-30T09:00:00+08:00")
    province.submit("resale_contract_filing",
                    filing("resale_contract_filing", "RS-8", house="H-0777"))
    later = wait_until(lambda: [r for r in county.received if r.body["apply_no"] == "RS-8"],
                       what="the second filing delivered")
    assert "warnings" not in later[0].body


def test_mortgage_push_idempotent_and_shown_with_the_house(world):
    hub, _url, province, prov_sim, _county, depts, c = world
    answer = province.submit("resale_contract_filing", filing("resale_contract_filing", "RS-3"))
    case_no = sub_case_no(answer)
    wait_until(lambda: "completed" in stages_pushed(prov_sim, case_no), what="办结 pushed")
    body = {"mortgage_no": "DY-001", "house_id": "H-0001", "filing_no": None,
            "mortgagor": {"name": "张三", "id_no": BUYER}, "mortgagee": "工商银行达州分行",
            "amount": "500000.00", "signed_at": "2026-11-25"}
    first = c["bank_icbc"].call("mortgages", body)
    assert first.body["code"] == "0000" and first.body["data"]["duplicate"] is False
    assert c["bank_icbc"].call("mortgages", body).body["data"]["duplicate"] is True
    bad = c["bank_icbc"].call("mortgages", {**body, "amount": "-1", "mortgagor": {}})
    assert bad.body["code"] == "2002" and len(bad.body["errors"]) >= 3
    house = c["bank_icbc"].call("contracts", {"house_id": "H-0001"})
    [entry] = house.body["data"]["contracts"]
    assert [m["mortgage_no"] for m in entry["mortgages"]] == ["DY-001"]
    assert entry["mortgages"][0]["amount"] == "500000.00"
    # the police see the mortgage on the house but not its amount (no price in scope)
    [seen] = c["police"].call("contracts", {"house_id": "H-0001"},
                              purpose="刑事案件协查").body["data"]["contracts"]
    assert "price" not in seen and [m["mortgage_no"] for m in seen["mortgages"]] == ["DY-001"]
    assert "amount" not in seen["mortgages"][0]
    assert c["police"].call("mortgages", body).body["code"] == "1004"


def test_admin_page_searches_and_exports_the_sharing_audit(world):
    import io

    from openpyxl import load_workbook

    from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

    hub, url, _province, _p, _county, _d, c = world
    c["bank_icbc"].contracts(BUYER, operator="=cmd|calc!A0", purpose="个人住房贷款审批")
    c["police"].contracts(SELLER, operator="pol-9", purpose="刑事案件协查")
    c["tax"].housing_count(BUYER)  # refused 1004, audited too
    add_operator(hub, "auditor", ALL_FUNCTIONS)
    add_operator(hub, "county-op", ALL_FUNCTIONS, divisions=("511703",))
    client = Client(url)
    assert client.login("auditor").status_code == 200
    page = client.get("/admin/share").text
    assert 'id="nav-share"' in page and 'class="on" id="nav-share"' in page
    assert "工商银行个人信贷系统" in page and "查询合同备案" in page and "无权办理" in page
    assert BUYER not in page and "证件号（已脱敏）" in page
    found = client.get(f"/admin/share?id_no={BUYER.lower()}").text
    assert "个人住房贷款审批" in found and "刑事案件协查" not in found
    assert "pol-9" in client.get("/admin/share?operator=pol-9").text
    export = client.get(f"/admin/share.xlsx?id_no={BUYER}")
    assert export.status_code == 200
    ws = load_workbook(io.BytesIO(export.content))["共享访问审计"]
    rows = [[cell.value for cell in row] for row in ws.iter_rows()]
    assert rows[0][:3] == HEADER_START and len(rows) == 2, rows  # header, the bank's query
    cell = next(cell for row in ws.iter_rows() for cell in row
                if isinstance(cell.value, str) and "calc" in cell.value)
    assert cell.data_type == "s" and cell.quotePrefix  # never a formula
    scoped = Client(url)
    assert scoped.login("county-op").status_code == 200
    assert "没有记录" in scoped.get("/admin/share").text  # city-wide queries: not its scope
    # the defaulter rule holds city-wide: a county administrator cannot switch it off
    refused = scoped.post("/admin/share/rules", {})
    assert "只有全市范围的管理员才能修改" in refused.text
    with hub.transaction() as s:
        assert all(share.rule_enabled(s, item) for item in share.RULE_ITEMS)
    add_operator(hub, "viewer", ("view",))
    viewer = Client(url)
    assert viewer.login("viewer").status_code == 200
    assert 'id="nav-share"' not in viewer.get("/admin/").text  # no 查看审计记录: no link
    assert viewer.get("/admin/share").status_code == 403
    with hub.transaction() as s:
        [summary] = [m for m in share.monthly_summary(
            s, __import__("datetime").datetime(2000, 1, 1),
            __import__("datetime").datetime(2100, 1, 1)) if m["app_id"] == "tax"]
    assert summary["refusals"] == 1 and summary["queries"] == 0


def test_case_page_shows_the_seizure_warning(world):
    from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator

    hub, url, province, _p, county, _d, c = world
    c["court"].seize("CF-2026-002", "H-0888", "达州市通川区人民法院", "(2026)川1702执保8号")
    answer = province.submit("resale_contract_filing",
                             filing("resale_contract_filing", "RS-88", house="H-0888"))
    case_no = sub_case_no(answer)
    other = sub_case_no(province.submit("resale_contract_filing",
                                        filing("resale_contract_filing", "RS-89")))
    add_operator(hub, "root", ALL_FUNCTIONS)
    client = Client(url)
    assert client.login("root").status_code == 200
    page = client.get(f"/admin/cases/{case_no}").text
    assert 'id="seizure-warning"' in page and "(2026)川1702执保8号" in page
    assert 'id="seizure-warning"' not in client.get(f"/admin/cases/{other}").text


def test_a_manual_countys_export_carries_the_seizure_warning(world):
    """A manual county's clerk works from the exported workbook: a filing of a seized
    house shows the court's seizure in 风险提示 (as a smart county's delivery carries it
    in ``warnings``); another house's row has none, and a hostile court text stays text."""
    hub, _url, province, _p, _county, _d, c = world
    manual = "511725"  # 渠县: routed to the manual queue
    c["court"].seize("CF-2026-009", "H-0999", "达州市中级人民法院", "=HYPERLINK(\"x\")")
    for apply_no, house in (("RS-M1", "H-0999"), ("RS-M2", "H-0998")):
        doc = filing("resale_contract_filing", apply_no, house=house)
        doc["county_codes"] = [manual]
        assert province.submit("resale_contract_filing", doc).body["code"] == "0000"
    xlsx, _zip = manual_excel.export_workbook(hub, county=manual, with_materials=False)
    ws = openpyxl.load_workbook(io.BytesIO(xlsx))["存量房网签备案"]
    header = [cell.value for cell in ws[1]]
    rows = {r[header.index("申请编号")]: r for r in ws.iter_rows(min_row=2, values_only=True)}
    warning = rows["RS-M1"][header.index("风险提示")]
    assert warning.startswith("房屋已被查封：达州市中级人民法院") and "CF-2026-009" in warning
    assert rows["RS-M2"][header.index("风险提示")] is None
    cell = next(r for r in ws.iter_rows(min_row=2) if r[header.index("申请编号")].value == "RS-M1")
    assert cell[header.index("风险提示")].data_type == "s"  # text, never a formula


@pytest.mark.parametrize("written", [
    "110105198001011238\u200b", "１１０１０５１９８００１０１１２３８", "1101051980\u00a001011238",
    " 110105198001011238"])
def test_an_id_number_written_otherwise_is_refused_not_let_past_the_list(world, written):
    """The same listed person's number with a zero-width or no-break space, or in
    full-width digits: it had passed the 失信被执行人 rule (no entry has that number) and
    gone to the county. Now a field error naming it; nothing goes to the county."""
    hub, _url, province, _p, county, _d, c = world
    c["court"].list_defaulter(LISTED, "王五", "(2026)川1702执5号", "达州市通川区人民法院")
    body = filing("presale_contract_filing", "PS-W", buyer=BUYER)
    body["data"]["buyer_id_no"] = written
    answer = province.submit("presale_contract_filing", body)
    assert (answer.status, answer.body["code"]) == (400, "2002"), answer.body
    assert "data.buyer_id_no" in {e["field"] for e in answer.body["errors"]}
    with hub.transaction() as s:
        assert not s.scalars(select(OutboxMessage).where(
            OutboxMessage.interface.like("county.%"))).all()
    assert county.received == []


@pytest.mark.parametrize(("listed_as", "applied_as"), [
    (LISTED, "110105800101123"), ("110105800101123", LISTED)])
def test_the_list_finds_a_person_by_the_old_15_digit_number_and_the_new(world, listed_as,
                                                                         applied_as):
    """A court may list the old 15-digit number and an application carry the 18-digit
    one of the same person, or the other way round: 不予受理 either way."""
    hub, _url, province, _p, county, _d, c = world
    c["court"].list_defaulter(listed_as, "王五", "(2026)川1702执6号", "达州市通川区人民法院")
    body = filing("resale_contract_filing", "RS-15", buyer=BUYER)
    body["data"]["buyer_id_no"] = applied_as
    answer = province.submit("resale_contract_filing", body)
    assert answer.body["code"] == "0000", answer.body
    assert answer.body["data"]["stage"] == "rejected", answer.body
    assert "(2026)川1702执6号" in answer.body["data"]["reason"]


def test_contracts_by_person_are_chosen_in_scope_before_the_limit_and_flag_a_cut(world):
    """A person with 201 rental filings and one sale contract: the bank (sale contracts
    only) had an empty answer (the limit was used up by rows it may not see). Now it
    gets the sale contract; the police (every kind) get the oldest 200 and
    ``truncated``; an answer that is whole has no flag."""
    from datetime import datetime

    from tests.county_support import new_case

    hub, _url, _province, _p, _county, _d, c = world
    person = "51072219900101002X"
    rental = {"lessee_name": "赵六", "lessee_id_no": person, "lessor_name": "王五",
              "lessor_id_no": SELLER, "house_id": "H-R", "address": "通川区某路2号"}
    sale = {"buyer_name": "赵六", "buyer_id_no": person, "seller_name": "李四",
            "seller_id_no": SELLER, "house_id": "H-S", "address": "通川区某路3号",
            "price": "900000.00"}
    opened = [("rental_filing", f"R-{n}", rental) for n in range(201)]
    opened.append(("presale_contract_filing", "S-1", sale))
    for n, (item, apply_no, data) in enumerate(opened):
        case_no = new_case(hub, item, "511725", apply_no=apply_no, data=data)  # manual
        with hub.transaction() as s:
            case = s.scalars(select(Case).where(Case.case_no == case_no)).one()
            share.record_filing(s, case, data, f"BA{n:06d}", datetime(2026, 11, 23, 1, 0))
    bank = c["bank_icbc"].contracts(person, purpose="个人住房贷款审批")
    assert bank.body["code"] == "0000", bank.body
    assert [e["filing_no"] for e in bank.body["data"]["contracts"]] == ["BA000201"]
    assert "truncated" not in bank.body["data"]
    police = c["police"].contracts(person, purpose="刑事案件协查")
    found = police.body["data"]["contracts"]
    assert len(found) == 200 and police.body["data"]["truncated"] is True
    assert [e["filing_no"] for e in found] == [f"BA{n:06d}" for n in range(200)]


def test_pushes_with_a_misspelt_field_or_dates_out_of_order_change_nothing(world):
    """A court's ``remove_at`` (for ``removed_at``) had been ignored — the person stayed
    listed while the court believed them removed — and a removal before the listing or
    a seizure ending before it began were stored. Each is now 2002 naming the field, and
    nothing changes; a 事由 holding a right-to-left override or only a zero-width space
    is 2002 too (the audit would read otherwise than sent)."""
    hub, _url, _province, _p, _county, _d, c = world
    court = c["court"]
    entry = {"id_no": LISTED, "name": "王五", "case_no": "(2026)川1702执9号",
             "court": "达州市通川区人民法院", "listed_at": "2026-11-01", "removed_at": None}
    for bad, field in (({**entry, "remove_at": "2026-11-30"}, "entries[0].remove_at"),
                       ({**entry, "removed_at": "2026-10-01"}, "entries[0].removed_at")):
        answer = court.call("defaulters", {"entries": [bad]})
        assert (answer.status, answer.body["code"]) == (400, "2002"), answer.body
        assert [e["field"] for e in answer.body["errors"]] == [field]
    seizure = {"seizure_no": "CF-9", "house_id": "H-0009", "court": "达州市通川区人民法院",
               "document_no": "(2026)川1702执保9号", "from": "2026-11-01",
               "to": "2026-10-01T00:00:00+08:00", "released_at": None}
    answer = court.call("seizures", seizure)
    assert (answer.status, answer.body["code"]) == (400, "2002"), answer.body
    assert [e["field"] for e in answer.body["errors"]] == ["to"]
    with hub.transaction() as s:
        assert share.listed(s, [LISTED]) is None
        assert share.seizures(s, "H-0009") == []
    for purpose in ("\u202e款贷房住", "\u200b"):
        asked = c["bank_icbc"].contracts(BUYER, purpose=purpose)
        assert (asked.status, asked.body["code"]) == (400, "2002"), asked.body
        assert [e["field"] for e in asked.body["errors"]] == ["X-Purpose"]
    assert court.call("defaulters", {"entries": [entry]}).body["code"] == "0000"
