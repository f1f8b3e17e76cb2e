"""What the fund SOAP endpoint accepts of other stacks' envelopes (contract bank.md,
"Interoperability"), as small pure functions over bytes and lxml elements.

- the HTTP charset is honoured when the XML names no encoding (no declaration, or one
  without ``encoding``) and has no BOM: the bytes are decoded here and parsed as UTF-8;
- header entries addressed to the hub with ``mustUnderstand="1"`` that it does not
  process are listed (the caller answers the ``MustUnderstand`` fault);
- ``xsi:type`` naming a built-in XML Schema (or SOAP encoding) type, as Axis 1 sends,
  is dropped so the field is checked against its own declared type;
- a schema error is named by the contract's field name, not lxml's ``{ns}name``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable
from typing import Any

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NEXT_ACTOR = "http://schemas.xmlsoap.org/soap/actor/next"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
#: xsi:type namespaces whose types are the schema's own built-ins (1999 for old Axis).
BUILTIN_TYPES = frozenset({"http://www.w3.org/2001/XMLSchema", "http://www.w3.org/1999/XMLSchema",
                           "http://schemas.xmlsoap.org/soap/encoding/"})
#: Charsets read as a superset that decodes the same bytes the same way.
_SUPERSET = {"gb2312": "gbk"}
#: Names Java's and IANA's tables give the Chinese charsets that Python's codecs do not
#: know (a bank's Java stack may send them).
_ALIASES = {"x-gbk": "gbk", "windows-936": "gbk", "x-mswin-936": "gbk",
            "gb_2312-80": "gb2312", "csgb2312": "gb2312", "x-euc-cn": "gb2312",
            "x-windows-950": "cp950"}
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_DECL_ENCODING = re.compile(rb"\A\s*<\?xml\b[^>]*?\bencoding\s*=", re.IGNORECASE)
_ELEMENT = re.compile(r"\AElement '(?:\{[^}]*\})?([^']+)'(?:, attribute '[^']*')?: (.*)\Z", re.S)
_EXPECTED = re.compile(r"Expected is (?:one of )?\( (?:\{[^}]*\})?([\w.-]+)")
_NAMESPACE = re.compile(r"\{[^}]*\}")


class CharsetError(ValueError):
    pass


_CHARSET_NAME = re.compile(r"[A-Za-z0-9._:+-]{1,40}")
#: Python's text codecs that are no character set a SOAP stack could mean (their
#: ``codecs.lookup`` names).
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna",
                           "undefined"})


def transcode(raw: bytes, charset: str | None) -> bytes:
    """``raw`` as UTF-8 when the HTTP charset must decide its encoding, else unchanged."""
    if not charset or raw.startswith(_BOMS) or _DECL_ENCODING.match(raw):
        return raw
    name = charset.strip().strip("\"'").strip()
    name = _ALIASES.get(name.lower(), name)
    try:  # a charset is a short name (RFC 2978): anything else (a NUL, ...) is unknown
        info = codecs.lookup(name) if _CHARSET_NAME.fullmatch(name) else None
    except (LookupError, ValueError):
        info = None
    # codecs also knows bytes-to-bytes and str-to-str transforms (rot13, hex, base64,
    # zlib...) and Python's own text codecs: names that are no character set, refused
    # like unknown ones
    if (info is None or not getattr(info, "_is_text_encoding", True)
            or info.name in _NOT_CHARSETS):
        raise CharsetError(f"不支持的字符集 {charset[:40]!r}")
    name = info.name
    if name in ("utf-8", "ascii"):
        return raw
    try:
        return raw.decode(_SUPERSET.get(name, name)).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise CharsetError(f"请求内容不是有效的 {charset[:40]} 编码"
                           f"（第 {exc.start} 字节）") from None
    except (UnicodeError, LookupError):  # a codec that fails otherwise (punycode, idna)
        raise CharsetError(f"请求内容不是有效的 {charset[:40]} 编码") from None


def header_entries(root: Any) -> list[Any]:
    """The header entries addressed to the hub (no actor, or the ``next`` actor)."""
    header = root.find(f"{{{SOAP_ENV}}}Header")
    if header is None:
        return []
    return [el for el in header if isinstance(el.tag, str)
            and el.get(f"{{{SOAP_ENV}}}actor") in (None, "", NEXT_ACTOR)]


def must_understand(entry: Any) -> bool:
    """SOAP 1.1 says "0" or "1"; anything but an explicit no is taken as yes."""
    value = entry.get(f"{{{SOAP_ENV}}}mustUnderstand")
    return value is not None and value.strip() not in ("0", "false")


def not_understood(entries: Iterable[Any], processed: set[Any]) -> list[str]:
    """Clark names of the mandatory entries the hub does not process."""
    return [el.tag for el in entries if must_understand(el) and id(el) not in processed]


def drop_builtin_xsi_types(element: Any) -> None:
    """Drop ``xsi:type="xsd:string"`` and the like below ``element`` (in place)."""
    for el in element.iter():
        value = el.get(XSI_TYPE) if isinstance(el.tag, str) else None
        if value is None:
            continue
        prefix, _, _local = value.strip().rpartition(":")
        if el.nsmap.get(prefix or None) in BUILTIN_TYPES:
            del el.attrib[XSI_TYPE]


def field_error(error: Any, fields: Iterable[str] = ()) -> tuple[str, str]:
    """(field, reason) of one lxml schema error, both without namespaces.

    A missing field is reported on its parent ("Missing child", or a later field "not
    expected"): the field named is then the one expected, unless the element found is
    no field of the operation at all (then that stranger is the invalid one).
    """
    message = str(getattr(error, "message", error)).strip()
    match = _ELEMENT.match(message)
    field, reason = match.groups() if match else ("", message)
    expected = _EXPECTED.search(reason)
    if expected and ("Missing child" in reason
                     or ("not expected" in reason and field in set(fields))):
        field = expected.group(1)
    return field, _NAMESPACE.sub("", reason).strip()


def first_field_error(log: Any, fields: Iterable[str] = ()) -> str:
    """The 2002 message for a failed validation: the first invalid field, by name."""
    first = next(iter(log), None)
    if first is None:
        return "字段无效"
    field, reason = field_error(first, fields)
    return f"字段 {field} 无效：{reason}" if field else f"字段无效：{reason}"
