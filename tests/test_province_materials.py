"""Materials: PDF, JPEG and PNG only (by content), size-limited, sealed at rest with a
content hash, served to signed callers only, and carried to the county with the case."""

from __future__ import annotations

import base64
import hashlib

import pytest
from sqlalchemy import func, select

from store.models import Case, StoredFile
from tests import hostile
from tests.hubserver import application, province_env

PNG = hostile.png(32, 24, noise=True)  # real files: uploads are decoded
PDF = hostile.pdf_pages(1)
APPLY_NO = "510000-20261122-000001"


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url, limits={"max_material_bytes": 64 * 1024})
    yield e
    e.close()


def stored(hub) -> int:
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(StoredFile)) or 0


def test_upload_store_sealed_and_serve_to_signed_callers_only(env):
    ans = env.client.upload(APPLY_NO, "511702", "身份证明.png", PNG)
    assert ans.status == 200 and ans.body["code"] == "0000", ans.body
    data = ans.body["data"]
    assert data["sha256"] == hashlib.sha256(PNG).hexdigest() and data["size"] == len(PNG)
    assert data["content_type"] == "image/png"
    with env.hub.transaction() as s:
        row = s.scalars(select(StoredFile)).one()
        assert row.file_id == data["file_id"] and row.name == "身份证明.png"
        assert PNG[16:64] not in row.data_enc  # sealed at rest
    got = env.client.fetch(data["url"])
    assert got.status == 200 and got.raw == PNG
    assert got.headers["Content-Type"] == "image/png"
    unsigned = env.client.fetch(data["url"], sign=False)
    assert unsigned.status == 401 and unsigned.body["code"] == "1001"
    assert PNG[16:64] not in unsigned.raw
    # a county may read its own county's materials, not another's
    own = env.client.fetch(data["url"], app_id="county_511702",
                           secret=b"secret-county_511702-0123456789")
    assert own.status == 200 and own.raw == PNG
    other = env.client.fetch(data["url"], app_id="county_511703",
                             secret=b"secret-county_511703-0123456789")
    assert other.status == 403 and other.body["code"] == "1004"
    missing = env.client.fetch(data["url"].rsplit("/", 1)[0] + "/nope")
    assert missing.status == 404 and missing.body["code"] == "4001"


@pytest.mark.parametrize("name, content, reason", [
    ("fake.png", b"MZ\x90\x00 this is an executable", "only PDF, JPEG and PNG"),
    ("note.pdf", b"plain text pretending to be a pdf", "only PDF, JPEG and PNG"),
    ("empty.jpg", b"", "empty"),
    ("big.pdf", b"%PDF-" + b"0" * (64 * 1024), "larger than"),
])
def test_refused_by_content_or_size(env, name, content, reason):
    ans = env.client.upload(APPLY_NO, "511702", name, content)
    assert ans.status == 400 and ans.body["code"] == "2002"
    [err] = ans.body["errors"]
    assert err["field"] == "file" and reason in err["reason"]
    assert stored(env.hub) == 0


def test_upload_field_errors(env):
    ans = env.client.upload(None, "440703", "a.pdf", None)
    assert ans.status == 400 and ans.body["code"] == "2004"
    assert sorted(e["field"] for e in ans.body["errors"]) == ["apply_no", "county_code", "file"]
    body_too_big = env.client.upload(APPLY_NO, "511702", "a.pdf", b"%PDF-" + b"0" * 200_000)
    assert body_too_big.status == 400 and body_too_big.body["code"] == "2001"
    not_multipart = env.client.request("POST", "/api/province/v1/materials", b"%PDF-1.4",
                                       content_type="application/pdf")
    assert not_multipart.status == 400 and not_multipart.body["code"] == "2001"
    assert stored(env.hub) == 0


def test_materials_travel_to_the_county_with_the_case(env):
    png = env.client.upload(APPLY_NO, "511702", "身份证明.png", PNG).body["data"]
    pdf = env.client.upload(APPLY_NO, "511702", "合同.pdf", PDF).body["data"]
    body = application()
    body["materials"] = [{"file_id": png["file_id"], "name": "身份证明.png"},
                         {"file_id": pdf["file_id"], "name": "合同.pdf"}]
    ans = env.client.submit("rental_filing", body)
    assert ans.status == 200 and ans.body["code"] == "0000", ans.body
    env.drain()
    [(_, delivered, _)] = env.county.state.received
    got = {m["name"]: m for m in delivered["materials"]}
    assert base64.b64decode(got["身份证明.png"]["content_base64"]) == PNG
    assert base64.b64decode(got["合同.pdf"]["content_base64"]) == PDF
    assert got["合同.pdf"]["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert got["合同.pdf"]["content_type"] == "application/pdf"


def test_unknown_or_foreign_material_is_a_field_error(env):
    other = env.client.upload("another-apply-no", "511702", "x.png", PNG).body["data"]
    body = application()
    body["materials"] = [{"file_id": "no-such-file", "name": "a.png"},
                         {"file_id": other["file_id"], "name": "x.png"}]
    ans = env.client.submit("rental_filing", body)
    assert ans.status == 400 and ans.body["code"] == "2002"
    assert [e["field"] for e in ans.body["errors"]] == ["materials[0].file_id",
                                                        "materials[1].file_id"]
    with env.hub.transaction() as s:
        assert s.scalars(select(Case.stage)).all() == ["validation_failed"]
