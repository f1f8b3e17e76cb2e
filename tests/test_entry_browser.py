"""The applicant's journey at 375 px (and 1366×768) in Debian's chromium: handed over
from the simulated province portal, fill in, upload a PDF, submit, receipt; the case is
delivered to the simulated county and its stages reach the simulated province under the
handed-over apply_no."""

from __future__ import annotations

import re
import shutil

import pytest

from adapters.sim.county import CountySim, SimConfig
from adapters.sim.province import ProvinceSim
from tests.county_support import secret, served
from tests.hostile import pdf_pages
from tests.support import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
sync_api = pytest.importorskip("playwright.sync_api")
COUNTY = "511702"
FORM = {"lessee_name": "李四", "lessee_id_no": "11010519491231002X", "lessor_name": "王五",
        "lessor_id_no": "110105198001011238", "house_id": "H-375", "address": "通川区朝阳路1号"}
STAGES = ["accepted", "approved", "completed"]


@pytest.fixture
def world(make_hub, sqlite_url):
    province = ProvinceSim(secret("province")).start()
    county = CountySim(SimConfig(hub_url="http://127.0.0.1:9",
                                 secrets={COUNTY: secret(f"county_{COUNTY}")},
                                 delays=(0.05, 0.05, 0.05))).start()
    partners = {f"county_{COUNTY}": {"base_url": county.county_url(COUNTY), "division": COUNTY},
                "province": {"base_url": province.base_url}}
    hub = make_hub(sqlite_url, inbound=["province", "county_smart", "entry"], partners=partners)
    hub.start_workers(2)
    with served(hub) as url:
        county.config.hub_url = url
        province.portal_hub_url = url
        yield hub, url, county, province
    county.stop()
    province.stop()


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _fits(page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


@pytest.mark.parametrize("size", [(375, 740), (1366, 768)])
def test_applicant_journey(world, browser, tmp_path, size):
    hub, url, county, province = world
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(province.url + "/portal")
    page.click("#go-rental_filing")
    page.wait_for_selector("#confirm-form")  # the applicant confirms in this browser
    assert "张三" in page.inner_text("#handover")
    _fits(page, size[0])
    page.fill("#confirm-form [name=id_tail]", "002X")
    page.click("#confirm-submit")
    page.wait_for_selector("#apply-form")
    assert page.url == url + "/entry/s/form"
    apply_no = page.inner_text("#apply-no")
    assert re.fullmatch(r"510000-\d{8}-W[0-9A-F]{8}", apply_no)
    assert "张三" in page.inner_text("#handover") and "房屋租赁备案" in page.inner_text("h1")
    assert "11010519491231002X" not in page.content()  # the ID number is shown masked
    _fits(page, size[0])
    pdf = tmp_path / "租赁合同.pdf"
    pdf.write_bytes(pdf_pages(1))
    page.set_input_files("#upload-form input[type=file]", str(pdf))
    page.click("#upload-submit")
    page.wait_for_selector("#materials li:text('租赁合同.pdf')")
    for field, value in FORM.items():
        page.fill(f"#apply-form [name={field}]", value)
    page.click("#apply-submit")
    page.wait_for_selector("#case-no")
    _fits(page, size[0])
    case_no = page.inner_text("#case-no")
    [sub_no] = page.locator(".sub-case-no").all_inner_texts()
    assert case_no != sub_no

    def stages() -> list[dict]:
        return sorted((p.body for p in province.state.pushes("status")
                       if p.body.get("case_no") == sub_no), key=lambda b: b["at"])

    wait_until(lambda: sorted(b["stage"] for b in stages()) == sorted(STAGES) or None,
               timeout=30, what="受理/审批/办结 pushed to the province")
    assert {b["apply_no"] for b in stages()} == {apply_no}
    [delivered] = [r for r in county.received if r.body.get("case_no") == sub_no]
    assert delivered.body["apply_no"] == apply_no and delivered.body["materials"]
    # the portal's button again (the same page, the same token): refused, nothing new
    page.goto(province.url + "/portal")
    page.go_back()
    page.reload()
    assert page.locator("#case-no").count() == 1
