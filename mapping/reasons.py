"""A field error of the province API (``mapping.province_in``: English, for callers of the
API) as an applicant reads it on the 一网通办 form: Chinese, saying what to do. A reason
not listed here reads 「填写有误，请核对」, never English."""

from __future__ import annotations

import re
from collections.abc import Callable

#: (pattern of the English reason, the Chinese; ``{n}`` is the pattern's first group).
_READINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), chinese) for pattern, chinese in (
        (r"required$", "必须填写"),
        (r"required when co_ownership is 2", "按份共有时必须填写"),
        (r"one of .* is required$", "请至少填写其中一项"),
        (r"must be a string$", "请填写文字"),
        (r"longer than (\d+) characters$", "内容过长，最多 {n} 个字"),
        (r"holds a control character", "含有无法识别的控制字符，请删除后重新填写"),
        (r"must hold no spaces$", "不能含有空格，请按证件上的号码填写"),
        (r"must hold no invisible or control characters$",
         "含有看不见的字符，请删除后按证件上的号码重新输入"),
        (r"must be written in half-width characters", "请用半角（英文输入法）数字和字母填写"),
        (r"the check character X must be uppercase$", "末位校验码 X 请用大写"),
        (r"not a valid resident ID", "不是有效的居民身份证号码，请核对位数、出生日期和末位校验码"),
        (r"not a valid unified social credit code", "不是有效的统一社会信用代码，请核对"),
        (r"not a mobile or landline number$", "不是有效的手机或固定电话号码"),
        (r"must be true or false$", "请选择是或否"),
        (r"must be one of ", "请从选项中选择"),
        (r"must be a non-empty list", "请至少填写一项"),
        (r"more than (\d+) (?:entries|materials|co-owners)", "最多 {n} 项"),
        (r".* is repeated$", "有重复的项，请删除重复"),
        (r"must be 28 characters of digits and capital letters$",
         "不动产单元代码应为 28 位数字或大写字母"),
        (r"starts with \w+, not the county", "不动产单元代码的前六位应为所选区县的代码"),
        (r"a float is not accepted for an amount|.* is not a (?:plain )?decimal number"
         r"|an amount must be", "请填写金额（元），如 880000.00"),
        (r"an amount must not be negative$", "金额不能为负数"),
        (r"the amount is too large$", "金额过大，请核对"),
        (r"an amount has at most 2 decimal places$", "金额最多两位小数"),
        (r"a share is a percentage", "份额为大于 0、不超过 100 的百分比"),
        (r"shares sum to", "各共有人份额之和应为 100"),
    ))

#: What a reason this table does not know reads.
UNKNOWN = "填写有误，请核对"


def in_chinese(reason: str) -> str:
    """``reason`` (a ``FieldError.reason``) as the applicant reads it."""
    for pattern, chinese in _READINGS:
        found = pattern.match(reason)
        if found:
            return chinese.format(n=found.group(1) if found.groups() else "")
    return UNKNOWN


def failure_opinion(opinion: str, label: Callable[[str], str]) -> str:
    """A failed validation's opinion as the intake stores it (``field: reason; ...``,
    the API's English, pushed so to the province) as a clerk reads it: each field by
    ``label`` (its Chinese name) and its reason in Chinese; a reason not known here
    keeps its English after 「填写有误」 so the clerk can quote it to the province."""
    parts = []
    for part in opinion.split("; "):
        field, sep, reason = part.partition(": ")
        if not sep:
            parts.append(part)
            continue
        chinese = in_chinese(reason)
        if chinese == UNKNOWN:
            chinese = f"{UNKNOWN}（{reason}）"
        parts.append(f"{label(field.removeprefix('data.'))}：{chinese}")
    return "；".join(parts)
