"""Bounded JSON in, strict JSON out: the one parser for what any caller sends (province,
counties, a partner's answer, a workbook cell) and the one dumper for what the hub sends.

Python's ``json`` accepts more than JSON: ``NaN``, ``Infinity`` and ``-Infinity``, a
float literal such as ``1e309`` that becomes ``inf``, integers of any length (their
conversion is quadratic; past 4300 digits it raises), any nesting the C stack allows and
duplicate keys (the last one wins, so two parties may read one signed body differently),
and a ``\\ud800`` escape standing alone: a lone surrogate, a string that is not text (no
UTF-8 can hold it: sealing, the store and every answer would fail on it). ``loads``
refuses all of that with a ``JsonRejected`` the caller maps to its own code.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 20
#: Elements of one array, members of one object.
MAX_ITEMS = 10_000
#: Digits of an integer literal (int64 range, see MAX_INT).
MAX_INT_DIGITS = 19
MAX_INT = 2**63 - 1
#: Characters of a number literal with a fraction or exponent.
MAX_FLOAT_CHARS = 64
#: A ``\\uD800``-``\\uDFFF`` escape: only then can a parsed string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonRejected(ValueError):
    """The text is not JSON within the limits; ``reason`` says why (for the caller)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _constant(name: str) -> Any:
    raise JsonRejected(f"{name} is not a JSON number")


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise JsonRejected(f"an integer has more than {MAX_INT_DIGITS} digits")
    value = int(text)
    if abs(value) > MAX_INT:
        raise JsonRejected("an integer is out of range")
    return value


def _float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise JsonRejected(f"a number is longer than {MAX_FLOAT_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise JsonRejected(f"the number {text} is out of range")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_ITEMS:
        raise JsonRejected(f"an object has more than {MAX_ITEMS} members")
    value = dict(pairs)
    if len(value) != len(pairs):
        raise JsonRejected("an object repeats a key")
    return value


def _check_shape(doc: Any) -> None:
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise JsonRejected(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            if len(value) > MAX_ITEMS:
                raise JsonRejected(f"an array has more than {MAX_ITEMS} elements")
            children = value
        else:
            continue
        stack.extend((v, depth + 1) for v in children if isinstance(v, dict | list))


def _check_text(doc: Any) -> None:
    """Every key and string of ``doc`` is text UTF-8 can hold (no lone surrogate)."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise JsonRejected("a string holds a lone surrogate (a \\ud800-\\udfff "
                                   "escape without its pair): it is not text") from None


def loads(raw: bytes | str, max_bytes: int | None = None) -> Any:
    """``raw`` (UTF-8) as a JSON value within the limits, else ``JsonRejected``. A UTF-8
    BOM before it is accepted (some Windows stacks write one)."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise JsonRejected(f"larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        text = text.removeprefix("\ufeff")
        doc = json.loads(text, parse_constant=_constant, parse_int=_int, parse_float=_float,
                         object_pairs_hook=_object)
    except JsonRejected:
        raise
    except RecursionError:
        raise JsonRejected(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # also UnicodeDecodeError
        raise JsonRejected("not valid UTF-8 JSON") from None
    _check_shape(doc)
    if _SURROGATE_ESCAPE.search(text) or isinstance(raw, str):
        _check_text(doc)
    return doc


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON; ``ValueError`` for NaN or an infinity, which no
    receiver's JSON parser has to accept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode()
