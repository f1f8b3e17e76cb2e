"""The catalogue of business items (业务事项) and the stage codes of the contracts.

The province's items and their ``data`` fields come from ``contracts/province.md``; the
five maintenance-fund items only report status (``contracts/county.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

FieldKind = Literal["str", "id_no", "uscc", "decimal", "bool", "list_str", "co_owners", "unit_code"]

DEFAULT_STR_MAX = 200
ID_NO_MAX = 64


class ItemKind(StrEnum):
    SYNC_QUERY = "sync_query"
    ASYNC_RESULT = "async_result"
    APPLICATION = "application"
    STATUS_ONLY = "status_only"


class UnknownItem(KeyError):
    """An item code that is not in the catalogue."""


@dataclass(frozen=True)
class FieldSpec:
    """One field of an item's ``data``; ``choices`` restricts a code field to its table."""

    name: str
    kind: FieldKind
    required: bool = True
    max_len: int | None = None
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Item:
    """A business item. ``one_of`` names fields of which at least one must be given."""

    code: str
    name_zh: str
    kind: ItemKind
    from_province: bool
    fields: tuple[FieldSpec, ...] = ()
    one_of: tuple[str, ...] = ()

    def field(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)


def _req(*names: str, kind: FieldKind = "str") -> tuple[FieldSpec, ...]:
    max_len = ID_NO_MAX if kind == "id_no" else None
    return tuple(FieldSpec(n, kind, True, max_len) for n in names)


CO_OWNERSHIP = {"0": "单独所有", "1": "共同共有", "2": "按份共有", "3": "其他"}

_PARTIES = (
    FieldSpec("buyer_name", "str", True, None),
    FieldSpec("buyer_id_no", "id_no", True, ID_NO_MAX),
    FieldSpec("seller_name", "str", True, None),
    FieldSpec("seller_id_no", "id_no", True, ID_NO_MAX),
    FieldSpec("house_id", "str", True, None),
    FieldSpec("address", "str", True, None),
)
_CONTRACT_EXTRAS = (
    FieldSpec("co_owners", "co_owners", False, None),
    FieldSpec("co_ownership", "str", False, 1, tuple(CO_OWNERSHIP)),
    FieldSpec("unit_code", "unit_code", False, 28),
    FieldSpec("price", "decimal", False, None),
    FieldSpec("fund_supervision", "bool", False, None),
    FieldSpec("supervision_bank", "str", False, None),
)
_DEVELOPER = (
    FieldSpec("developer_name", "str", True, None),
    FieldSpec("developer_uscc", "uscc", True, 18),
    FieldSpec("project_name", "str", True, None),
)

_K = ItemKind
_CATALOGUE: tuple[Item, ...] = (
    Item("property_info_query", "房产信息查询", _K.ASYNC_RESULT, True),
    Item(
        "survey_review",
        "房屋产权面积测绘成果审核",
        _K.APPLICATION,
        True,
        _req("enterprise_name", "project_name"),
    ),
    Item(
        "presale_contract_verify",
        "商品房预售合同备案核验",
        _K.SYNC_QUERY,
        True,
        _req("contract_no", "buyer_name"),
    ),
    Item(
        "presale_contract_cancel",
        "注销商品房预售合同备案",
        _K.APPLICATION,
        True,
        _req("contract_no", "buyer_name"),
    ),
    Item("maintenance_fund_community_query", "查询维修资金小区", _K.SYNC_QUERY, True),
    Item(
        "filed_property_query",
        "备案房源查询",
        _K.SYNC_QUERY,
        True,
        (FieldSpec("cert_no", "str", False, None), FieldSpec("contract_no", "str", False, None)),
        one_of=("cert_no", "contract_no"),
    ),
    Item(
        "rental_filing",
        "房屋租赁备案",
        _K.APPLICATION,
        True,
        (
            FieldSpec("lessee_name", "str", True, None),
            FieldSpec("lessee_id_no", "id_no", True, ID_NO_MAX),
            FieldSpec("lessor_name", "str", True, None),
            FieldSpec("lessor_id_no", "id_no", True, ID_NO_MAX),
            FieldSpec("house_id", "str", True, None),
            FieldSpec("address", "str", True, None),
        ),
    ),
    Item(
        "presale_contract_filing",
        "商品房预售合同备案",
        _K.APPLICATION,
        True,
        _PARTIES + _CONTRACT_EXTRAS,
    ),
    Item(
        "resale_contract_filing",
        "存量房网签备案",
        _K.APPLICATION,
        True,
        _PARTIES + _CONTRACT_EXTRAS,
    ),
    Item("presale_scope_query", "预售房屋范围查询", _K.SYNC_QUERY, True, _DEVELOPER),
    Item(
        "presale_permit_application",
        "商品房预售许可申请",
        _K.APPLICATION,
        True,
        _DEVELOPER
        + (
            FieldSpec("presale_scope", "str", True, None),
            FieldSpec("address", "str", True, None),
            FieldSpec("house_ids", "list_str", True, ID_NO_MAX),
        ),
    ),
    Item("maintenance_fund_use_filing", "住宅专项维修资金使用备案", _K.STATUS_ONLY, False),
    Item("maintenance_fund_query", "住宅专项维修资金查询", _K.STATUS_ONLY, False),
    Item("maintenance_fund_account_rename", "住宅专项维修资金分户账更名", _K.STATUS_ONLY, False),
    Item("maintenance_fund_deposit", "住宅专项维修资金交存", _K.STATUS_ONLY, False),
    Item("maintenance_fund_account_close", "业主分户账注销审核", _K.STATUS_ONLY, False),
)

ITEMS: dict[str, Item] = {item.code: item for item in _CATALOGUE}

SYNC_QUERY_ITEMS: frozenset[str] = frozenset(
    code for code, item in ITEMS.items() if item.kind is ItemKind.SYNC_QUERY
)


def get_item(code: str) -> Item:
    try:
        return ITEMS[code]
    except (KeyError, TypeError):
        raise UnknownItem(code) from None


def province_items() -> tuple[Item, ...]:
    """The items the province may send, in the contract's order."""
    return tuple(item for item in ITEMS.values() if item.from_province)


# Stage codes of the contracts (status pushes, county callbacks, manual marks).
STAGES: dict[str, str] = {
    "validation_failed": "验证未通过",
    "received": "申请",
    "accepted": "受理",
    "approved": "审批",
    "completed": "办结",
    "rejected": "不予受理",
    "apply_and_accept": "申请并受理",
}

FINAL_STAGES = frozenset({"completed", "rejected", "validation_failed"})

_AFTER_DECISION = frozenset({"approved", "completed", "rejected"})
_NEXT: dict[str | None, frozenset[str]] = {
    # None also admits the stage that opens a case record (received / validation_failed).
    None: frozenset({"received", "validation_failed", "accepted", "rejected", "apply_and_accept"}),
    "received": frozenset({"accepted", "rejected", "apply_and_accept"}),
    "accepted": _AFTER_DECISION,
    "approved": _AFTER_DECISION,
    "apply_and_accept": _AFTER_DECISION,
}


def can_follow(previous: str | None, new: str) -> bool:
    """Whether stage ``new`` may be recorded after ``previous`` (stages move forward only).

    ``approved`` may follow ``approved``: whether a repeat is a duplicate event is for the
    caller to decide by comparing the events. Final stages admit nothing after them.
    """
    return new in _NEXT.get(previous, frozenset())
