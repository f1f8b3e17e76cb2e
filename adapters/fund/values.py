"""Values that pass the XML Schema but that Python cannot hold, caught before spyne
converts them (so they answer 2002, never 5000).

XML Schema allows ``24:00:00``, years beyond 9999 or before 0001, an offset that moves
year 0001 or 9999 out of range, and any number of fractional seconds; spyne would
raise on them. The date, date-time and decimal fields of every operation are found
from the service's own types, checked with ``mapping.fund`` and their surrounding
whitespace (which the schema collapses but spyne does not) is removed in the tree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree
from spyne.model.primitive import Date, DateTime
from spyne.model.primitive import Decimal as SoapDecimal

from adapters.fund.service import FundService
from mapping.fund import FieldError, xml_date, xml_datetime

Check = Callable[[str, str], Any]


def _checks() -> dict[str, dict[str, Check | None]]:
    """operation → {field element name → its check (None: only strip whitespace)}."""
    out: dict[str, dict[str, Check | None]] = {}
    for name, method in FundService.public_methods.items():
        fields: dict[str, Check | None] = {}
        for field, cls in method.in_message._type_info.items():
            if issubclass(cls, Date):  # before DateTime: spyne's Date is a DateTime
                fields[field] = xml_date
            elif issubclass(cls, DateTime):
                fields[field] = xml_datetime
            elif issubclass(cls, SoapDecimal):
                fields[field] = None
        out[name] = fields
    return out


CHECKS = _checks()


def check_values(operation: str, element: Any) -> FieldError | None:
    """The first unholdable value of the (schema-valid) operation ``element``, or None."""
    fields = CHECKS.get(operation, {})
    for child in element:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.localname not in fields:  # namespace: the schema has checked it
            continue
        text = child.text or ""
        stripped = text.strip()
        if stripped != text:
            child.text = stripped
        check = fields[qname.localname]
        if check is None or not stripped:
            continue
        try:
            check(stripped, qname.localname)
        except FieldError as exc:
            return exc
    return None
