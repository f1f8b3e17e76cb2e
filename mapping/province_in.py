"""Validation of the province's inbound envelope (``POST /api/province/v1/{item}``).

All field errors are collected, each under a dotted path (``applicant.id_no``,
``data.co_owners[1].share``, ``county_codes[0]``), so the province learns everything wrong
with a request in one answer. The response code follows the most specific problem:
2003 (not this city) before 2004 (not a county of this city, or one the city retired:
``City.in_service``) before 2002 (any other field).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from mapping.canonical import Applicant, CanonicalCase, FieldError, Material
from mapping.divisions import City
from mapping.items import DEFAULT_STR_MAX, ID_NO_MAX, FieldSpec, Item
from mapping.validators import (
    apply_no_ok,
    id_text_problem,
    parse_amount,
    parse_iso_datetime,
    phone_ok,
    resident_id_ok,
    text_ok,
    uscc_ok,
)

FIELD_INVALID = "2002"
NOT_THIS_CITY = "2003"
NOT_A_COUNTY = "2004"

# 证件种类 (province.md)
ID_TYPES: dict[str, str] = {
    "1": "身份证",
    "2": "港澳台通行证",
    "3": "护照",
    "4": "户口簿",
    "5": "军官证/士兵证",
    "6": "组织机构代码",
    "7": "营业执照",
    "99": "其他",
}

MAX_COUNTIES = 50
MAX_MATERIALS = 50
MAX_CO_OWNERS = 50
MAX_LIST_ITEMS = 2000
HUNDRED = Decimal(100)

_RESIDENT_SHAPE = re.compile(r"[0-9]{17}[0-9Xx]")
_UNIT_CODE = re.compile(r"[0-9A-Z]{28}")


class ValidationFailure(Exception):
    """The request is refused; ``code`` is 2002, 2003 or 2004 and ``errors`` lists each field."""

    def __init__(self, code: str, message: str, errors: list[FieldError]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.errors = errors


class _Errors:
    def __init__(self) -> None:
        self.items: list[tuple[str, FieldError]] = []

    def add(self, path: str, reason: str, code: str = FIELD_INVALID) -> None:
        self.items.append((code, FieldError(path, reason)))

    def failure(self) -> ValidationFailure | None:
        if not self.items:
            return None
        codes = {code for code, _ in self.items}
        errors = [e for _, e in self.items]
        if NOT_THIS_CITY in codes:
            return ValidationFailure(NOT_THIS_CITY, "city_code is not this hub's city", errors)
        if NOT_A_COUNTY in codes:
            return ValidationFailure(NOT_A_COUNTY, "a county code is not of this city", errors)
        return ValidationFailure(
            FIELD_INVALID, f"{len(errors)} field(s) missing or invalid", errors
        )


def _absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(err: _Errors, path: str, value: Any, max_len: int | None = None) -> str | None:
    """A required non-blank string of at most ``max_len`` characters."""
    if _absent(value):
        err.add(path, "required")
        return None
    if not isinstance(value, str):
        err.add(path, "must be a string")
        return None
    limit = max_len or DEFAULT_STR_MAX
    if len(value) > limit:
        err.add(path, f"longer than {limit} characters")
        return None
    if not text_ok(value, lines=True):  # a NUL no PostgreSQL text column holds, and the like
        err.add(path, "holds a control character (line breaks and tabs are allowed)")
        return None
    return value


def _code(value: Any) -> str | None:
    """A code-table value sent as a string (``"1"``) or, leniently, an integer (``1``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _written_id(err: _Errors, path: str, value: Any) -> str | None:
    """An ID number's text as on the document (``id_text_problem``), or None with the
    field's error added."""
    id_no = _text(err, path, value, ID_NO_MAX)
    if id_no is not None and (problem := id_text_problem(id_no)) is not None:
        err.add(path, problem)
        return None
    return id_no


def _id_no(err: _Errors, path: str, id_type: str | None, value: Any) -> str | None:
    """An ID number checked according to its 证件种类."""
    id_no = _written_id(err, path, value)
    if id_no is None or id_type is None:
        return id_no
    if id_type == "1":
        if id_no.endswith("x") and _RESIDENT_SHAPE.fullmatch(id_no):
            err.add(path, "the check character X must be uppercase")
        elif not resident_id_ok(id_no):
            err.add(path, "not a valid resident ID (length, check digit or birth date)")
    elif id_type == "7" and not uscc_ok(id_no):
        err.add(path, "not a valid unified social credit code (check character)")
    return id_no


def _id_type(err: _Errors, path: str, value: Any) -> str | None:
    if _absent(value):
        err.add(path, "required")
        return None
    code = _code(value)
    if code not in ID_TYPES:
        err.add(path, f"unknown id_type {value!r}; expected one of {', '.join(ID_TYPES)}")
        return None
    return code


def _party_id_no(err: _Errors, path: str, value: Any) -> str | None:
    """A ``*_id_no`` of ``data``: a resident ID when it looks like one, else any short string.

    Such a party may also be a company, whose USCC can be all digits; it is accepted too.
    """
    id_no = _written_id(err, path, value)
    if id_no is None or not _RESIDENT_SHAPE.fullmatch(id_no):
        return id_no
    if id_no.endswith("x"):
        err.add(path, "the check character X must be uppercase")
    elif not (resident_id_ok(id_no) or uscc_ok(id_no)):
        err.add(path, "not a valid resident ID (check digit or birth date)")
    return id_no


def _applicant(err: _Errors, raw: Any) -> Applicant | None:
    if raw is None:
        err.add("applicant", "required")
        return None
    if not isinstance(raw, dict):
        err.add("applicant", "must be an object")
        return None
    name = _text(err, "applicant.name", raw.get("name"))
    id_type = _id_type(err, "applicant.id_type", raw.get("id_type"))
    id_no = _id_no(err, "applicant.id_no", id_type, raw.get("id_no"))
    uscc = raw.get("uscc")
    if _absent(uscc):
        uscc = None
    elif not uscc_ok(uscc):
        err.add("applicant.uscc", "not a valid unified social credit code")
    phone = raw.get("phone")
    if _absent(phone):
        phone = None
    elif not phone_ok(phone):
        err.add("applicant.phone", "not a mobile or landline number")
    if name is None or id_type is None or id_no is None:
        return None
    return Applicant(name=name, id_type=id_type, id_no=id_no, uscc=uscc, phone=phone)


def parse_applicant(raw: Any) -> tuple[Applicant | None, list[FieldError]]:
    """An ``applicant`` object alone, checked as ``parse_application`` checks it: the
    applicant, or None and every field error (the 一网通办 entry checks the province's
    handed-over applicant at once; a county's 申请并受理 is held to the same rules)."""
    err = _Errors()
    applicant = _applicant(err, raw)
    errors = [e for _, e in err.items]
    return (None if errors else applicant), errors


def applicant_errors(raw: Any) -> list[FieldError]:
    """The field errors of an ``applicant`` object alone (``parse_applicant``)."""
    return parse_applicant(raw)[1]


def _counties(err: _Errors, raw: Any, city: City) -> list[str]:
    if raw is None:
        err.add("county_codes", "required")
        return []
    if not isinstance(raw, list):
        err.add("county_codes", "must be a list of county division codes")
        return []
    if not raw:
        err.add("county_codes", "must name at least one county")
        return []
    if len(raw) > MAX_COUNTIES:
        err.add("county_codes", f"more than {MAX_COUNTIES} counties")
        return []
    seen: set[str] = set()
    for i, code in enumerate(raw):
        path = f"county_codes[{i}]"
        if not isinstance(code, str) or not code:
            err.add(path, "must be a division code string")
        elif code in seen:
            err.add(path, f"{code} is repeated")
        elif not city.is_county(code):
            err.add(path, f"{code} is not a county of {city.code}", NOT_A_COUNTY)
        elif not city.in_service(code):
            err.add(path, f"{code} is retired (停用) by the city: it takes no new applications",
                    NOT_A_COUNTY)
        if isinstance(code, str):
            seen.add(code)
    return [c for c in raw if isinstance(c, str)]


def _materials(err: _Errors, raw: Any) -> list[Material]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        err.add("materials", "must be a list")
        return []
    if len(raw) > MAX_MATERIALS:
        err.add("materials", f"more than {MAX_MATERIALS} materials")
        return []
    out: list[Material] = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            err.add(f"materials[{i}]", "must be an object with file_id and name")
            continue
        file_id = _text(err, f"materials[{i}].file_id", m.get("file_id"))
        name = _text(err, f"materials[{i}].name", m.get("name"))
        if file_id is not None and name is not None:
            out.append(Material(file_id=file_id, name=name))
    return out


def _co_owners(err: _Errors, path: str, raw: Any, by_shares: bool) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        err.add(path, "must be a list of {name, id_type, id_no, share}")
        return []
    if len(raw) > MAX_CO_OWNERS:
        err.add(path, f"more than {MAX_CO_OWNERS} co-owners")
        return []
    out: list[dict[str, Any]] = []
    shares: list[Decimal] = []
    shares_ok = True
    for i, owner in enumerate(raw):
        p = f"{path}[{i}]"
        if not isinstance(owner, dict):
            err.add(p, "must be an object")
            shares_ok = False
            continue
        _text(err, f"{p}.name", owner.get("name"))
        id_type = _id_type(err, f"{p}.id_type", owner.get("id_type"))
        _id_no(err, f"{p}.id_no", id_type, owner.get("id_no"))
        normalised = dict(owner)
        if id_type is not None:
            normalised["id_type"] = id_type
        share = owner.get("share")
        if _absent(share):
            if by_shares:
                err.add(f"{p}.share", "required when co_ownership is 2 (按份共有)")
            shares_ok = False
        else:
            try:
                value = parse_amount(share)
            except ValueError as exc:
                err.add(f"{p}.share", str(exc))
                shares_ok = False
            else:
                if not Decimal(0) < value <= HUNDRED:
                    err.add(f"{p}.share", "a share is a percentage above 0 and at most 100")
                    shares_ok = False
                shares.append(value)
                normalised["share"] = value
        out.append(normalised)
    if by_shares and shares_ok:
        total = sum(shares, Decimal(0))
        if total != HUNDRED:
            err.add(path, f"shares sum to {total}, not 100")
    return out


def _field(err: _Errors, spec: FieldSpec, value: Any, county_codes: list[str]) -> Any:
    """Check one present field of ``data``; return its normalised value."""
    path = f"data.{spec.name}"
    kind = spec.kind
    if kind == "str":
        if spec.choices is not None:
            code = _code(value)
            if code not in spec.choices:
                err.add(path, f"must be one of {', '.join(spec.choices)}")
            return code if code is not None else value
        return _text(err, path, value, spec.max_len)
    if kind == "id_no":
        return _party_id_no(err, path, value)
    if kind == "uscc":
        if not uscc_ok(value):
            err.add(path, "not a valid unified social credit code")
        return value
    if kind == "decimal":
        try:
            return parse_amount(value)
        except ValueError as exc:
            err.add(path, str(exc))
            return value
    if kind == "bool":
        if not isinstance(value, bool):
            err.add(path, "must be true or false")
        return value
    if kind == "list_str":
        return _list_str(err, path, value, spec.max_len or DEFAULT_STR_MAX)
    if kind == "unit_code":
        _unit_code(err, path, value, county_codes)
        return value
    raise AssertionError(f"field kind {kind!r} is handled by its caller")


def _list_str(err: _Errors, path: str, value: Any, max_len: int) -> Any:
    if not isinstance(value, list) or not value:
        err.add(path, "must be a non-empty list of strings")
        return value
    if len(value) > MAX_LIST_ITEMS:
        err.add(path, f"more than {MAX_LIST_ITEMS} entries")
        return value
    seen: set[str] = set()
    for i, v in enumerate(value):
        if _text(err, f"{path}[{i}]", v, max_len) is None:
            continue
        if v in seen:
            err.add(f"{path}[{i}]", f"{v} is repeated")
        seen.add(v)
    return value


def _unit_code(err: _Errors, path: str, value: Any, county_codes: list[str]) -> None:
    """不动产单元代码: 28 characters whose first six are the routed county's code."""
    if not isinstance(value, str) or not _UNIT_CODE.fullmatch(value):
        err.add(path, "must be 28 characters of digits and capital letters")
    elif len(county_codes) != 1:
        err.add(path, "a unit_code needs exactly one county code in the request")
    elif value[:6] != county_codes[0]:
        err.add(path, f"starts with {value[:6]}, not the county {county_codes[0]}")


def _data(err: _Errors, item: Item, raw: Any, county_codes: list[str]) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        err.add("data", "must be an object")
        return {}
    data = dict(raw)  # keys this version does not know are passed through untouched
    by_shares = _code(raw.get("co_ownership")) == "2"
    for spec in item.fields:
        value = raw.get(spec.name)
        if _absent(value):
            if spec.required:
                err.add(f"data.{spec.name}", "required")
            elif spec.kind == "co_owners" and by_shares:
                err.add(f"data.{spec.name}", "required when co_ownership is 2 (按份共有)")
            continue
        if spec.kind == "co_owners":
            data[spec.name] = _co_owners(err, f"data.{spec.name}", value, by_shares)
        else:
            data[spec.name] = _field(err, spec, value, county_codes)
    if item.one_of and all(_absent(raw.get(name)) for name in item.one_of):
        err.add("data", f"one of {', '.join(item.one_of)} is required")
    return data


def parse_application(item: Item, body: dict[str, Any], city: City) -> CanonicalCase:
    """Validate the province's envelope for ``item``; raise ``ValidationFailure`` if refused.

    Unknown top-level keys are ignored (forward compatible).
    """
    if not item.from_province:
        raise ValueError(f"item {item.code} is not sent by the province")
    if not isinstance(body, dict):
        raise ValidationFailure(
            FIELD_INVALID, "the body is not an object", [FieldError("body", "must be an object")]
        )
    err = _Errors()

    apply_no = body.get("apply_no")
    if _absent(apply_no):
        err.add("apply_no", "required")
    elif not apply_no_ok(apply_no):
        err.add("apply_no", "must be 1-64 characters of A-Z, a-z, 0-9, _ and -")

    city_code = body.get("city_code")
    if _absent(city_code):
        err.add("city_code", "required")
    elif city_code != city.code:
        err.add("city_code", f"{city_code!r} is not this hub's city {city.code}", NOT_THIS_CITY)

    county_codes = _counties(err, body.get("county_codes"), city)
    applicant = _applicant(err, body.get("applicant"))

    submitted_at = None
    if _absent(body.get("submitted_at")):
        err.add("submitted_at", "required")
    else:
        try:
            submitted_at = parse_iso_datetime(body["submitted_at"])
        except ValueError as exc:
            err.add("submitted_at", str(exc))

    data = _data(err, item, body.get("data"), county_codes)
    materials = _materials(err, body.get("materials"))

    failure = err.failure()
    if failure is not None:
        raise failure
    assert applicant is not None and submitted_at is not None  # guaranteed: no errors
    return CanonicalCase(
        item=item.code,
        apply_no=apply_no,
        city_code=city_code,
        county_codes=county_codes,
        applicant=applicant,
        submitted_at=submitted_at,
        data=data,
        materials=materials,
    )
