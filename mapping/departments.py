"""The departments of the data-sharing gateway (contracts/departments.md), at the edge:
their kinds and scopes from the config, what a query or push may carry (pure validation
collecting every field error), and the answer cut to a department's scope.

A department is a partner whose config names its ``department`` kind; its ``scope``
defaults to the contract's table for that kind and may be narrowed in the config::

    partners:
      bank_icbc: {department: bank, rate_per_minute: 120}
      tax: {department: tax, base_url: http://tax.example/receiver}
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from mapping.validators import text_ok

KINDS = ("bank", "fund", "tax", "police", "court")
QUERIES = ("contracts", "housing_count", "seizures")
PUSHES = {"mortgages": ("bank", "fund"), "defaulters": ("court",), "seizures": ("court",)}
FILING_KINDS = {"presale_contract_filing": "presale", "resale_contract_filing": "resale",
                "rental_filing": "rental"}
CANCEL_ITEM = "presale_contract_cancel"
ROLES = ("buyer", "seller", "lessee", "lessor")

#: The contract's scope table: contract kinds, price, housing_count, seizures.
DEFAULT_SCOPES: dict[str, dict[str, Any]] = {
    "bank": {"kinds": ["presale", "resale"], "price": True, "housing_count": True,
             "seizures": True},
    "fund": {"kinds": ["presale", "resale", "rental"], "price": True, "housing_count": True,
             "seizures": False},
    "tax": {"kinds": ["presale", "resale"], "price": True, "housing_count": False,
            "seizures": False},
    "police": {"kinds": ["presale", "resale", "rental"], "price": False,
               "housing_count": False, "seizures": False},
    "court": {"kinds": ["presale", "resale", "rental"], "price": True, "housing_count": True,
              "seizures": True},
}
DEFAULT_RATE = 60
MAX_OPERATOR = 64
MAX_PURPOSE = 200
MAX_ID = 64
MAX_TEXT = 200
MAX_ENTRIES = 500
_OPERATOR = re.compile(r"[\x21-\x7e]{1,64}")
_PLAIN = re.compile(r"[\x21-\x7e]+")


class DepartmentConfigError(ValueError):
    """A department's settings are wrong; the message is ``key: why``."""


@dataclass(frozen=True)
class Scope:
    kinds: frozenset[str]
    price: bool
    housing_count: bool
    seizures: bool

    def allows(self, query: str) -> bool:
        if query == "contracts":
            return bool(self.kinds)
        return bool(getattr(self, query, False))


@dataclass(frozen=True)
class Department:
    app_id: str
    kind: str
    scope: Scope
    rate_per_minute: int

    def may_push(self, push: str) -> bool:
        return self.kind in PUSHES.get(push, ())


def department_of(app_id: str, options: dict[str, Any]) -> Department | None:
    """The department a partner's options describe (None: not a department)."""
    kind = options.get("department")
    if kind is None:
        return None
    key = f"partners.{app_id}"
    if kind not in KINDS:
        raise DepartmentConfigError(f"{key}.department: one of {', '.join(KINDS)} "
                                    f"(got {kind!r})")
    if kind == "bank" and not re.fullmatch(r"bank_[a-z0-9]+", app_id):
        raise DepartmentConfigError(f"{key}: a bank's app id is bank_<bank code in lower "
                                    "case> (departments.md)")
    raw = options.get("scope") or {}
    if not isinstance(raw, dict):
        raise DepartmentConfigError(f"{key}.scope: must be a mapping")
    base = DEFAULT_SCOPES[kind]
    unknown = set(raw) - set(base)
    if unknown:
        raise DepartmentConfigError(f"{key}.scope.{sorted(unknown)[0]}: unknown setting")
    merged = {**base, **raw}
    kinds = merged["kinds"]
    if not isinstance(kinds, list) or any(k not in base["kinds"] for k in kinds):
        raise DepartmentConfigError(f"{key}.scope.kinds: a list within "
                                    f"{', '.join(base['kinds'])} (a {kind}'s scope)")
    for flag in ("price", "housing_count", "seizures"):
        if not isinstance(merged[flag], bool) or (merged[flag] and not base[flag]):
            raise DepartmentConfigError(f"{key}.scope.{flag}: true or false, and never "
                                        f"wider than the contract gives a {kind}")
    rate = options.get("rate_per_minute", DEFAULT_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= 100_000:
        raise DepartmentConfigError(f"{key}.rate_per_minute: a whole number 1-100000 "
                                    f"(got {rate!r})")
    return Department(app_id, kind, Scope(frozenset(kinds), merged["price"],
                                          merged["housing_count"], merged["seizures"]), rate)


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Asker:
    operator: str
    purpose: str


def asker(headers: Any) -> tuple[Asker | None, list[dict[str, str]]]:
    """``X-Operator-Id`` (ASCII) and ``X-Purpose`` (percent-encoded UTF-8, 1-200 once
    decoded); field errors for 2002 otherwise."""
    errors: list[dict[str, str]] = []
    operator = headers.get("X-Operator-Id")
    if not operator or not _OPERATOR.fullmatch(operator):
        errors.append({"field": "X-Operator-Id",
                       "reason": f"required: 1-{MAX_OPERATOR} printable ASCII characters"})
    raw = headers.get("X-Purpose")
    purpose = None
    if raw and raw.isascii() and len(raw) <= MAX_PURPOSE * 12:
        try:
            purpose = unquote(raw, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            purpose = None
    if purpose is not None and (not 1 <= len(purpose) <= MAX_PURPOSE or not purpose.strip()
                                or not text_ok(purpose) or _invisible(purpose)):
        purpose = None
    if purpose is None:
        errors.append({"field": "X-Purpose", "reason": "required: UTF-8 percent-encoded "
                       f"(RFC 3986), 1-{MAX_PURPOSE} characters once decoded"})
    if errors:
        return None, errors
    return Asker(operator, purpose), []  # type: ignore[arg-type]


def _invisible(text: str) -> bool:
    """``text`` holds a format character (a zero-width space, a right-to-left override):
    the audit's 事由 would read blank, or otherwise than it was sent."""
    return any(unicodedata.category(ch) == "Cf" for ch in text)


def norm_id(value: str) -> str:
    """An ID number as the shared record keys it (blind index of this)."""
    return value.strip().upper()


class Fields:
    """Collects every field error of one body (``mapping.province_in``'s way)."""

    def __init__(self, doc: dict[str, Any], prefix: str = "") -> None:
        self.doc, self.prefix = doc, prefix
        self.errors: list[dict[str, str]] = []

    def fail(self, name: str, reason: str) -> None:
        self.errors.append({"field": f"{self.prefix}{name}", "reason": reason})

    def text(self, name: str, limit: int = MAX_TEXT, required: bool = True,
             plain: bool = False) -> str | None:
        value = self.doc.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip() or len(value) > limit \
                or not text_ok(value) or (plain and not _PLAIN.fullmatch(value)):
            kind = "printable ASCII" if plain else "text"
            self.fail(name, f"{'required: ' if required else ''}{kind} of 1-{limit} characters")
            return None
        return value.strip()

    def unknown(self, allowed: tuple[str, ...]) -> None:
        """Every field not in ``allowed`` is an error: a misspelt ``removed_at`` left
        unread would keep a person listed while the court believes them removed."""
        for name in sorted(set(self.doc) - set(allowed))[:5]:
            self.fail(name, "unknown field")

    def in_order(self, earlier: str, later: str, values: dict[str, Any]) -> None:
        """``values[later]`` (when given) is not before ``values[earlier]``."""
        first, then = values.get(earlier), values.get(later)
        if first is not None and then is not None and _instant(then) < _instant(first):
            self.fail(later, f"must not be before {earlier}")

    def moment(self, name: str, required: bool = True) -> str | None:
        from mapping.validators import parse_iso_datetime

        value = self.doc.get(name)
        if value is None and not required:
            return None
        try:
            if not isinstance(value, str) or len(value) > 40:
                raise ValueError
            parse_iso_datetime(value) if "T" in value else _date(value)
        except (ValueError, TypeError):
            self.fail(name, "an ISO 8601 date or date-time")
            return None
        return value

    def amount(self, name: str) -> str | None:
        from mapping.validators import parse_amount

        value = self.doc.get(name)
        try:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError
            parsed = parse_amount(value)
        except (ValueError, ArithmeticError):
            self.fail(name, "an amount in yuan, at most two decimals")
            return None
        return str(parsed)


def _instant(value: str) -> datetime:
    """A ``moment`` as an instant: a date is its Beijing midnight."""
    from mapping.validators import parse_iso_datetime

    if "T" in value:
        return parse_iso_datetime(value)
    return datetime.fromisoformat(value).replace(tzinfo=timezone(timedelta(hours=8)))


def _date(value: str) -> None:
    from datetime import date

    date.fromisoformat(value)
    if len(value) != 10:
        raise ValueError


def query_body(query: str, doc: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """What a query asks: ``{"id_no"}`` or ``{"house_id"}`` as the contract allows."""
    f = Fields(doc)
    allowed = {"contracts": ("id_no", "house_id"), "housing_count": ("id_no",),
               "seizures": ("house_id",)}[query]
    extra = sorted(set(doc) - set(allowed))
    for name in extra[:5]:
        f.fail(name, "unknown field")
    given = [k for k in allowed if k in doc]
    if len(given) != 1:
        f.fail(" or ".join(allowed), f"exactly one of {', '.join(allowed)} is required")
        return {}, f.errors
    name = given[0]
    value = f.text(name, MAX_ID if name == "id_no" else MAX_TEXT, plain=name == "id_no")
    if value is None or f.errors:
        return {}, f.errors
    return {name: norm_id(value) if name == "id_no" else value}, []


def mortgage_body(doc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    f = Fields(doc)
    f.unknown(("mortgage_no", "house_id", "filing_no", "mortgagor", "mortgagee", "amount",
               "signed_at"))
    out: dict[str, Any] = {
        "mortgage_no": f.text("mortgage_no", 64, plain=True),
        "house_id": f.text("house_id"),
        "filing_no": f.text("filing_no", 64, required=False, plain=True),
        "mortgagee": f.text("mortgagee"),
        "amount": f.amount("amount"),
        "signed_at": f.moment("signed_at"),
    }
    who = doc.get("mortgagor")
    if not isinstance(who, dict):
        f.fail("mortgagor", "required: {name, id_no}")
    else:
        g = Fields(who, "mortgagor.")
        g.unknown(("name", "id_no"))
        name, id_no = g.text("name"), g.text("id_no", MAX_ID, plain=True)
        f.errors += g.errors
        out["mortgagor"] = {"name": name, "id_no": norm_id(id_no) if id_no else None}
    return out, f.errors


def defaulter_entries(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    entries = doc.get("entries")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
        return [], [{"field": "entries", "reason": f"required: a list of 1-{MAX_ENTRIES}"}]
    out: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            errors.append({"field": f"entries[{i}]", "reason": "must be an object"})
            continue
        f = Fields(entry, f"entries[{i}].")
        f.unknown(("id_no", "name", "case_no", "court", "listed_at", "removed_at"))
        id_no = f.text("id_no", MAX_ID, plain=True)
        out.append({"id_no": norm_id(id_no) if id_no else None, "name": f.text("name"),
                    "case_no": f.text("case_no", 64), "court": f.text("court"),
                    "listed_at": f.moment("listed_at"),
                    "removed_at": f.moment("removed_at", required=False)})
        f.in_order("listed_at", "removed_at", out[-1])
        errors += f.errors
    return out, errors


def seizure_body(doc: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    f = Fields(doc)
    f.unknown(("seizure_no", "house_id", "court", "document_no", "from", "to", "released_at"))
    out = {"seizure_no": f.text("seizure_no", 64), "house_id": f.text("house_id"),
           "court": f.text("court"), "document_no": f.text("document_no", 100),
           "from": f.moment("from"), "to": f.moment("to", required=False),
           "released_at": f.moment("released_at", required=False)}
    f.in_order("from", "to", out)
    f.in_order("from", "released_at", out)
    return out, f.errors


# --------------------------------------------------------------------------- answers


def contract_view(record: dict[str, Any], scope: Scope) -> dict[str, Any] | None:
    """A shared filing as a department sees it (None: its kind is outside the scope);
    a field outside the scope is left out, not nulled."""
    if record["kind"] not in scope.kinds:
        return None
    view = {k: v for k, v in record.items() if k != "price"}
    if not scope.price and view.get("mortgages"):  # a mortgage's amount is a price too
        view["mortgages"] = [{k: v for k, v in m.items() if k != "amount"}
                             for m in view["mortgages"]]
    if scope.price:
        view = {**view, "price": record.get("price")}
        order = ("filing_no", "kind", "house_id", "address", "parties", "price", "filed_at",
                 "county_code", "status", "mortgages")
        view = {k: view[k] for k in order if k in view}
    return view
