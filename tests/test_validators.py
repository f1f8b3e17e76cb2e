from datetime import timedelta
from decimal import Decimal

import pytest

from mapping.validators import (
    apply_no_ok,
    nonce_ok,
    parse_amount,
    parse_iso_datetime,
    phone_ok,
    resident_id_ok,
    resident_id_with_check,
    uscc_ok,
    uscc_with_check,
)


def _gb11643_check(first17: str) -> str:
    """Independent check digit: sum(a_i * 2^(17-i)) and the 12-character table."""
    total = sum(int(a) * (2 ** (17 - i)) for i, a in enumerate(first17))
    return "10X98765432"[total % 11]


def test_contract_example_resident_id_is_valid():
    assert resident_id_ok("11010519491231002X")


def test_standard_example_resident_id_is_valid():
    assert resident_id_ok("440524188001010014")


@pytest.mark.parametrize(
    "bad",
    [
        "110105194912310021",  # wrong check digit (should be X)
        "11010519491231002x",  # lowercase x
        "440524188001010015",  # wrong check digit
        "11010519491231002",  # 17 characters
        "11010519491231002XX",  # 19 characters
        "1101051949123100２X",  # full-width digit
        "",
        None,
        110105194912310021,
    ],
)
def test_bad_resident_ids(bad):
    assert not resident_id_ok(bad)


def test_resident_id_needs_real_birth_date():
    body = "11010519490230002"  # 30 February
    full = body + _gb11643_check(body)
    assert not resident_id_ok(full)
    body = "11010520000229002"  # 29 February of a leap year
    assert resident_id_ok(body + _gb11643_check(body))


def test_resident_id_birth_year_is_plausible():
    body = "11010517991231002"
    assert not resident_id_ok(body + _gb11643_check(body))


def test_address_code_is_not_checked_against_current_divisions():
    body = "51172119900101123"  # born in 达县 511721, now 达川区 511703
    full = body + _gb11643_check(body)
    assert full == "511721199001011230"
    assert resident_id_ok(full)


def test_resident_id_with_check_matches_independent_computation():
    for body in ["51170219851120001", "44070319700615123", "11010519491231002"]:
        assert resident_id_with_check(body) == body + _gb11643_check(body)
        assert resident_id_ok(resident_id_with_check(body))
    with pytest.raises(ValueError):
        resident_id_with_check("1234")


def test_real_uscc_is_valid():
    assert uscc_ok("91350100M000100Y43")


@pytest.mark.parametrize(
    "bad",
    [
        "91350100M000100Y44",  # wrong check character
        "91350100M000100Y4",  # 17 characters
        "91350100m000100Y43",  # lowercase
        "91350100I000100Y43",  # I is not in the alphabet
        None,
    ],
)
def test_bad_usccs(bad):
    assert not uscc_ok(bad)


def test_uscc_check_character_zero():
    # weighted sum divisible by 31: the check value 31 wraps to "0"
    assert uscc_ok("915117000000000020")
    assert not uscc_ok("915117000000000021")


def test_uscc_with_check():
    assert uscc_with_check("91350100M000100Y4") == "91350100M000100Y43"
    generated = uscc_with_check("91511700MA6200000")
    assert uscc_ok(generated)
    assert len(generated) == 18
    with pytest.raises(ValueError):
        uscc_with_check("91350100O000100Y4")  # O is not in the alphabet


def test_apply_no():
    assert apply_no_ok("510000-20261122-000001")
    assert apply_no_ok("A_b-9")
    assert apply_no_ok("x" * 64)
    assert not apply_no_ok("x" * 65)
    assert not apply_no_ok("")
    assert not apply_no_ok("510000/2026")
    assert not apply_no_ok("abc\n")
    assert not apply_no_ok(12345)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.50", Decimal("12.50")), (100, Decimal(100)), (Decimal("0.01"), Decimal("0.01"))],
)
def test_parse_amount_accepts(value, expected):
    assert parse_amount(value) == expected


@pytest.mark.parametrize(
    "value",
    [12.5, "NaN", Decimal("NaN"), Decimal("Infinity"), "inf", "1.234", "-1", -5, "", "abc", True],
)
def test_parse_amount_refuses(value):
    with pytest.raises(ValueError):
        parse_amount(value)


def test_parse_amount_reasons_are_clear():
    with pytest.raises(ValueError, match="float"):
        parse_amount(1.5)
    with pytest.raises(ValueError, match="2 decimal places"):
        parse_amount("1.005")
    with pytest.raises(ValueError, match="negative"):
        parse_amount(Decimal("-0.01"))


def test_nonce():
    assert nonce_ok("a" * 16)
    assert nonce_ok("Ab3" * 21 + "x")  # 64
    assert not nonce_ok("a" * 15)
    assert not nonce_ok("a" * 65)
    assert not nonce_ok("abcdefgh-ijklmnop")
    assert not nonce_ok(None)


@pytest.mark.parametrize(
    "ok", ["13800138000", "19912345678", "0818-2345678", "02812345678", "8234567"]
)
def test_phone_ok(ok):
    assert phone_ok(ok)


@pytest.mark.parametrize(
    "bad", ["12345678901", "1380013800", "123456", "0818--2345678", "-8234567", "phone"]
)
def test_phone_bad(bad):
    assert not phone_ok(bad)


def test_parse_iso_datetime_requires_offset():
    dt = parse_iso_datetime("2026-11-22T10:00:00+08:00")
    assert dt.utcoffset() == timedelta(hours=8)
    assert dt.hour == 10
    assert parse_iso_datetime("2026-11-22T02:00:00Z") == dt
    for bad in ["2026-11-22T10:00:00", "2026-11-22", "22/11/2026 10:00", "", None]:
        with pytest.raises(ValueError):
            parse_iso_datetime(bad)


def test_resident_id_forms_pair_the_old_15_digit_number_with_the_new():
    from mapping.validators import resident_id_forms

    assert resident_id_forms("110105198001011238") == {"110105198001011238", "110105800101123"}
    assert resident_id_forms("110105800101123") == {"110105198001011238", "110105800101123"}
    assert resident_id_forms("11010520000101123X") == {"11010520000101123X"}  # born 2000
    assert resident_id_forms("110105801301123") == {"110105801301123"}  # no 13th month
    assert resident_id_forms("E12345678") == {"E12345678"}


@pytest.mark.parametrize(("value", "why"), [
    ("110105198001011238\u200b", "invisible"), ("1101051980\u00a001011238", "spaces"),
    ("110105 198001011238", "spaces"), ("１１０１０５１９８００１０１１２３８", "half-width"),
    ("E1234\u202e5678", "invisible"), ("南字第123号", None), ("H1234-5678", None),
    ("110105198001011238", None)])
def test_an_id_number_must_be_written_as_on_the_document(value, why):
    from mapping.validators import id_text_problem

    problem = id_text_problem(value)
    assert (problem is None) if why is None else (why in (problem or "")), problem


def test_every_reason_the_province_api_gives_reads_in_chinese_on_the_entry_form():
    """Each reason ``mapping.province_in`` writes (its source read here) is one the
    applicant's table knows: a new reason without its Chinese fails this test."""
    import re as _re
    from pathlib import Path

    from mapping.reasons import UNKNOWN, in_chinese

    source = (Path(__file__).resolve().parent.parent / "mapping" / "province_in.py").read_text()
    reasons = _re.findall(r'err\.add\([^,]+, f?"([^"]+)"', source)
    assert len(reasons) > 25
    samples = {r: _re.sub(r"\{[^}]*\}", "7", r) for r in reasons}
    not_read = [r for r, sample in samples.items() if in_chinese(sample) == UNKNOWN]
    # those only the API's own callers meet (the form never sends them)
    api_only = {"must be a division code string", "must be a list of county division codes",
                "must be a list of {name, id_type, id_no, share}", "must be a list",
                "must be an object with file_id and name", "must be an object",
                "must name at least one county", "a unit_code needs exactly one county code "
                "in the request", "must be 1-64 characters of A-Z, a-z, 0-9, _ and -",
                "{city_code!r} is not this hub's city {city.code}",
                "{code} is not a county of {city.code}",
                "{code} is retired (停用) by the city: it takes no new applications",
                "unknown id_type {value!r}; expected one of {', '.join(ID_TYPES)}",
                "more than {MAX_COUNTIES} counties"}
    assert sorted(set(not_read) - api_only) == []
    assert in_chinese("longer than 200 characters") == "内容过长，最多 200 个字"
