"""Presale-fund supervision at the edge: code tables 4.1–4.3, yuan ↔ fen per bank,
timestamps, working days, and the canonical event a county's system receives."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

#: 4.1 instruction types.
INSTRUCTION_TYPES: dict[str, str] = {
    "01": "ReconciliationInstruction",
    "02": "CancelSupervisionInstruction",
    "03": "TransferInstruction",
    "04": "AccountSetupInstruction",
}
INSTRUCTION_CODE = {op: code for code, op in INSTRUCTION_TYPES.items()}

#: 4.2 result types: the operations the hub serves.
RESULT_TYPES: dict[str, str] = {
    "11": "DepositNotice",
    "12": "WithdrawalNotice",
    "13": "ReconciliationResult",
    "14": "CancelSupervisionResult",
    "15": "TransferResult",
    "16": "AccountSetupResult",
    "17": "PosPaymentVerify",
    "18": "PosPayment",
    "19": "AccountFrozenNotice",
    "20": "AccountUnfrozenNotice",
    "21": "JudicialDeductionNotice",
}
RESULT_CODE = {op: code for code, op in RESULT_TYPES.items()}

#: Which instruction each result operation answers.
RESULT_OF: dict[str, str] = {
    "ReconciliationResult": "01",
    "CancelSupervisionResult": "02",
    "TransferResult": "03",
    "AccountSetupResult": "04",
}

#: 4.3 payment methods (缴款方式).
PAY_METHODS: dict[str, str] = {"01": "网银转账", "02": "柜台", "03": "POS", "09": "其他"}

#: Ledger kind and balance direction of each booking operation.
MOVEMENTS: dict[str, tuple[str, str]] = {
    "DepositNotice": ("deposit", "in"),
    "WithdrawalNotice": ("withdrawal", "out"),
    "PosPayment": ("pos_payment", "in"),
    "AccountFrozenNotice": ("frozen", "none"),
    "AccountUnfrozenNotice": ("unfrozen", "none"),
    "JudicialDeductionNotice": ("judicial_deduction", "out"),
}
ABNORMAL = ("AccountFrozenNotice", "AccountUnfrozenNotice", "JudicialDeductionNotice")

#: A bank's ``result`` field in result operations: success values.
RESULT_OK = frozenset({"00", "0", "0000", "success", "SUCCESS"})

#: Result codes of the contract.
OK, BAD_TOKEN, MALFORMED, INVALID, UNKNOWN_ACCOUNT, NOT_ON_SALE, INTERNAL = (
    "0000", "1001", "2001", "2002", "3001", "3002", "5000")
#: 1004: the account or house belongs to another bank; 2005: serial_no reused with
#: another operation, account or amount.
OTHER_BANK, SERIAL_REUSED = "1004", "2005"

CENT = Decimal("0.01")
#: The largest amount (and balance) accepted, in fen: 99,999,999,999.99 yuan. Far above
#: any presale payment, and low enough that the ledger's BIGINT sums cannot overflow
#: (that would take ~900,000 entries of this size on one account).
MAX_AMOUNT_FEN = 10**13 - 1
LOCAL_TZ = ZoneInfo("Asia/Shanghai")


class FieldError(ValueError):
    """A field is invalid (answered 2002); ``field`` names it."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field


# --------------------------------------------------------------------------- money


def to_fen(yuan: Decimal) -> int:
    fen = yuan * 100
    if fen != fen.to_integral_value():
        raise ValueError(f"{yuan} has more than two decimal places")
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(CENT)


def amount_in(value: Any, field: str, in_fen: bool, allow_zero: bool = False,
              signed: bool = False) -> int:
    """A bank's amount as integer fen; yuan must have at most two places, fen none."""
    if value is None:
        raise FieldError(field, "required")
    try:
        dec = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise FieldError(field, "not a decimal number") from None
    if not dec.is_finite():
        raise FieldError(field, "not a decimal number")
    if isinstance(value, float):
        raise FieldError(field, "floats are not accepted")
    if abs(dec) >= 10**19:  # before int(): the bound below, without a huge integer
        raise FieldError(field, f"more than {fen_to_yuan(MAX_AMOUNT_FEN)} yuan")
    if in_fen:
        if dec != dec.to_integral_value():
            raise FieldError(field, "this bank counts in fen: must be a whole number")
        fen = int(dec)
    else:
        if dec != dec.quantize(CENT):
            raise FieldError(field, "at most two decimal places")
        fen = int(dec * 100)
    if abs(fen) > MAX_AMOUNT_FEN:
        raise FieldError(field, f"more than {fen_to_yuan(MAX_AMOUNT_FEN)} yuan")
    if fen < 0 and not signed:
        raise FieldError(field, "must not be negative")
    if fen == 0 and not allow_zero:
        raise FieldError(field, "must be more than zero")
    return fen


def amount_out(fen: int, in_fen: bool) -> Decimal:
    """Integer fen as the bank wants it: whole fen, or yuan with two places."""
    return Decimal(fen) if in_fen else fen_to_yuan(fen)


# --------------------------------------------------------------------------- time


def occurred_utc(value: Any, field: str = "occurred_at") -> datetime:
    """ISO 8601 with an offset (required) → naive UTC."""
    if value is None:
        raise FieldError(field, "required")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise FieldError(field, "not an ISO 8601 date-time") from None
    if not isinstance(value, datetime):
        raise FieldError(field, "not a date-time")
    if value.tzinfo is None or value.utcoffset() is None:
        raise FieldError(field, "needs a UTC offset (e.g. +08:00)")
    try:
        utc = value.astimezone(UTC).replace(tzinfo=None)
        local_date(utc)
    except (OverflowError, ValueError):
        raise FieldError(field, "outside the years 0001–9999 in UTC or local time") from None
    return utc


#: XML Schema's lexical forms (xs:dateTime, xs:date), wider than what Python holds:
#: years beyond 9999 or negative, hour 24, any number of fractional digits.
_XSD_DATETIME = re.compile(
    r"(-?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?")
_XSD_DATE = re.compile(r"(-?\d{4,})-(\d\d)-(\d\d)(Z|[+-]\d\d:\d\d)?")
#: Fractional seconds beyond this many digits are refused (.NET sends 7; Python keeps 6).
MAX_FRACTION_DIGITS = 9


def _offset(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    if minutes > 59 or hours * 60 + minutes > 14 * 60:
        raise ValueError("offset")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def xml_datetime(text: str, field: str) -> datetime:
    """An xs:dateTime the hub can hold (2002 otherwise): year 0001–9999 also once
    converted to UTC and to local time, no hour 24, at most 9 fractional digits."""
    match = _XSD_DATETIME.fullmatch(text)
    if match is None:
        raise FieldError(field, "not an XML Schema date-time")
    year, month, day, hour, minute, second, frac, offset = match.groups()
    if year.startswith("-") or len(year) > 4:
        raise FieldError(field, "the year must be 0001–9999")
    if hour == "24":
        raise FieldError(field, "hour 24 is not accepted: send 00:00:00 of the next day")
    if offset is not None and offset[0] == "-" and offset[4:] != "00":
        # spyne adds the minutes of a negative offset instead of subtracting them
        raise FieldError(field, "a negative UTC offset must be whole hours")
    if frac is not None and len(frac) - 1 > MAX_FRACTION_DIGITS:
        raise FieldError(field, f"at most {MAX_FRACTION_DIGITS} fractional digits")
    try:
        tz = _offset(offset)
        value = datetime(int(year), int(month), int(day), int(hour), int(minute),
                         int(second), int((frac or ".0")[1:7].ljust(6, "0")), tz)
    except ValueError:
        raise FieldError(field, "not a valid date-time") from None
    if tz is not None:
        occurred_utc(value, field)  # also representable in UTC and local time
    return value


def xml_date(text: str, field: str) -> date:
    """An xs:date the hub can hold (2002 otherwise): year 0001–9999."""
    match = _XSD_DATE.fullmatch(text)
    if match is None:
        raise FieldError(field, "not an XML Schema date")
    year, month, day, offset = match.groups()
    if year.startswith("-") or len(year) > 4:
        raise FieldError(field, "the year must be 0001–9999")
    try:
        _offset(offset)
        return date(int(year), int(month), int(day))
    except ValueError:
        raise FieldError(field, "not a valid date") from None


def local_date(utc_naive: datetime, tz: ZoneInfo = LOCAL_TZ) -> date:
    return utc_naive.replace(tzinfo=UTC).astimezone(tz).date()


def weekdays_after(start: datetime, days: int, tz: ZoneInfo = LOCAL_TZ) -> datetime:
    """The end (24:00 local) of the ``days``-th Monday-to-Friday after the local day of
    ``start`` (naive UTC), as naive UTC: only the fallback of an instruction deadline when
    the working-day calendar (mapping/workdays.py) has no data for the year."""
    day = start.replace(tzinfo=UTC).astimezone(tz).date()
    left = days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return end.astimezone(UTC).replace(tzinfo=None)


#: The notice requires a bank to report an abnormal event (freeze, unfreeze, judicial
#: deduction) within 24 hours of its occurrence (bank.md 3.1).
ABNORMAL_REPORT_HOURS = 24


def reported_late(occurred_at: datetime, received_at: datetime) -> float | None:
    """Hours between an abnormal event and its notice (both naive UTC) when that is more
    than the 24 the notice allows; None when on time."""
    hours = (received_at - occurred_at).total_seconds() / 3600
    return round(hours, 1) if hours > ABNORMAL_REPORT_HOURS else None


# --------------------------------------------------------------------------- repeats

#: What makes two notices with one (bank_code, serial_no) the same notice, besides the
#: operation (contract: operation, account or amount; also the instruction answered,
#: its result and a reconciliation's figures). A POS payment names its house, not
#: the account (the hub looks that up).
IDENTITY_FIELDS = ("account_no", "house_code", "amount", "instruction_no", "result", "date",
                   "opening_balance", "total_in", "total_out", "closing_balance")


def content_key(operation: str, fields: dict[str, Any]) -> str:
    """A digest of a notice's identity (``IDENTITY_FIELDS``) as the hub normalised it;
    equal digests mean an exact repeat, different ones answer 2005."""
    names = [n for n in IDENTITY_FIELDS if not (operation == "PosPayment" and n == "account_no")]
    values = [None if fields.get(n) in (None, "") else str(_plain(fields[n])) for n in names]
    return hashlib.sha256(json.dumps([operation, *values]).encode()).hexdigest()


# --------------------------------------------------------------------------- canonical


def canonical_event(operation: str, bank_code: str, fields: dict[str, Any],
                    account: dict[str, Any] | None) -> dict[str, Any]:
    """The canonical fund event a county's supervision system (or an operator) gets."""
    body = {k: _plain(v) for k, v in fields.items() if k != "token" and v is not None}
    return {
        "event": operation,
        "county_code": (account or {}).get("division"),
        "result_type": RESULT_CODE[operation],
        "bank_code": bank_code,
        "account": account or {},
        "fields": body,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value.quantize(CENT))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


#: Chinese names of the operations (contract sections 3.2 and 3.3), for operators.
OPERATION_NAMES = {
    "DepositNotice": "预售资金入账通知", "WithdrawalNotice": "预售资金出账通知",
    "ReconciliationResult": "预售资金对账结果", "CancelSupervisionResult": "取消监管结果",
    "TransferResult": "预售资金使用划拨结果", "AccountSetupResult": "监管账户设立结果",
    "PosPaymentVerify": "POS机缴费验证", "PosPayment": "POS机缴费",
    "AccountFrozenNotice": "监管账户冻结通知", "AccountUnfrozenNotice": "监管账户解冻通知",
    "JudicialDeductionNotice": "监管账户司法扣划通知",
    "ReconciliationInstruction": "预售资金对账指令", "CancelSupervisionInstruction": "取消监管指令",
    "TransferInstruction": "预售资金使用划拨指令",
    "AccountSetupInstruction": "预售资金监管账户设立指令",
}


def operation_name(operation: str) -> str:
    return OPERATION_NAMES.get(operation, operation)

