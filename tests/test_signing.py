import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes

from adapters.signing import (
    SignatureError,
    check_signature,
    signature,
    signed_headers,
    string_to_sign,
)

SECRET = b"s3cret-shared-with-province"
PATH = "/api/province/v1/rental_filing"
BODY = '{"apply_no": "510000-20261122-000001", "name": "张三"}'.encode()
NOW = 1_795_000_000
NONCE = "abcdefghijklmnop1234"


def secret_for(app_id):
    return {"province": SECRET}.get(app_id)


def check(headers, body=BODY, now=NOW, **kw):
    return check_signature(headers, "POST", PATH, body, secret_for, now=now, **kw)


def _sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _hmac_sm3(key: bytes, msg: bytes) -> str:
    """RFC 2104 built by hand on the SM3 hash (block size 64)."""
    key = key.ljust(64, b"\0")
    inner = _sm3(bytes(k ^ 0x36 for k in key) + msg)
    return _sm3(bytes(k ^ 0x5C for k in key) + inner).hex()


def test_string_to_sign_layout():
    expected = f"POST\n{PATH}\n{NOW}\n{NONCE}\n{hashlib.sha256(BODY).hexdigest()}".encode()
    assert string_to_sign("post", PATH + "?x=1", NOW, NONCE, BODY) == expected
    empty = string_to_sign("GET", "/a", "1", NONCE, b"")
    assert empty.endswith(b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_hmac_sha256_vector_computed_independently():
    message = b"\n".join(
        [
            b"POST",
            PATH.encode(),
            str(NOW).encode(),
            NONCE.encode(),
            hashlib.sha256(BODY).hexdigest().encode(),
        ]
    )
    expected = hmac.new(SECRET, message, hashlib.sha256).hexdigest()
    assert signature(SECRET, "POST", PATH, NOW, NONCE, BODY) == expected
    assert signature(SECRET, "POST", PATH, str(NOW), NONCE, BODY) == expected


def test_sm3_backend_matches_the_standard_vector():
    # GB/T 32905-2016, example 1
    assert _sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_hmac_sm3_differs_from_sha256_and_verifies():
    sm3 = signature(SECRET, "POST", PATH, NOW, NONCE, BODY, algorithm="HMAC-SM3")
    sha = signature(SECRET, "POST", PATH, NOW, NONCE, BODY)
    assert sm3 != sha
    assert len(sm3) == 64 and sm3 == sm3.lower()
    assert sm3 == _hmac_sm3(SECRET, string_to_sign("POST", PATH, NOW, NONCE, BODY))

    headers = signed_headers("province", SECRET, "POST", PATH, BODY, algorithm="HMAC-SM3", now=NOW)
    assert headers["X-Sign-Method"] == "HMAC-SM3"
    assert check(headers) == ("province", headers["X-Nonce"])
    # the same signature announced as SHA256 does not verify
    del headers["X-Sign-Method"]
    with pytest.raises(SignatureError) as info:
        check(headers)
    assert info.value.code == "1001"


def test_unknown_algorithm_is_refused_when_signing():
    with pytest.raises(ValueError):
        signature(SECRET, "POST", PATH, NOW, NONCE, BODY, algorithm="HMAC-MD5")


def test_signed_headers_round_trip():
    headers = signed_headers("province", SECRET, "POST", PATH, BODY, now=NOW + 0.9)
    assert set(headers) == {"X-App-Id", "X-Timestamp", "X-Nonce", "X-Signature"}
    assert headers["X-Timestamp"] == str(NOW)
    assert len(headers["X-Nonce"]) == 32 and headers["X-Nonce"].isalnum()
    assert headers["X-Nonce"] != signed_headers("province", SECRET, "POST", PATH, BODY)["X-Nonce"]
    assert check(headers) == ("province", headers["X-Nonce"])
    # header names are matched case-insensitively
    assert check({k.lower(): v for k, v in headers.items()})[0] == "province"


def _code(headers, **kw):
    with pytest.raises(SignatureError) as info:
        check(headers, **kw)
    return info.value.code


def test_tampered_body_wrong_secret_unknown_app():
    headers = signed_headers("province", SECRET, "POST", PATH, BODY, now=NOW, nonce=NONCE)
    assert _code(headers, body=BODY + b" ") == "1001"
    assert _code(signed_headers("province", b"other", "POST", PATH, BODY, now=NOW)) == "1001"
    assert _code(signed_headers("stranger", SECRET, "POST", PATH, BODY, now=NOW)) == "1001"
    with pytest.raises(SignatureError):
        check_signature(headers, "POST", PATH + "/x", BODY, secret_for, now=NOW)


def test_missing_or_malformed_headers():
    headers = signed_headers("province", SECRET, "POST", PATH, BODY, now=NOW)
    for name in headers:
        partial = {k: v for k, v in headers.items() if k != name}
        assert _code(partial) == "1001"
    assert _code({**headers, "X-Sign-Method": "HMAC-MD5"}) == "1001"
    assert _code({**headers, "X-Nonce": "short"}) == "1001"
    assert _code({**headers, "X-Timestamp": "soon"}) == "1001"


def test_timestamp_window():
    headers = signed_headers("province", SECRET, "POST", PATH, BODY, now=NOW)
    assert check(headers, now=NOW + 300)[0] == "province"
    assert check(headers, now=NOW - 300)[0] == "province"
    assert _code(headers, now=NOW + 301) == "1002"
    assert _code(headers, now=NOW - 301) == "1002"
    assert _code(headers, now=NOW + 60, window=30) == "1002"


def test_bad_signature_is_reported_before_the_clock():
    headers = signed_headers("province", SECRET, "POST", PATH, BODY, now=NOW)
    headers["X-Signature"] = "0" * 64
    assert _code(headers, now=NOW + 10_000) == "1001"


def test_partner_may_require_sm3():
    def algorithm_for(app_id):
        return "HMAC-SM3"

    sha = signed_headers("province", SECRET, "POST", PATH, BODY, now=NOW)
    assert _code(sha, algorithm_for=algorithm_for) == "1001"
    sm3 = signed_headers("province", SECRET, "POST", PATH, BODY, algorithm="HMAC-SM3", now=NOW)
    assert check(sm3, algorithm_for=algorithm_for)[0] == "province"
