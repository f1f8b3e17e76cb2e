import copy
import json
from decimal import Decimal

import pytest

from mapping.canonical import CanonicalCase, FieldError
from mapping.divisions import Divisions
from mapping.items import get_item
from mapping.province_in import ValidationFailure, parse_application

CITY = Divisions.load().city("511700")
UNIT_CODE = "511702" + "001001" + "GB" + "00001" + "F" + "00010001"


def envelope(**data):
    return {
        "apply_no": "510000-20261122-000001",
        "city_code": "511700",
        "county_codes": ["511702"],
        "applicant": {
            "name": "张三",
            "id_type": "1",
            "id_no": "11010519491231002X",
            "uscc": None,
            "phone": "13800138000",
        },
        "submitted_at": "2026-11-22T10:00:00+08:00",
        "data": data,
        "materials": [{"file_id": "f-001", "name": "身份证明.jpg"}],
    }


def filing(**extra):
    data = {
        "buyer_name": "张三",
        "buyer_id_no": "11010519491231002X",
        "seller_name": "达州某某置业有限公司",
        "seller_id_no": "91350100M000100Y43",
        "house_id": "H-0001",
        "address": "通川区某路1号1栋1单元101",
    }
    data.update(extra)
    return envelope(**data)


def refuse(item_code, body):
    with pytest.raises(ValidationFailure) as info:
        parse_application(get_item(item_code), body, CITY)
    return info.value


def fields(failure):
    return {e.field for e in failure.errors}


def test_contract_example_parses():
    case = parse_application(get_item("property_info_query"), envelope(), CITY)
    assert case.item == "property_info_query"
    assert case.apply_no == "510000-20261122-000001"
    assert case.county_codes == ["511702"]
    assert case.applicant.id_no == "11010519491231002X"
    assert case.applicant.id_type == "1"
    assert case.submitted_at.utcoffset().total_seconds() == 8 * 3600
    assert case.materials[0].name == "身份证明.jpg"


def test_full_contract_filing_is_normalised():
    body = filing(
        co_ownership="2",
        co_owners=[
            {"name": "张三", "id_type": "1", "id_no": "11010519491231002X", "share": "60"},
            {"name": "李四", "id_type": 3, "id_no": "E12345678", "share": "40.00"},
        ],
        unit_code=UNIT_CODE,
        price="1234567.89",
        fund_supervision=True,
        supervision_bank="某银行达州分行",
        future_field="kept",
    )
    case = parse_application(get_item("presale_contract_filing"), body, CITY)
    assert case.data["price"] == Decimal("1234567.89")
    assert [o["share"] for o in case.data["co_owners"]] == [Decimal(60), Decimal(40)]
    assert case.data["co_owners"][1]["id_type"] == "3"
    assert case.data["future_field"] == "kept"


def test_shares_must_sum_to_exactly_100():
    owners = [
        {"name": "张三", "id_type": "1", "id_no": "11010519491231002X", "share": "50"},
        {"name": "李四", "id_type": "3", "id_no": "E12345678", "share": "49.99"},
    ]
    failure = refuse("resale_contract_filing", filing(co_ownership="2", co_owners=owners))
    assert failure.code == "2002"
    assert failure.errors == [FieldError("data.co_owners", "shares sum to 99.99, not 100")]

    owners[1]["share"] = "50.00"
    case = parse_application(
        get_item("resale_contract_filing"), filing(co_ownership="2", co_owners=owners), CITY
    )
    assert sum(o["share"] for o in case.data["co_owners"]) == 100


def test_shares_required_when_by_shares():
    owners = [
        {"name": "张三", "id_type": "1", "id_no": "11010519491231002X", "share": "100"},
        {"name": "李四", "id_type": "3", "id_no": "E12345678"},
    ]
    failure = refuse("resale_contract_filing", filing(co_ownership="2", co_owners=owners))
    assert fields(failure) == {"data.co_owners[1].share"}
    # joint ownership (共同共有) needs no shares
    parse_application(
        get_item("resale_contract_filing"), filing(co_ownership="1", co_owners=owners), CITY
    )
    failure = refuse("resale_contract_filing", filing(co_ownership="2"))
    assert fields(failure) == {"data.co_owners"}


def test_co_ownership_code_table():
    failure = refuse("resale_contract_filing", filing(co_ownership="4"))
    assert fields(failure) == {"data.co_ownership"}


def test_unit_code_must_start_with_the_county():
    other = "511703" + UNIT_CODE[6:]
    failure = refuse("presale_contract_filing", filing(unit_code=other))
    assert failure.code == "2002"
    assert fields(failure) == {"data.unit_code"}
    assert "511702" in failure.errors[0].reason

    body = filing(unit_code=UNIT_CODE)
    body["county_codes"] = ["511702", "511703"]
    assert fields(refuse("presale_contract_filing", body)) == {"data.unit_code"}

    assert fields(refuse("presale_contract_filing", filing(unit_code=UNIT_CODE[:27]))) == {
        "data.unit_code"
    }


def test_all_errors_are_collected_with_their_paths():
    body = filing(
        co_ownership="2",
        co_owners=[
            {"name": "张三", "id_type": "1", "id_no": "11010519491231002X", "share": "50"},
            {"name": "", "id_type": "1", "id_no": "110105194912310021", "share": "1.234"},
        ],
        price=12.5,
    )
    body["apply_no"] = "bad/apply"
    body["applicant"]["id_no"] = "110105194912310021"
    body["applicant"]["phone"] = "12345"
    del body["data"]["buyer_name"]
    body["materials"] = [{"file_id": "f-1"}]
    body["submitted_at"] = "2026-11-22T10:00:00"
    failure = refuse("presale_contract_filing", body)
    assert failure.code == "2002"
    assert fields(failure) == {
        "apply_no",
        "applicant.id_no",
        "applicant.phone",
        "submitted_at",
        "data.buyer_name",
        "data.price",
        "data.co_owners[1].name",
        "data.co_owners[1].id_no",
        "data.co_owners[1].share",
        "materials[0].name",
    }
    assert all(e.reason for e in failure.errors)


def test_city_code_mismatch_is_2003():
    body = envelope()
    body["city_code"] = "440700"
    failure = refuse("property_info_query", body)
    assert failure.code == "2003"
    assert "city_code" in fields(failure)


def test_counties_not_of_this_city_are_2004_and_each_named():
    body = envelope()
    body["county_codes"] = ["511702", "440703", "511721"]
    failure = refuse("property_info_query", body)
    assert failure.code == "2004"
    assert fields(failure) == {"county_codes[1]", "county_codes[2]"}


def test_county_codes_shape():
    for bad in [[], "511702", None]:
        body = envelope()
        body["county_codes"] = bad
        failure = refuse("property_info_query", body)
        assert (failure.code, fields(failure)) == ("2002", {"county_codes"})
    body = envelope()
    body["county_codes"] = ["511702", "511702", 511703]
    failure = refuse("property_info_query", body)
    assert (failure.code, fields(failure)) == ("2002", {"county_codes[1]", "county_codes[2]"})


def test_several_counties_split_later():
    body = envelope()
    body["county_codes"] = ["511702", "511703", "511781"]
    case = parse_application(get_item("property_info_query"), body, CITY)
    assert case.county_codes == ["511702", "511703", "511781"]


def test_id_born_in_a_former_county_is_valid():
    body = envelope()
    body["applicant"]["id_no"] = "511721199001011230"
    assert parse_application(get_item("property_info_query"), body, CITY).applicant.id_no


@pytest.mark.parametrize(
    ("id_type", "id_no", "ok"),
    [
        ("7", "91350100M000100Y43", True),
        ("7", "91350100M000100Y44", False),
        ("3", "E12345678", True),
        ("99", "任何证件", True),
        ("1", "11010519491231002x", False),
        ("8", "E12345678", False),
    ],
)
def test_applicant_id_by_type(id_type, id_no, ok):
    body = envelope()
    body["applicant"].update(id_type=id_type, id_no=id_no)
    if ok:
        parse_application(get_item("property_info_query"), body, CITY)
    else:
        failure = refuse("property_info_query", body)
        assert fields(failure) <= {"applicant.id_no", "applicant.id_type"}
        assert fields(failure)


def test_party_id_numbers_in_data():
    # an 18-digit number that is neither a resident ID nor a USCC
    failure = refuse("rental_filing", envelope(
        lessee_name="张三", lessee_id_no="110105194912310021",
        lessor_name="李四", lessor_id_no="E12345678",
        house_id="H-1", address="某路1号",
    ))  # fmt: skip
    assert fields(failure) == {"data.lessee_id_no"}
    # a company lessor with an all-digit USCC is accepted
    parse_application(get_item("rental_filing"), envelope(
        lessee_name="张三", lessee_id_no="11010519491231002X",
        lessor_name="某公司", lessor_id_no="915117021234567891",
        house_id="H-1", address="某路1号",
    ), CITY)  # fmt: skip


def test_filed_property_query_needs_cert_or_contract():
    failure = refuse("filed_property_query", envelope())
    assert fields(failure) == {"data"}
    parse_application(
        get_item("filed_property_query"),
        envelope(cert_no="川(2026)达州市不动产权第0000001号"),
        CITY,
    )


def test_developer_uscc_and_house_ids():
    good = dict(
        developer_name="某置业",
        developer_uscc="91350100M000100Y43",
        project_name="某小区",
        presale_scope="1#楼",
        address="某路",
        house_ids=["H-1", "H-2"],
    )
    parse_application(get_item("presale_permit_application"), envelope(**good), CITY)
    bad = dict(good, developer_uscc="91350100M000100Y44", house_ids=["H-1", "", "H-1"])
    failure = refuse("presale_permit_application", envelope(**bad))
    assert fields(failure) == {"data.developer_uscc", "data.house_ids[1]", "data.house_ids[2]"}


def test_price_and_bool_types():
    failure = refuse("presale_contract_filing", filing(price="100.001", fund_supervision="yes"))
    assert fields(failure) == {"data.price", "data.fund_supervision"}


def test_strings_longer_than_200_are_refused():
    failure = refuse("survey_review", envelope(enterprise_name="企" * 201, project_name="项目"))
    assert fields(failure) == {"data.enterprise_name"}


def test_non_objects_are_refused_and_unknown_top_level_keys_ignored():
    body = envelope()
    body["data"] = ["not", "an", "object"]
    body["applicant"] = "张三"
    body["something_new"] = {"x": 1}
    failure = refuse("property_info_query", body)
    assert fields(failure) == {"data", "applicant"}
    body = envelope()
    body["something_new"] = {"x": 1}
    parse_application(get_item("property_info_query"), body, CITY)
    assert refuse("property_info_query", ["not", "a", "dict"]).code == "2002"


def test_status_only_item_is_not_parsed():
    with pytest.raises(ValueError):
        parse_application(get_item("maintenance_fund_deposit"), envelope(), CITY)


def test_canonical_round_trip_and_county_envelope():
    body = filing(
        co_ownership="2",
        co_owners=[
            {"name": "张三", "id_type": "1", "id_no": "11010519491231002X", "share": "33.33"},
            {"name": "李四", "id_type": "3", "id_no": "E12345678", "share": "66.67"},
        ],
        price="880000.00",
    )
    body["county_codes"] = ["511702", "511703"]
    case = parse_application(get_item("resale_contract_filing"), body, CITY)
    as_dict = case.to_dict()
    text = json.dumps(as_dict, ensure_ascii=False)  # JSON-safe
    assert as_dict["data"]["price"] == "880000.00"
    assert as_dict["submitted_at"] == "2026-11-22T10:00:00+08:00"
    again = CanonicalCase.from_dict(json.loads(text))
    assert again == case
    assert again.data["co_owners"][0]["share"] == Decimal("33.33")

    county = case.for_county("511703", "C-000002")
    json.dumps(county)
    assert county["county_code"] == "511703"
    assert county["case_no"] == "C-000002"
    assert "county_codes" not in county
    expected = copy.deepcopy(as_dict)
    del expected["county_codes"], expected["item"]
    assert {k: v for k, v in county.items() if k not in ("county_code", "case_no")} == expected
    with pytest.raises(ValueError):
        case.for_county("511781", "C-3")


def test_field_error_to_dict():
    assert FieldError("applicant.id_no", "bad").to_dict() == {
        "field": "applicant.id_no",
        "reason": "bad",
    }
