"""Province-wide unified numbers (contracts/numbering.md, Hunan profile): the formats,
and the completeness and format checks of a county's number requests.

Pure: no store, no HTTP. Each ``check_*`` collects every field error (like
``mapping/province_in.py``) and returns the canonical request the hub forwards to the
province, or raises ``NumberingInvalid`` with all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from mapping.province_in import parse_applicant
from mapping.validators import parse_amount, text_ok, uscc_ok

#: The profiles a config may name (``numbering.profile``); None: no unified numbering.
PROFILES = ("hunan",)

#: ASCII digits only: Python's ``\d`` also matches full-width and Arabic-Indic digits,
#: and 430223２０２４… had been issued, registered and accepted as a 办结's filing_no.
CONSTRUCTION_PERMIT = re.compile(r"\d{18}", re.ASCII)
PRESALE_PERMIT = re.compile(r"\d{18}-[YZ]\d{2}", re.ASCII)
CONTRACT_FILING = re.compile(r"\d{18}-[YZ]\d{2}-B\d{4}", re.ASCII)
#: 工改项目编码: the national investment project code (投资项目统一代码, 24 characters:
#: year and month, the division code of the authority that filed it, industry, type,
#: serial), e.g. ``2406-430223-70-01-000001`` — its division is the project's county.
PROJECT_CODE = re.compile(r"\d{4}-(\d{6})-\d{2}-\d{2}-\d{6}", re.ASCII)

PRESALE, CONTRACT = "presale_permit", "contract_filing"
KIND_NAMES = {PRESALE: "预售许可证", CONTRACT: "网签合同备案"}
PAYMENTS = {"full": "全额付款", "commercial_loan": "商业贷款", "fund_loan": "公积金贷款"}
ACCEPTANCE_KINDS = {"five_party": "五方责任主体验收", "completion_filing": "竣工验收备案"}

MAX_PERMITS = 50
MAX_BUILDINGS = 200
MAX_ROOMS = 100
MAX_BUYERS = 20
MAX_TEXT = 200
MAX_REASON = 500


class NumberingInvalid(ValueError):
    """Fields missing or invalid: ``errors`` is every (field, reason)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(f"{len(errors)} field(s) missing or invalid")
        self.errors = errors


def kind_of(number: Any) -> str | None:
    """``presale_permit`` or ``contract_filing`` for a number in its format, else None."""
    if not isinstance(number, str):
        return None
    if PRESALE_PERMIT.fullmatch(number):
        return PRESALE
    if CONTRACT_FILING.fullmatch(number):
        return CONTRACT
    return None


def project_county(code: str) -> str | None:
    """The division a 工改项目编码 was filed in (its second segment), None off format."""
    found = PROJECT_CODE.fullmatch(code) if isinstance(code, str) else None
    return found.group(1) if found else None


def county_of(number: str) -> str:
    """The county a construction permit (and so any number built on it) belongs to."""
    return number[:6]


@dataclass(frozen=True)
class Permit:
    no: str
    planned_completion: date


@dataclass(frozen=True)
class PresaleRequest:
    project_code: str
    construction_permits: tuple[Permit, ...]
    building_nos: tuple[str, ...]
    developer_name: str
    developer_uscc: str
    project_name: str
    presale_area: Decimal
    backfill: bool

    def wire(self, county_code: str) -> dict[str, Any]:
        """The body of ``POST {province}/numbers/presale-permit``."""
        return {"project_code": self.project_code,
                "construction_permits": [{"no": p.no,
                                          "planned_completion": p.planned_completion.isoformat()}
                                         for p in self.construction_permits],
                "building_nos": list(self.building_nos), "developer_name": self.developer_name,
                "developer_uscc": self.developer_uscc, "project_name": self.project_name,
                "presale_area": str(self.presale_area), "backfill": self.backfill,
                "county_code": county_code}


@dataclass(frozen=True)
class ContractRequest:
    presale_permit_no: str
    building_no: str
    room_nos: tuple[str, ...]
    address: str
    buyers: tuple[dict[str, str], ...]
    price: Decimal
    payment: str
    loan_amount: Decimal | None
    file_id: str

    def wire(self, county_code: str) -> dict[str, Any]:
        """The body of ``POST {province}/numbers/contract-filing``."""
        return {"presale_permit_no": self.presale_permit_no, "building_no": self.building_no,
                "room_nos": list(self.room_nos), "address": self.address,
                "buyers": [dict(b) for b in self.buyers], "price": str(self.price),
                "payment": self.payment,
                "loan_amount": None if self.loan_amount is None else str(self.loan_amount),
                "file_id": self.file_id, "county_code": county_code}


def _text(body: dict[str, Any], name: str, errors: list[tuple[str, str]],
          limit: int = MAX_TEXT) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        errors.append((name, "required"))
        return ""
    if len(value) > limit:
        errors.append((name, f"at most {limit} characters"))
        return ""
    if not text_ok(value):  # a NUL no PostgreSQL text column holds, and the like
        errors.append((name, "holds a control character"))
        return ""
    return value.strip()


def _texts(body: dict[str, Any], name: str, errors: list[tuple[str, str]],
           limit: int) -> tuple[str, ...]:
    value = body.get(name)
    if not isinstance(value, list) or not value:
        errors.append((name, "required: a non-empty list"))
        return ()
    if len(value) > limit:
        errors.append((name, f"at most {limit} entries"))
        return ()
    out: list[str] = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip() or len(v) > 64 or not text_ok(v):
            errors.append((f"{name}[{i}]", "required: 1-64 characters, no control character"))
        else:
            out.append(v.strip())
    if len(set(out)) != len(out):
        errors.append((name, "an entry appears twice"))
    return tuple(out)


def _amount(body: dict[str, Any], name: str, errors: list[tuple[str, str]],
            positive: bool = True) -> Decimal | None:
    value = body.get(name)
    if value is None or value == "":
        errors.append((name, "required"))
        return None
    try:
        amount = parse_amount(value)
    except ValueError as exc:
        errors.append((name, str(exc)))
        return None
    if positive and amount <= 0:
        errors.append((name, "must be greater than 0"))
        return None
    return amount


def parse_date(value: Any) -> date:
    """An ISO date ``YYYY-MM-DD`` (a reported or planned day: no time, no zone)."""
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError("expected a date such as 2026-06-30")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a date") from None


def _permits(body: dict[str, Any], errors: list[tuple[str, str]]) -> tuple[Permit, ...]:
    raw = body.get("construction_permits")
    if not isinstance(raw, list) or not raw:
        errors.append(("construction_permits", "required: at least one construction permit"))
        return ()
    if len(raw) > MAX_PERMITS:
        errors.append(("construction_permits", f"at most {MAX_PERMITS} entries"))
        return ()
    permits: list[Permit] = []
    for i, p in enumerate(raw):
        where = f"construction_permits[{i}]"
        if not isinstance(p, dict):
            errors.append((where, "must be an object"))
            continue
        no = p.get("no")
        ok = isinstance(no, str) and CONSTRUCTION_PERMIT.fullmatch(no) is not None
        if not ok:
            errors.append((f"{where}.no", "required: the 18-digit construction permit number"))
        try:
            planned = parse_date(p.get("planned_completion"))
        except ValueError as exc:
            errors.append((f"{where}.planned_completion", f"required: {exc}"))
            continue
        if ok:
            permits.append(Permit(no, planned))  # type: ignore[arg-type]
    if len({p.no for p in permits}) != len(permits):
        errors.append(("construction_permits", "a permit number appears twice"))
    return tuple(permits)


def check_presale(body: dict[str, Any]) -> PresaleRequest:
    """A presale-permit number request, complete and in format (every error at once)."""
    errors: list[tuple[str, str]] = []
    code = body.get("project_code")
    if not isinstance(code, str) or not PROJECT_CODE.fullmatch(code):
        errors.append(("project_code", "required: the 工改项目编码, 24 characters such as "
                                       "2406-430223-70-01-000001 (the county's division "
                                       "code second)"))
    permits = _permits(body, errors)
    buildings = _texts(body, "building_nos", errors, MAX_BUILDINGS)
    developer = _text(body, "developer_name", errors)
    uscc = body.get("developer_uscc")
    if not uscc_ok(uscc):
        errors.append(("developer_uscc", "required: a valid unified social credit code"))
    project = _text(body, "project_name", errors)
    area = _amount(body, "presale_area", errors)
    backfill = body.get("backfill", False)
    if not isinstance(backfill, bool):
        errors.append(("backfill", "must be true or false"))
    if errors:
        raise NumberingInvalid(errors)
    assert area is not None
    return PresaleRequest(code, permits, buildings, developer, uscc, project,  # type: ignore[arg-type]
                          area, backfill)


def _buyers(body: dict[str, Any], errors: list[tuple[str, str]]) -> tuple[dict[str, str], ...]:
    raw = body.get("buyers")
    if not isinstance(raw, list) or not raw:
        errors.append(("buyers", "required: at least one buyer"))
        return ()
    if len(raw) > MAX_BUYERS:
        errors.append(("buyers", f"at most {MAX_BUYERS} buyers"))
        return ()
    out: list[dict[str, str]] = []
    for i, b in enumerate(raw):
        where = f"buyers[{i}]"
        if not isinstance(b, dict):
            errors.append((where, "must be an object"))
            continue
        buyer, problems = parse_applicant(  # a buyer is held to the applicant's rules
            {"name": b.get("name"), "id_type": b.get("id_type"), "id_no": b.get("id_no")})
        errors.extend((e.field.replace("applicant.", f"{where}.", 1), e.reason)
                      for e in problems)
        if buyer is not None:
            out.append({"name": buyer.name.strip(), "id_type": buyer.id_type,
                        "id_no": buyer.id_no.strip()})
    return tuple(out)


def check_contract(body: dict[str, Any]) -> ContractRequest:
    """A contract-filing number request, complete and in format (every error at once).
    Whether the presale permit is in the register for the county is the store's check."""
    errors: list[tuple[str, str]] = []
    permit = body.get("presale_permit_no")
    if kind_of(permit) != PRESALE:
        errors.append(("presale_permit_no", "required: a presale permit number such as "
                                            "430223202406200101-Y01"))
    building = _text(body, "building_no", errors, 64)
    rooms = _texts(body, "room_nos", errors, MAX_ROOMS)
    address = _text(body, "address", errors)
    buyers = _buyers(body, errors)
    price = _amount(body, "price", errors)
    payment = body.get("payment")
    loan: Decimal | None = None
    if payment not in PAYMENTS:
        errors.append(("payment", f"must be one of {', '.join(PAYMENTS)}"))
    elif payment == "full":
        if body.get("loan_amount") not in (None, "", 0, "0", "0.00"):
            errors.append(("loan_amount", "no loan with full payment"))
    else:
        loan = _amount(body, "loan_amount", errors)
        if loan is not None and price is not None and loan > price:
            errors.append(("loan_amount", "the loan exceeds the price"))
    file_id = body.get("file_id")
    if not isinstance(file_id, str) or not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", file_id):
        errors.append(("file_id", "required: the contract's scan, uploaded as a material"))
    if errors:
        raise NumberingInvalid(errors)
    assert price is not None
    return ContractRequest(permit, building, rooms, address, buyers, price,  # type: ignore[arg-type]
                           payment, loan, file_id)  # type: ignore[arg-type]


def check_cancel(number: Any, body: dict[str, Any]) -> str:
    """The reason of a cancellation (the number's format is checked too)."""
    errors: list[tuple[str, str]] = []
    if kind_of(number) is None:
        errors.append(("number", "not a presale permit or contract filing number"))
    reason = _text(body, "reason", errors, MAX_REASON)
    if errors:
        raise NumberingInvalid(errors)
    return reason


def check_acceptance(body: dict[str, Any], today: date) -> tuple[str, date]:
    """A project's completion acceptance: its kind and (local) date, no later than
    ``today`` (local): an acceptance is reported once it happened, and a 9999-12-31
    took the project off the 逾期未竣工验收 list for good."""
    errors: list[tuple[str, str]] = []
    kind = body.get("kind")
    if kind not in ACCEPTANCE_KINDS:
        errors.append(("kind", f"must be one of {', '.join(ACCEPTANCE_KINDS)}"))
    day: date | None = None
    try:
        day = parse_date(body.get("date"))
    except ValueError as exc:
        errors.append(("date", str(exc)))
    else:
        if day > today:
            errors.append(("date", f"must not be after today ({today.isoformat()}, "
                                   "Beijing time): report an acceptance once it happened"))
    if errors:
        raise NumberingInvalid(errors)
    assert day is not None
    return kind, day  # type: ignore[return-value]


def check_issued(kind: str, answer: Any, expected_prefix: str) -> tuple[str, str]:
    """The province's answer ``{"number", "chain_code"}``: a number in the format of
    ``kind`` built on ``expected_prefix`` (first permit / presale permit), and a chain
    string. Raises ``ValueError`` saying what is wrong (the province misbehaved)."""
    number, chain = _answered(answer)
    if kind_of(number) != kind or not number.startswith(expected_prefix + "-"):  # type: ignore[union-attr]
        raise ValueError(f"the province answered no {KIND_NAMES[kind]} number on "
                         f"{expected_prefix}: {str(number)[:64]!r}")
    if not isinstance(chain, str) or not chain or len(chain) > 2000:
        raise ValueError("the province's answer has no chain_code")
    from mapping import certificate_qr  # segno: only once a number is issued

    if not text_ok(chain) or not certificate_qr.fits(chain):
        raise ValueError("the province's chain_code holds a control character or does not "
                         "fit in a QR code")
    return number, chain  # type: ignore[return-value]


def issued_number(kind: str, answer: Any) -> str | None:
    """The number of ``kind`` the province's answer carries, well-formed, if any (for
    an alert when the rest of the answer is not usable: the province may have issued
    it all the same)."""
    number, _ = _answered(answer)
    return number if kind_of(number) == kind else None  # type: ignore[return-value]


def _answered(answer: Any) -> tuple[Any, Any]:
    """``data.number`` and ``data.chain_code`` of the province's answer, as sent (None
    where missing)."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict):
        return None, None
    return data.get("number"), data.get("chain_code")


@dataclass(frozen=True)
class NumberingSettings:
    """The config's ``numbering:`` section: the profile (None: no unified numbering, the
    endpoints answer 4001) and the font of the QR code's caption."""

    profile: str | None = None
    caption_font: str | None = None

    @property
    def enabled(self) -> bool:
        return self.profile is not None

    @classmethod
    def parse(cls, raw: Any, where: str) -> NumberingSettings:
        """``where`` is ``<file>: numbering``; a wrong value raises ``ValueError`` saying
        ``<file>: numbering.<key>: why``."""
        from mapping.certificate_qr import find_font

        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: must be a mapping")
        unknown = sorted(set(raw) - {"profile", "caption_font"})
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown setting")
        profile = raw.get("profile")
        if profile in (None, "none", False):
            return cls()
        if profile not in PROFILES:
            raise ValueError(f"{where}.profile: one of {', '.join(PROFILES)} or none "
                             f"(got {str(profile)[:32]!r})")
        font = raw.get("caption_font")
        if font is not None and not isinstance(font, str):
            raise ValueError(f"{where}.caption_font: a font file's path")
        found = find_font(font)
        if found is None or (font and str(found) != font):
            raise ValueError(f"{where}.caption_font: no CJK font for the QR code's caption "
                             f"({font or 'none of the usual paths'}; install fonts-wqy-microhei "
                             "or name a .ttf/.ttc file)")
        return cls(profile, str(found))
