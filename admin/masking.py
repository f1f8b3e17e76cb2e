"""Masking personal data for display: the one place every admin view sends stored
bodies, payloads, call-log requests and responses, alert details, case applicants,
fund details and free-text fields (errors, opinions, reasons) through.

It never fails open. A value under a key known to be personal (``*_name``, ``id_no``,
``phone``, …) keeps a little of each end; a value under a key known not to be personal
(codes, dates, statuses: ``_SHOWN``) is shown with ID and phone numbers in it masked;
any other string — an unexpected key, a list of lists, a dict key itself — is masked
strictly (Chinese characters, digit runs, ID and phone numbers). A body that cannot be
parsed (truncated, not JSON or XML, too deep, too big) shows nothing of itself.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

from flask import g

#: Keys (or key suffixes, after camelCase → snake_case) whose values are personal data.
_PERSONAL_SUFFIXES = ("name", "id_no", "idno", "id_card", "idcard", "cert_no", "phone",
                      "mobile", "tel", "tel_no", "phone_no", "mobile_no", "uscc", "account",
                      "acct", "acct_no", "card_no", "address", "addr", "email", "operator",
                      "payer_account_no", "payee_account_no")
#: Keys that end like the above but are not personal (items, files, projects).
_NOT_PERSONAL = {"file_name", "project_name", "item_name", "county_name", "branch_name",
                 "enterprise_name", "developer_name", "account_no_masked", "interface_name",
                 "bank_name", "city_name", "module_name", "function_name"}
#: Keys whose values are shown (after masking ID and phone numbers in them): codes,
#: numbers of cases and files, times, statuses.
_SHOWN = {
    "code", "status", "stage", "result", "item", "item_code", "apply_no", "case_no",
    "sub_case_no", "parent_case_no",
    "city_code", "county_code", "county_codes", "division", "division_code", "id_type",
    "submitted_at", "created_at", "updated_at", "accepted_at", "at", "time", "timestamp",
    "date", "type", "kind", "operation", "serial_no", "account_no", "bank_code", "house_id",
    "house_code", "project_id", "file_id", "file_name", "content_type", "size", "bytes",
    "truncated", "filing_no", "amount", "currency", "app_id", "nonce", "version", "count",
    "total", "page", "ok", "success", "mimetype", "length", "instruction_no", "event",
    "interface", "partner", "ref", "ref_id", "attempts", "mode", "adapter", "source",
    "book_date", "occurred_at", "direction", "unlinked", "item_name", "project_name",
    "county_name", "resubmitted_by", "resubmitted_at", "ms",
}
# Free text written by partners or operators (``msg``, ``error``, ``opinion``, ``reason``,
# a remark) is not on this list on purpose: it gets the strict masking.

#: How deep and how big a body may be to be masked (and shown) at all.
MAX_DEPTH = 40
MAX_NODES = 50_000
MAX_TEXT = 512 * 1024

HIDDEN = "（内容无法解析，为保护个人信息不予显示）"
TOO_DEEP = "（层级过深，已隐藏）"

_ID_RE = re.compile(r"(?<![0-9A-Za-z])(\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_PHONE_RE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)")
_DIGITS_RE = re.compile(r"\d{6,}")
_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f·]+")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


class _Unmaskable(Exception):
    """The value is too deep or too big to mask: nothing of it is shown."""


def snake(key: str) -> str:
    return _CAMEL_RE.sub("_", key).lower().replace("-", "_")


def is_personal(key: str) -> bool:
    key = snake(key)
    return key not in _NOT_PERSONAL and key.endswith(_PERSONAL_SUFFIXES)


def mask_text(value: str) -> str:
    """Keep a little of each end: 张三 → 张*, 11010519491231002X → 110***********002X."""
    n = len(value)
    if n <= 1:
        return "*"
    if n <= 3:
        return value[0] + "*" * (n - 1)
    if n <= 8:
        return value[0] + "*" * (n - 2) + value[-1]
    return value[:3] + "*" * (n - 7) + value[-4:]


def scrub(text: str) -> str:
    """Free text shown to anyone: ID and phone numbers in it masked."""
    text = _ID_RE.sub(lambda m: mask_text(m.group(0)), text)
    return _PHONE_RE.sub(lambda m: mask_text(m.group(0)), text)


def strict(text: str) -> str:
    """Text of unknown meaning: names (Chinese characters) and digit runs masked too."""
    text = _DIGITS_RE.sub(lambda m: "*" * len(m.group(0)), scrub(text))
    return _CJK_RE.sub(lambda m: "*" * len(m.group(0)), text)


def _key_shown(key: str) -> bool:
    return snake(key) in _SHOWN


def _string(value: str, key: str, nodes: list[int], depth: int) -> Any:
    stripped = value.lstrip()
    if stripped[:1] in ("{", "[", "<") and len(stripped) > 1:
        parsed = _parse(value)  # a body inside a body (e.g. a logged raw request)
        if parsed is _FAILED:
            return HIDDEN
        if isinstance(parsed, _Xml):
            return parsed.text
        return _mask(parsed, key, nodes, depth + 1)
    if key and is_personal(key):
        return mask_text(value)
    if key and _key_shown(key):
        return scrub(value)
    return strict(value)


def _mask(value: Any, key: str, nodes: list[int], depth: int) -> Any:
    nodes[0] += 1
    if nodes[0] > MAX_NODES:
        raise _Unmaskable
    if depth > MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            shown_key = name if _key_shown(name) or is_personal(name) else strict(name)
            while shown_key in out:
                shown_key += "*"
            out[shown_key] = _mask(v, name, nodes, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_mask(v, key, nodes, depth + 1) for v in value]
    if isinstance(value, str):
        return _string(value, key, nodes, depth)
    if isinstance(value, bool | date) or value is None:  # (datetime is a date)
        return value
    if isinstance(value, int | float):
        if key and is_personal(key):
            return mask_text(str(value))
        if isinstance(value, int) and abs(value) >= 10 ** 10:  # a phone or account number
            return strict(str(value))
        return value
    return strict(str(value))


def mask(value: Any, key: str = "") -> Any:
    """A copy of a JSON value with personal data masked (see the module docstring);
    ``HIDDEN`` if it is too big to mask."""
    try:
        return _mask(value, key, [0], 0)
    except (_Unmaskable, RecursionError):
        return HIDDEN


def mask_if(value: Any, reveal: bool) -> Any:
    return value if reveal else mask(value)


# --------------------------------------------------------------------------- bodies

_FAILED = object()


class _Xml:
    def __init__(self, text: str) -> None:
        self.text = text


def _parse(text: str) -> Any:
    """A body's text as a JSON value, or masked XML (``_Xml``); ``_FAILED`` if neither."""
    if len(text) > MAX_TEXT:
        return _FAILED
    if text.lstrip().startswith("<"):
        masked = _mask_xml(text)
        return _FAILED if masked is None else _Xml(masked)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _FAILED


def _mask_xml(text: str) -> str | None:
    """An XML body (a bank's SOAP envelope) with every text and attribute masked by its
    element's name as JSON values are by key; None if it does not parse safely."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(text.encode("utf-8"), parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None
    for count, el in enumerate(root.iter(), start=1):
        if count > MAX_NODES or len(list(el.iterancestors())) > MAX_DEPTH:
            return None
        if not isinstance(el.tag, str):
            return None  # an entity reference left unresolved
        name = etree.QName(el).localname
        if el.text and el.text.strip():
            el.text = _string_leaf(el.text, name)
        if el.tail and el.tail.strip():
            el.tail = strict(el.tail)
        for attr, val in list(el.attrib.items()):
            el.attrib[attr] = _string_leaf(val, etree.QName(attr).localname)
    return etree.tostring(root, encoding="unicode", pretty_print=True)


def _string_leaf(value: str, key: str) -> str:
    if is_personal(key):
        return mask_text(value)
    if _key_shown(key):
        return scrub(value)
    return strict(value)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def show_body(value: Any, reveal: bool) -> str:
    """A stored body (a JSON value, or text that may be JSON, XML, truncated, anything)
    as text for a ``<pre>``: masked unless ``reveal``; never the raw text when masked."""
    if value is None:
        return ""
    if reveal:
        try:
            if isinstance(value, str):
                return _dump(json.loads(value))
            return _dump(value)
        except (ValueError, RecursionError, TypeError):
            return value if isinstance(value, str) else repr(value)[:MAX_TEXT]
    if isinstance(value, str):
        parsed = _parse(value)
        if parsed is _FAILED:
            return HIDDEN
        if isinstance(parsed, _Xml):
            return parsed.text
        value = parsed
    masked = mask(value)
    if masked == HIDDEN:
        return HIDDEN
    try:
        return _dump(masked)
    except (ValueError, RecursionError, TypeError):
        return HIDDEN


def revealing() -> bool:
    """Whether this request shows personal data (a reveal view sets ``g.reveal`` after
    checking ``view_personal_data`` and writing the audit row)."""
    return bool(g.get("reveal", False))


def show_text(value: Any) -> str:
    """A free-text field (an error, an opinion, a reason: written by a partner or an
    operator, so it may name anyone) for the current request: strictly masked."""
    if value is None:
        return ""
    text = str(value)
    return text if revealing() else strict(text)


def show_title(value: Any) -> str:
    """A title the hub composed (an alert's): ID, phone and card numbers masked."""
    if value is None:
        return ""
    text = str(value)
    return text if revealing() else _DIGITS_RE.sub(lambda m: "*" * len(m.group(0)),
                                                   scrub(text))


def show_detail(value: Any) -> str:
    """A stored detail (JSON text, e.g. an alert's or an audit row's) for the current
    request, as compact text."""
    if value is None or value == "":
        return ""
    if revealing():
        return str(value)
    if isinstance(value, str) and value.lstrip()[:1] not in ("{", "[", "<"):
        return strict(value)  # free text (a dead message's error), not a body
    text = show_body(value, reveal=False)
    if text == HIDDEN:
        return text
    try:
        return json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text
