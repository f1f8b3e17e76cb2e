"""Pure validators for the identifiers and values the contracts carry.

Nothing here touches configuration or the division table: a resident ID is checked by its
GB 11643 check digit and birth date only, because people born in a county that has since
been renamed (达县 511721, now 达川区 511703) keep their ID for life.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

# GB 11643-1999 (ISO 7064 MOD 11-2): weight of position i is 2**(17-i) mod 11.
_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
_ID_BODY = re.compile(r"[0-9]{17}")

# GB 32100-2015: 31-character alphabet (no I, O, S, V, Z) and fixed weights.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}

_APPLY_NO = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NONCE = re.compile(r"[A-Za-z0-9]{16,64}")
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"[0-9](?:-?[0-9])+")
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

MAX_AMOUNT = Decimal("1e15")  # far above any housing price; refuses absurd magnitudes
_CENT = Decimal("0.01")


def resident_id_with_check(first17: str) -> str:
    """Return the 18-character resident ID made of ``first17`` and its check digit."""
    if not isinstance(first17, str) or not _ID_BODY.fullmatch(first17):
        raise ValueError("a resident ID body is 17 ASCII digits")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return first17 + _ID_CHECK[total % 11]


def resident_id_ok(s: object) -> bool:
    """GB 11643 resident ID: 17 digits, a check digit (``X`` uppercase), a real birth date."""
    if not isinstance(s, str) or len(s) != 18 or not _ID_BODY.fullmatch(s[:17]):
        return False
    if resident_id_with_check(s[:17]) != s:
        return False
    try:
        born = date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return born.year >= 1800


def resident_id_forms(id_no: str) -> set[str]:
    """The ways one resident ID is written: ``id_no`` itself, and for a valid 18-character
    ID of someone born in the 1900s its old 15-digit form (no century, no check digit),
    for a 15-digit one its 18-character form. The 失信被执行人 rule looks for both: a
    court may list the one form and an application carry the other."""
    forms = {id_no}
    if resident_id_ok(id_no) and id_no[6:8] == "19":
        forms.add(id_no[:6] + id_no[8:17])
    elif len(id_no) == 15 and id_no.isascii() and id_no.isdigit():
        upgraded = resident_id_with_check(id_no[:6] + "19" + id_no[6:])
        if resident_id_ok(upgraded):
            forms.add(upgraded)
    return forms


def id_text_problem(value: str) -> str | None:
    """Why an ID document number is not written as on the document, or None: a space, an
    invisible or control character, a full-width (全角) form. Each makes the same person
    another number to every lookup by it: the 失信被执行人 rule, the departments'
    queries (a listed 110105198001011238 was not found as ``1101051980\u00a001011238``,
    with a zero-width space, or in full-width digits)."""
    for ch in value:
        if ch.isspace():
            return "must hold no spaces"
        if unicodedata.category(ch)[0] == "C":
            return "must hold no invisible or control characters"
    if unicodedata.normalize("NFKC", value) != value:
        return "must be written in half-width characters (not 全角)"
    return None


def uscc_with_check(first17: str) -> str:
    """Return the 18-character USCC made of ``first17`` and its GB 32100 check character."""
    if (
        not isinstance(first17, str)
        or len(first17) != 17
        or any(c not in _USCC_VALUE for c in first17)
    ):
        raise ValueError(f"a USCC body is 17 characters of {USCC_ALPHABET}")
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return first17 + USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_ok(s: object) -> bool:
    """Unified social credit code (统一社会信用代码) with a correct check character."""
    if not isinstance(s, str) or len(s) != 18 or any(c not in _USCC_VALUE for c in s):
        return False
    return uscc_with_check(s[:17]) == s


def apply_no_ok(s: object) -> bool:
    """The province's 申请编号: 1–64 of ``[A-Za-z0-9_-]``."""
    return isinstance(s, str) and _APPLY_NO.fullmatch(s) is not None


def nonce_ok(s: object) -> bool:
    """A signing nonce: 16–64 of ``[A-Za-z0-9]``."""
    return isinstance(s, str) and _NONCE.fullmatch(s) is not None


def phone_ok(s: object) -> bool:
    """A mainland mobile (``1[3-9]`` + 9 digits) or a landline of 7–20 digits and hyphens.

    A number starting with ``1`` must be a valid mobile; landlines start with an area code
    (``0``) or a local digit 2–9, so ``12345678901`` is refused.
    """
    if not isinstance(s, str):
        return False
    if _MOBILE.fullmatch(s):
        return True
    return 7 <= len(s) <= 20 and not s.startswith("1") and _LANDLINE.fullmatch(s) is not None


def parse_amount(v: object) -> Decimal:
    """Parse a money amount or a percentage: non-negative, at most 2 decimal places.

    Accepts ``str``, ``int`` and ``Decimal``; a ``float`` is refused because it has already
    lost the exact value. Raises ``ValueError`` with the reason.
    """
    if isinstance(v, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(v, float):
        raise ValueError("a float is not accepted for an amount; send a string such as '12.50'")
    if isinstance(v, int):
        d = Decimal(v)
    elif isinstance(v, Decimal):
        d = v
    elif isinstance(v, str):
        s = v.strip()
        if not _PLAIN_DECIMAL.fullmatch(s):
            raise ValueError(f"{v!r} is not a plain decimal number")
        try:
            d = Decimal(s)
        except InvalidOperation:  # pragma: no cover - the regex already guards this
            raise ValueError(f"{v!r} is not a decimal number") from None
    else:
        raise ValueError(f"an amount must be a string or an integer, not {type(v).__name__}")
    if not d.is_finite():
        raise ValueError("an amount must be a finite number")
    if d.is_signed():
        raise ValueError("an amount must not be negative")
    if d >= MAX_AMOUNT:
        raise ValueError("the amount is too large")
    if d != d.quantize(_CENT):
        raise ValueError("an amount has at most 2 decimal places")
    return d


def parse_iso_datetime(s: object) -> datetime:
    """Parse an ISO 8601 date-time that carries its UTC offset; return an aware datetime."""
    if not isinstance(s, str) or "T" not in s.upper():
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-22T10:00:00+08:00")
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{s!r} is not an ISO 8601 date-time") from None
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("the date-time must carry a UTC offset, e.g. +08:00")
    try:  # the store keeps UTC: 9999-12-31T23:59:59-14:00 has no UTC a datetime can hold
        dt.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date-time is out of the range the hub can hold") from None
    return dt


#: C0 and C1 control characters (NUL among them, which no PostgreSQL text column can
#: hold) and lone surrogates (no UTF-8 can hold them); the second leaves line breaks and
#: tabs. Spaces of every kind (the ideographic 全角空格 too) are text.
_NOT_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_TEXT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def text_ok(value: str, lines: bool = False) -> bool:
    """No control character and no lone surrogate in ``value``; ``lines``: line breaks
    and tabs allowed (an opinion of several lines)."""
    return (_NOT_TEXT_LINES if lines else _NOT_TEXT).search(value) is None


def first_not_text(*sources: Iterable[tuple[str, Any]], lines: bool = False) -> str | None:
    """The name of the first (name, value) pair whose name or string value is not text
    (``text_ok``; ``lines``: values may hold line breaks and tabs, as a form's textarea
    does), else None: for a request's path, query-string and form parameters (a NUL no
    PostgreSQL text column holds, which a lookup fails on; a CR/LF in a URL). JSON
    bodies are checked field by field where they are read."""
    for pairs in sources:
        for name, value in pairs:
            if not text_ok(str(name)):
                return "?"
            if isinstance(value, str) and not text_ok(value, lines=lines):
                return str(name)
    return None
