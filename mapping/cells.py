"""Spreadsheet cells the hub writes are data, never formulas (formula/CSV injection).

A partner's text (a name, an address) that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return would run as a formula in Excel. Every writer goes through here:
``xlsx_cell`` for workbooks (a string cell, ``t="inlineStr"`` with no ``<f>``, marked
quotePrefix so Excel keeps it text even when an operator edits it; the value is kept as
it is, so an import reads back what was exported) and ``csv_value`` for CSV (which has
no types: such text gets a leading ``'``).
"""

from __future__ import annotations

import re
from typing import Any

from openpyxl.cell import WriteOnlyCell

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Characters a worksheet cannot hold (openpyxl refuses them): shown as U+FFFD.
_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")


def starts_like_formula(text: str) -> bool:
    return text.startswith(FORMULA_START)


def xlsx_cell(ws: Any, value: Any, **style: Any) -> Any:
    """``value`` for ``ws.append`` (a write-only or a normal sheet): text as a string
    cell; numbers, dates, booleans and None as they are (a cell when ``style`` is given:
    ``font``, ``fill``, ``alignment``)."""
    if not isinstance(value, str) and not style:
        return value
    cell = WriteOnlyCell(ws, value=None if isinstance(value, str) else value)
    if isinstance(value, str):
        cell.value = _ILLEGAL.sub("\ufffd", value)
        cell.data_type = "s"  # never "f" (a leading =) nor "e" (#N/A)
        if starts_like_formula(value):
            cell.quotePrefix = True
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell


def xlsx_row(ws: Any, values: list[Any]) -> list[Any]:
    return [xlsx_cell(ws, v) for v in values]


def csv_value(value: Any) -> Any:
    """``value`` for a CSV row: text that would start a formula gets a leading ``'``."""
    if isinstance(value, str) and starts_like_formula(value):
        return "'" + value
    return value


def csv_row(values: list[Any]) -> list[Any]:
    return [csv_value(v) for v in values]
