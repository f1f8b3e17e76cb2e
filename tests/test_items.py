import pytest

from mapping.items import (
    ITEMS,
    STAGES,
    SYNC_QUERY_ITEMS,
    ItemKind,
    UnknownItem,
    can_follow,
    get_item,
    province_items,
)

PROVINCE_ITEMS = {
    "property_info_query": ("房产信息查询", ItemKind.ASYNC_RESULT),
    "survey_review": ("房屋产权面积测绘成果审核", ItemKind.APPLICATION),
    "presale_contract_verify": ("商品房预售合同备案核验", ItemKind.SYNC_QUERY),
    "presale_contract_cancel": ("注销商品房预售合同备案", ItemKind.APPLICATION),
    "maintenance_fund_community_query": ("查询维修资金小区", ItemKind.SYNC_QUERY),
    "filed_property_query": ("备案房源查询", ItemKind.SYNC_QUERY),
    "rental_filing": ("房屋租赁备案", ItemKind.APPLICATION),
    "presale_contract_filing": ("商品房预售合同备案", ItemKind.APPLICATION),
    "resale_contract_filing": ("存量房网签备案", ItemKind.APPLICATION),
    "presale_scope_query": ("预售房屋范围查询", ItemKind.SYNC_QUERY),
    "presale_permit_application": ("商品房预售许可申请", ItemKind.APPLICATION),
}
STATUS_ONLY = {
    "maintenance_fund_use_filing",
    "maintenance_fund_query",
    "maintenance_fund_account_rename",
    "maintenance_fund_deposit",
    "maintenance_fund_account_close",
}


def _required(code):
    return {f.name for f in get_item(code).fields if f.required}


def _optional(code):
    return {f.name for f in get_item(code).fields if not f.required}


def test_catalogue_has_the_contract_items_and_nothing_else():
    assert set(ITEMS) == set(PROVINCE_ITEMS) | STATUS_ONLY
    assert [i.code for i in province_items()] == list(PROVINCE_ITEMS)


@pytest.mark.parametrize(("code", "expected"), PROVINCE_ITEMS.items())
def test_province_item_names_and_kinds(code, expected):
    item = get_item(code)
    assert (item.name_zh, item.kind) == expected
    assert item.from_province


def test_status_only_items():
    for code in STATUS_ONLY:
        item = get_item(code)
        assert item.kind is ItemKind.STATUS_ONLY
        assert not item.from_province
        assert item.fields == ()
    assert get_item("maintenance_fund_deposit").name_zh.endswith("交存")


def test_sync_query_items():
    assert set(SYNC_QUERY_ITEMS) == {
        "presale_contract_verify",
        "maintenance_fund_community_query",
        "filed_property_query",
        "presale_scope_query",
    }


def test_unknown_item():
    with pytest.raises(UnknownItem):
        get_item("no_such_item")
    with pytest.raises(KeyError):
        get_item("materials")


def test_data_fields_per_contract():
    assert _required("property_info_query") == set()
    assert _required("maintenance_fund_community_query") == set()
    assert _required("survey_review") == {"enterprise_name", "project_name"}
    assert _required("presale_contract_verify") == {"contract_no", "buyer_name"}
    assert _required("presale_contract_cancel") == {"contract_no", "buyer_name"}
    assert _required("rental_filing") == {
        "lessee_name",
        "lessee_id_no",
        "lessor_name",
        "lessor_id_no",
        "house_id",
        "address",
    }
    assert _required("presale_scope_query") == {"developer_name", "developer_uscc", "project_name"}
    assert _required("presale_permit_application") == {
        "developer_name",
        "developer_uscc",
        "project_name",
        "presale_scope",
        "address",
        "house_ids",
    }
    assert get_item("presale_permit_application").field("house_ids").kind == "list_str"
    assert get_item("presale_scope_query").field("developer_uscc").kind == "uscc"


def test_filed_property_query_needs_cert_or_contract():
    item = get_item("filed_property_query")
    assert _required(item.code) == set()
    assert _optional(item.code) == {"cert_no", "contract_no"}
    assert set(item.one_of) == {"cert_no", "contract_no"}


@pytest.mark.parametrize("code", ["presale_contract_filing", "resale_contract_filing"])
def test_contract_filings(code):
    assert _required(code) == {
        "buyer_name",
        "buyer_id_no",
        "seller_name",
        "seller_id_no",
        "house_id",
        "address",
    }
    assert _optional(code) == {
        "co_owners",
        "co_ownership",
        "unit_code",
        "price",
        "fund_supervision",
        "supervision_bank",
    }
    item = get_item(code)
    assert item.field("price").kind == "decimal"
    assert item.field("fund_supervision").kind == "bool"
    assert item.field("unit_code").kind == "unit_code"
    assert item.field("co_owners").kind == "co_owners"
    assert item.field("co_ownership").choices == ("0", "1", "2", "3")
    assert item.field("buyer_id_no").kind == "id_no"


def test_stages():
    assert STAGES == {
        "validation_failed": "验证未通过",
        "received": "申请",
        "accepted": "受理",
        "approved": "审批",
        "completed": "办结",
        "rejected": "不予受理",
        "apply_and_accept": "申请并受理",
    }


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        (None, "accepted"),
        (None, "rejected"),
        (None, "apply_and_accept"),
        ("received", "accepted"),
        ("received", "rejected"),
        ("accepted", "approved"),
        ("accepted", "completed"),
        ("accepted", "rejected"),
        ("approved", "approved"),
        ("approved", "completed"),
        ("approved", "rejected"),
        ("apply_and_accept", "approved"),
        ("apply_and_accept", "completed"),
    ],
)
def test_stage_moves_forward(previous, new):
    assert can_follow(previous, new)


@pytest.mark.parametrize(
    ("previous", "new"),
    [
        (None, "approved"),
        (None, "completed"),
        ("received", "completed"),
        ("accepted", "accepted"),
        ("accepted", "received"),
        ("approved", "accepted"),
        ("completed", "approved"),
        ("completed", "completed"),
        ("rejected", "accepted"),
        ("rejected", "rejected"),
        ("apply_and_accept", "accepted"),
        ("validation_failed", "accepted"),
        ("accepted", "no_such_stage"),
        ("no_such_stage", "accepted"),
    ],
)
def test_stage_never_moves_back(previous, new):
    assert not can_follow(previous, new)
