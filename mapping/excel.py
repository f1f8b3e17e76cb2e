"""The manual-Excel workbook as a party format: its columns, labels and cell values.

One sheet per item (titled with the item's Chinese name), one header row, one row per
open case. The first columns describe the case for the operator; the last six are the
operator's to fill in (new stage, time, operator, opinion, filing number, result).
Everything that turns canonical values into cells and cells back into values is here,
so the adapter (``adapters.manual_excel``) only moves rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from mapping import json_limits
from mapping.items import ITEMS, STAGES, Item
from mapping.province_in import ID_TYPES

#: Times in the workbook are Beijing time (no daylight saving), as operators read them.
LOCAL_TZ = timezone(timedelta(hours=8), "CST")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

#: Stages an operator may enter: Chinese label → stage code (the list of the validation).
OPERATOR_STAGES: dict[str, str] = {
    "受理": "accepted", "审批": "approved", "办结": "completed", "不予受理": "rejected",
}


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: float
    operator: bool = False  # filled in by the operator


CASE_COLUMNS: tuple[Column, ...] = (
    Column("case_no", "案件编号", 24),
    Column("item", "事项代码", 22),
    Column("county", "区县", 14),
    Column("apply_no", "申请编号", 26),
    Column("applicant_name", "申请人", 14),
    Column("applicant_id_type", "证件种类", 12),
    Column("applicant_id_no", "证件号码", 22),
    Column("applicant_phone", "联系电话", 15),
    Column("received_at", "收件时间", 20),
    Column("stage", "当前环节", 10),
    Column("warnings", "风险提示", 30),
    Column("materials", "材料(JPG, 见压缩包)", 40),
)
OPERATOR_COLUMNS: tuple[Column, ...] = (
    Column("new_stage", "新环节", 10, True),
    Column("at", "办理时间", 20, True),
    Column("operator", "经办人", 12, True),
    Column("opinion", "意见", 30, True),
    Column("filing_no", "备案号", 20, True),
    Column("result", "结果", 30, True),
)

#: Chinese labels of the items' ``data`` fields (the code is used for any not listed).
FIELD_LABELS: dict[str, str] = {
    "enterprise_name": "测绘单位", "project_name": "项目名称", "contract_no": "合同编号",
    "buyer_name": "买受人", "buyer_id_no": "买受人证件号", "seller_name": "出卖人",
    "seller_id_no": "出卖人证件号", "cert_no": "不动产权证号", "lessee_name": "承租人",
    "lessee_id_no": "承租人证件号", "lessor_name": "出租人", "lessor_id_no": "出租人证件号",
    "house_id": "房屋编号", "address": "坐落", "co_owners": "共有人", "co_ownership": "共有方式",
    "unit_code": "不动产单元代码", "price": "成交价(元)", "fund_supervision": "资金监管",
    "supervision_bank": "监管银行", "developer_name": "开发企业",
    "developer_uscc": "统一社会信用代码",
    "presale_scope": "预售范围", "house_ids": "房屋编号清单",
}


def sheet_title(item: Item) -> str:
    """A sheet per item, titled with its Chinese name (Excel allows 31 characters)."""
    return item.name_zh[:31]


def item_of_sheet(title: str) -> Item | None:
    return next((i for i in ITEMS.values() if sheet_title(i) == title), None)


def columns_for(item: Item) -> tuple[Column, ...]:
    fields = tuple(Column(f"data.{f.name}", FIELD_LABELS.get(f.name, f.name), 18)
                   for f in item.fields)
    return CASE_COLUMNS + fields + OPERATOR_COLUMNS


def mask(value: str | None, keep_start: int = 6, keep_end: int = 4) -> str | None:
    """``110105********002X``: enough for an operator to match papers, not to copy an ID."""
    if not value:
        return value
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def local_time(at: datetime | str | None) -> str | None:
    """A stored (naive UTC) or ISO time as Beijing time text."""
    if at is None:
        return None
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(LOCAL_TZ).strftime(TIME_FORMAT)


def _co_owner(owner: dict[str, Any], show_personal_data: bool) -> str:
    id_no = str(owner.get("id_no") or "")
    share = f" {owner['share']}%" if owner.get("share") is not None else ""
    return f"{owner.get('name', '')} {id_no if show_personal_data else mask(id_no)}{share}"


def _field_cell(item: Item, name: str, value: Any, show_personal_data: bool) -> Any:
    spec = item.field(name)
    if value is None:
        return None
    if spec is not None and spec.kind == "id_no":
        return value if show_personal_data else mask(str(value))
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        if spec is not None and spec.kind == "co_owners":
            return "；".join(_co_owner(o, show_personal_data) for o in value if isinstance(o, dict))
        return "、".join(str(v) for v in value)
    if name == "co_ownership":
        from mapping.items import CO_OWNERSHIP

        return CO_OWNERSHIP.get(str(value), str(value))
    return str(value)


def warning_text(warning: dict[str, Any]) -> str:
    """A 查封 warning (``store.share.seizure_warnings``) as the clerk reads it."""
    return (f"房屋已被查封：{warning.get('court') or ''}，文书号 "
            f"{warning.get('document_no') or ''}（查封编号 {warning.get('seizure_no') or ''}）")


def case_row(item: Item, case_no: str, county: str, stage: str, payload: dict[str, Any],
             materials: list[str], show_personal_data: bool,
             warnings: list[dict[str, Any]] | None = None) -> list[Any]:
    """The cells of one open case, in ``columns_for(item)`` order (operator cells blank);
    ``warnings``: the house's active seizures, as a smart county's delivery carries them."""
    applicant = payload.get("applicant") or {}
    id_no = applicant.get("id_no")
    phone = applicant.get("phone")
    data = payload.get("data") or {}
    row: list[Any] = [
        case_no, item.code, county, payload.get("apply_no"), applicant.get("name"),
        ID_TYPES.get(str(applicant.get("id_type")), applicant.get("id_type")),
        id_no if show_personal_data else mask(id_no),
        phone if show_personal_data else mask(phone, 3, 4),
        local_time(payload.get("submitted_at")), STAGES.get(stage, stage),
        "；".join(warning_text(w) for w in warnings or ()) or None,
        "\n".join(materials) or None,
    ]
    row += [_field_cell(item, f.name, data.get(f.name), show_personal_data) for f in item.fields]
    row += [None] * len(OPERATOR_COLUMNS)
    return [fit_cell(v) for v in row]


#: Characters one Excel cell holds; openpyxl cuts a longer text there without a word.
CELL_MAX = 32_767
CUT_NOTE = "……（内容超过 Excel 单元格的 32767 字上限，以下从略；共 {n} 字，完整内容见案件详情）"


def fit_cell(value: Any) -> Any:
    """``value``, a text cut to fit one cell saying so (a list of 2,000 house ids joins to
    130,000 characters: the clerk must see that the cell is not the whole of it). Excel
    counts UTF-16 units (a 生僻字 of CJK Extension B is two); the cut falls after a
    separator (、；or a line break) where there is one, so no entry is left half."""
    if not isinstance(value, str) or _units(value) <= CELL_MAX:
        return value
    note = CUT_NOTE.format(n=len(value))
    room = CELL_MAX - _units(note)
    head = value[:room]
    while (excess := _units(head) - room) > 0:  # a character is one unit or two
        head = head[:len(head) - (excess + 1) // 2]
    last = max(head.rfind(sep) for sep in ("、", "；", "\n"))
    if last > 0:
        head = head[:last + 1]
    return head + note


def _units(text: str) -> int:
    """Length in UTF-16 code units, as Excel counts a cell's characters."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- reading back


class CellError(ValueError):
    """A cell an operator filled in cannot be read; the message says why."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def stage_of(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if text in OPERATOR_STAGES:
        return OPERATOR_STAGES[text]
    if text in OPERATOR_STAGES.values():
        return text
    raise CellError(f"新环节 填写的「{text[:20]}」不是可选的环节，请从下拉列表选择："
                    f"{'、'.join(OPERATOR_STAGES)}")


def time_of(value: Any) -> datetime | None:
    """办理时间: an Excel date-time or text; Beijing time unless it has an offset → naive UTC."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        at = value
    else:
        text = str(value).strip().replace("/", "-")
        try:
            at = datetime.fromisoformat(text)
        except ValueError:
            raise CellError(f"办理时间 填写的「{text[:30]}」不是时间，请按 2026-11-22 10:00:00 "
                            "的格式填写北京时间") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=LOCAL_TZ)
    try:
        return at.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # year 1 or 9999 moved across midnight by the offset
        raise CellError(f"办理时间 {at.isoformat()} 超出可处理的时间范围") from None


def result_of(value: Any) -> dict[str, Any] | None:
    """结果: a JSON object as text, or plain text kept as the result's summary."""
    text = _text(value)
    if text is None:
        return None
    if text.startswith("{"):
        try:
            parsed = json_limits.loads(text)
        except json_limits.JsonRejected as exc:
            raise CellError(f"结果 以 {{ 开头，但不是有效的 JSON 对象（{exc.reason}）") from None
        if isinstance(parsed, dict):
            return parsed
    return {"summaries": [text]}


#: The workbook column an operator fills in for each field of a stage report.
FIELD_COLUMNS: dict[str, str] = {
    "stage": "新环节", "at": "办理时间", "operator": "经办人", "opinion": "意见",
    "filing_no": "备案号", "result": "结果", "case_no": "案件编号",
}


def stage_label(code: str) -> str:
    return STAGES.get(code, code)


def explain(field_name: str, reason: str) -> str:
    """A field error of a stage report (``adapters.county_stages.check_stage``: English,
    for callers of the API) as the workbook's column label and what to do, in Chinese."""
    column = FIELD_COLUMNS.get(field_name, field_name)
    if reason.startswith("must be one of"):
        return f"{column}：请从下拉列表选择 {'、'.join(OPERATOR_STAGES)}"
    if reason.startswith("must be a string of at most"):
        limit = "".join(ch for ch in reason if ch.isdigit())
        return f"{column}：内容过长，最多 {limit} 个字符，请删减后重新导入"
    if reason.startswith("required on completed for a filing"):
        return f"{column}：新环节为「办结」的备案类事项必须填写备案号"
    if reason.startswith("required on completed for a query"):
        return f"{column}：新环节为「办结」的查询类事项必须填写结果"
    if reason.startswith("not a number of the register"):  # adapters/numbering.py
        return (f"{column}：不是省平台发给本区县的统一编号，请填写省平台赋予的"
                "预售许可证号或合同备案号")
    if reason.startswith("the number closes another case"):  # adapters/numbering.py
        return f"{column}：该统一编号已用于其他案件的办结，一个编号只能办结一个案件，请核对"
    if reason == "must be an object":
        return f"{column}：请填写结果文字，或以 {{ 开头的 JSON 对象"
    if reason.startswith("only a completed stage"):
        return f"{column}：只有新环节为「办结」时才填写结果，请清空或改为「办结」"
    if reason.startswith("must not be later than"):  # adapters.county_stages.ahead_of_clock
        return f"{column}：晚于当前时间，请填写实际办理的时间（北京时间，如 2026-11-23 09:00:00）"
    if reason.startswith("must not be earlier than the case began"):  # before_the_case
        began = reason.partition("(")[2].partition(" Beijing")[0]
        return f"{column}：早于本案申请时间（{began}），请填写实际办理的时间（北京时间）"
    if reason == "required":
        return f"{column}：必须填写，请勿删除导出的{column}"
    return f"{column}：{reason}"


def explain_outcome(reason: str) -> str:
    """Why a stage was not recorded (``store.cases``), in Chinese with what to do."""
    words = reason.split()
    if len(words) == 5 and words[0] == "stage" and words[2:4] == ["cannot", "follow"]:
        return (f"新环节「{stage_label(words[1])}」不能接在当前环节「{stage_label(words[4])}」"
                f"之后，请按 受理 → 审批 → 办结 的顺序填写（可重复案件编号另起一行）")
    if reason == "already recorded":
        return "该环节已记录过（重复导入），已跳过"
    return reason


def operator_values(header: dict[str, int], row: tuple[Any, ...]) -> dict[str, Any]:
    """The raw cells of the operator columns and the case number, by key."""
    def cell(key: str) -> Any:
        i = header.get(key)
        return row[i] if i is not None and i < len(row) else None

    return {key: cell(key) for key in ("case_no", "item", *(c.key for c in OPERATOR_COLUMNS))}


def header_map(cells: tuple[Any, ...]) -> dict[str, int]:
    """Column index of each known label in a header row."""
    by_label = {c.label: c.key for c in (*CASE_COLUMNS, *OPERATOR_COLUMNS)}
    return {by_label[str(v).strip()]: i for i, v in enumerate(cells)
            if v is not None and str(v).strip() in by_label}


text_of = _text
