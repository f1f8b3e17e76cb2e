"""The operators' export renders materials within bounds whatever the store holds: hostile
files (stored before the upload checks, or put into the store directly) are reported as
not rendered, and `hub.py export-manual` stays under 300 MB peak RSS (a subprocess)."""

from __future__ import annotations

import hashlib
import io
import secrets
import subprocess
import sys
import zipfile

import openpyxl
from PIL import Image

from hub import Hub, load_config
from mapping.canonical import Material
from store.models import StoredFile
from tests import hostile
from tests.county_support import new_case
from tests.support import ROOT, hub_command

MANUAL = "511725"  # 渠县: no API
MAX_RSS_KB = 300 * 1024
#: Runs the command and prints its peak RSS (KB, Linux) on the last line of stderr.
PEAK_RSS = ("import resource, subprocess, sys\n"
            "rc = subprocess.call(sys.argv[1:])\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
            "sys.exit(rc)\n")


def insert_raw(hub: Hub, data: bytes, name: str, content_type: str) -> Material:
    """A file put into the store as it is, past every upload check."""
    with hub.transaction() as s:
        row = StoredFile(file_id=secrets.token_hex(16), sha256=hashlib.sha256(data).hexdigest(),
                         content_type=content_type, size=len(data), name=name,
                         apply_no="A-0001", county_code=MANUAL, data_enc=hub.cipher.seal(data))
        s.add(row)
        s.flush()
        return Material(row.file_id, name)


def test_export_of_hostile_materials_is_bounded(make_config, store_url, tmp_path):
    config = make_config(store_url, inbound=["county_smart"])
    hub = Hub(load_config(config))
    try:
        materials = [
            # 100M pixels: under Pillow's own guard (179M), 300 MB once decoded as RGB
            insert_raw(hub, hostile.png_bomb(10_000, 10_000), "炸弹.png", "image/png"),
            insert_raw(hub, hostile.pdf_pages(10_000), "万页.pdf", "application/pdf"),
            # 200 inches a side: 900M pixels at 150 dpi
            insert_raw(hub, hostile.pdf_pages(1, box=(14400, 14400)), "巨幅.pdf",
                       "application/pdf"),
            # 4000 points a side (within the limits): rendered, scaled to the pixel bound
            insert_raw(hub, hostile.pdf_pages(1, box=(4000, 4000)), "大图.pdf",
                       "application/pdf"),
            insert_raw(hub, hostile.jpeg(200, 100), "照片.jpg", "image/jpeg"),
            # an A4 page drawing a 20000 x 20000 image (1.2 GB once inflated)
            insert_raw(hub, hostile.pdf_image_bomb(20_000, 20_000), "内嵌.pdf",
                       "application/pdf"),
            insert_raw(hub, hostile.png(300, 200, noise=True)[:5000], "截断.png", "image/png"),
        ]
        case_no = new_case(hub, "rental_filing", MANUAL, materials=materials)
    finally:
        hub.close()

    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-c", PEAK_RSS,
         *hub_command(config, "export-manual", "--county", MANUAL, "--out", str(out))],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    peak_kb = int(run.stderr.strip().splitlines()[-1])
    assert peak_kb < MAX_RSS_KB, f"peak RSS {peak_kb // 1024} MB"

    [xlsx] = out.glob("*.xlsx")
    [archive] = out.glob("*-materials.zip")
    ws = openpyxl.load_workbook(xlsx)["房屋租赁备案"]
    header = [c.value for c in ws[1]]
    cell = ws.cell(row=2, column=header.index("材料(JPG, 见压缩包)") + 1).value
    lines = cell.split("\n")
    assert lines[0].startswith("炸弹.png: 无法转换") and "像素过多" in lines[0]
    assert lines[1].startswith("万页.pdf: 无法转换") and "页数过多" in lines[1]
    assert lines[2].startswith("巨幅.pdf: 无法转换") and "尺寸超出范围" in lines[2]
    assert lines[3:6] == [f"{case_no}/04-大图.jpg", f"{case_no}/05-照片.jpg",
                          f"{case_no}/06-内嵌.jpg"]
    assert lines[6].startswith("截断.png: 无法转换"), lines[6]
    with zipfile.ZipFile(archive) as z:
        assert z.namelist() == lines[3:6]
        with Image.open(io.BytesIO(z.read(lines[3]))) as page:
            assert page.format == "JPEG"
            assert page.width * page.height <= 16_000_000 and page.width > 3000
