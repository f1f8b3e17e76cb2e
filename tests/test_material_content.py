"""Uploaded materials are what they claim: decoded at upload within the configured limits
(limits.*); a bomb, a truncated file, a huge or endless PDF, a polyglot, or a name or
declared type that disagrees with the content is 2002 with the reason, nothing stored."""

from __future__ import annotations

import contextlib
import random
import struct
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3
from sqlalchemy import func, select

from hub import ConfigError, Limits, load_config
from store.content import ContentLimits
from store.models import StoredFile
from tests import hostile
from tests.hubserver import province_env

APPLY_NO = "510000-20261122-000001"
LIMITS = {"max_material_bytes": 2 * 1024 * 1024, "max_image_pixels": 4_000_000,
          "max_pdf_pages": 20, "max_pdf_page_points": 5000}


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url, limits=LIMITS)
    yield e
    e.close()


def stored(hub) -> int:
    with hub.transaction() as s:
        return s.scalar(select(func.count()).select_from(StoredFile)) or 0


def upload(env, name: str, data: bytes, declared: str = "application/octet-stream"):
    body, content_type = urllib3.encode_multipart_formdata(
        {"apply_no": APPLY_NO, "county_code": "511702", "file": (name, data, declared)})
    return env.client.request("POST", "/api/province/v1/materials", body,
                              content_type=content_type)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` over a tiny (short) IDAT."""
    real = hostile.png(2, 2)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return real[:8] + hostile._chunk(b"IHDR", ihdr) + real[33:]


JPEG = hostile.jpeg(320, 240)
PNG = hostile.png(40, 30, noise=True)
PDF = hostile.pdf_pages(2)

HOSTILE = [
    ("bomb.png", hostile.png_bomb(3000, 3000), "像素过多"),  # 9M pixels > the 4M limit
    ("claims.png", _png_claiming(100_000, 100_000), "像素过多"),  # past Pillow's own guard
    ("truncated.jpg", JPEG[:len(JPEG) // 2], "不完整"),
    ("no-eoi.jpg", JPEG[:-2], "不完整"),
    ("truncated.png", PNG[:len(PNG) // 2], "不完整"),
    ("pages.pdf", hostile.pdf_pages(10_000), "页数过多"),
    ("huge.pdf", hostile.pdf_pages(1, box=(14400, 14400)), "尺寸超出范围"),
    ("none.pdf", b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n", "PDF"),
    ("zip.png", PNG + hostile.zip_of("a.html", b"<script>alert(1)</script>"), "ZIP"),
    ("zip.pdf", PDF + hostile.zip_of("a.html", b"<script>alert(1)</script>"), "ZIP"),
    ("pdf.jpg", hostile.jpeg_with_comment(b"%PDF-1.7 1 0 obj"), "polyglot"),
    ("html.jpg", hostile.jpeg_with_comment(b"<html><script>alert(1)</script>"), "polyglot"),
    ("tail.jpg", JPEG + b"<html><script>alert(1)</script></html>", "data after the end"),
    ("tail.png", PNG + b"%PDF-1.7 trailing", "data after the end"),
    ("contract.png", PDF, "扩展名"),
    ("photo.pdf", JPEG, "扩展名"),
    ("photo.exe", JPEG, "扩展名"),
]


@pytest.mark.parametrize("name, content, reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_content_is_refused_and_nothing_stored(env, name, content, reason):
    ans = upload(env, name, content)
    assert ans.status == 400 and ans.body["code"] == "2002", ans.body
    [err] = ans.body["errors"]
    assert err["field"] == "file" and reason in err["reason"], err
    assert stored(env.hub) == 0


def test_declared_type_must_match_the_content(env):
    ans = upload(env, "scan", PNG, declared="application/pdf")
    assert ans.status == 400 and ans.body["code"] == "2002"
    assert "声明的类型" in ans.body["errors"][0]["reason"]
    assert stored(env.hub) == 0
    ok = upload(env, "scan", JPEG, declared="image/jpg")  # an alias of image/jpeg
    assert ok.status == 200 and ok.body["data"]["content_type"] == "image/jpeg", ok.body


@pytest.mark.parametrize("name, content, content_type", [
    ("照片.JPG", JPEG, "image/jpeg"),
    ("扫描件.png", hostile.png(50, 40, noise=True, mode="RGBA"), "image/png"),
    ("合同.pdf", PDF, "application/pdf"),
    ("身份证明", JPEG, "image/jpeg"),  # no extension: the content decides
    ("mpo.jpg", JPEG + hostile.jpeg(32, 24), "image/jpeg"),  # a further picture (MPO)
    ("at-the-limit.png", hostile.png_bomb(2000, 2000), "image/png"),  # 4M pixels: allowed
    ("twenty.pdf", hostile.pdf_pages(20, box=(5000, 5000)), "application/pdf"),
])
def test_real_files_within_the_limits_are_stored(env, name, content, content_type):
    ans = upload(env, name, content)
    assert ans.status == 200 and ans.body["code"] == "0000", ans.body
    assert ans.body["data"]["content_type"] == content_type
    assert stored(env.hub) == 1
    got = env.client.fetch(ans.body["data"]["url"])
    assert got.status == 200 and got.raw == content
    assert got.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("value", ["many", 0, -5, 2.5, True])
def test_a_wrong_limit_stops_start_up_naming_the_key(make_config, sqlite_url, value):
    config = make_config(sqlite_url, limits={"max_pdf_pages": value})
    with pytest.raises(ConfigError, match=r"limits: max_pdf_pages: must be a positive"):
        load_config(config)


def test_limits_default_and_come_from_configuration(make_hub, sqlite_url):
    assert ContentLimits.of(Limits()) == ContentLimits()
    hub = make_hub(sqlite_url, limits={"max_pdf_pages": 3, "max_image_pixels": 1000})
    limits = ContentLimits.of(hub.config.limits)
    assert limits.max_pdf_pages == 3 and limits.max_image_pixels == 1000
    assert limits.max_render_pixels == ContentLimits().max_render_pixels


def test_concurrent_uploads_are_each_decoded(env):
    """PDFium is not thread-safe: many PDFs (and images) at once through the real server's
    threads are each checked and stored, the hostile ones refused, the server alive."""
    good = [("合同.pdf", hostile.pdf_pages(12)), ("照片.jpg", JPEG), ("扫描.png", PNG)]
    bad = [("pages.pdf", hostile.pdf_pages(30)), ("huge.pdf", hostile.pdf_pages(
        1, box=(9000, 9000)))]
    jobs = (good + bad) * 6
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda job: upload(env, *job), jobs))
    codes = [a.body["code"] for a in answers]
    assert codes == [("0000" if (name, data) in good else "2002") for name, data in jobs]
    assert stored(env.hub) == len(good) * 6


def test_mutated_files_are_refused_or_read_never_an_unexpected_error():
    """Random damage to real PNG, JPEG and PDF files (a fixed seed): the upload check
    accepts or refuses with a reason, the export renders or reports; nothing else."""
    from adapters.materials import MaterialError, to_jpegs
    from store import files

    seeds = [PNG, JPEG, PDF, hostile.png(30, 20, mode="RGBA")]
    rng = random.Random(20261122)
    outcomes = set()
    for _ in range(600):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            if rng.random() < 0.6:
                data[at] = rng.randrange(256)
            elif rng.random() < 0.5:
                del data[at:at + rng.randint(1, 64)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 16))
        try:
            files.check(bytes(data), 1 << 20)
            outcomes.add("accepted")
        except files.FileRejected:
            outcomes.add("refused")
        with contextlib.suppress(MaterialError):
            to_jpegs(bytes(data))
    assert outcomes == {"accepted", "refused"}
