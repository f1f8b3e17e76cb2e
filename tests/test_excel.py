"""The manual-Excel fallback: export the work queue, fill it in as an operator would,
import it — stages recorded and queued for the province; one bad row applies nothing."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime

import openpyxl
import pytest
from PIL import Image

from adapters.manual_excel import (
    SOURCE,
    SPARE_ROWS,
    StageRefused,
    export_workbook,
    import_workbook,
    mark_stage,
    work_queue,
)
from mapping.canonical import Material
from mapping.excel import OPERATOR_STAGES
from store import files
from store.models import Case
from tests.county_support import ID_NO, case_of, new_case, province_messages, stages_of

MANUAL = "511725"  # 渠县: no API


@pytest.fixture
def hub(make_hub, store_url):
    return make_hub(store_url, inbound=["county_smart"])


def image_bytes(fmt: str, color=(10, 120, 200), size=(60, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def pdf_two_pages() -> bytes:
    out = io.BytesIO()
    first = Image.new("RGB", (200, 280), (255, 255, 255))
    first.save(out, "PDF", save_all=True, append_images=[Image.new("RGB", (200, 280), (0, 0, 0))])
    return out.getvalue()


def upload(hub, data: bytes, name: str) -> Material:
    with hub.transaction() as s:
        info = files.save(s, hub.cipher, data, name, max_bytes=10 << 20, apply_no="A-0001",
                          county_code=MANUAL)
    return Material(info.file_id, name)


def sheet_rows(xlsx: bytes, title: str):
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = wb[title]
    header = [c.value for c in ws[1]]
    return wb, ws, header


def fill(ws, header, row: int, **values) -> None:
    labels = {"new_stage": "新环节", "at": "办理时间", "operator": "经办人", "opinion": "意见",
              "filing_no": "备案号", "result": "结果"}
    for key, value in values.items():
        ws.cell(row=row, column=header.index(labels[key]) + 1).value = value


def save(wb) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def test_material_names_in_the_zip_hold_no_control_or_format_character(hub):
    """A right-to-left override in a material's name would show "合同gpj.exe" as
    "合同exe.jpg" in a clerk's file manager; a line break would split the path."""
    spoof = upload(hub, image_bytes("PNG"), "../合同\u202egpj.exe.png")
    rare = upload(hub, image_bytes("PNG"), "\ue000\U00031350证明.png")  # 生僻字: kept
    # what Windows' zip extractor refuses in a name: it refused the whole archive
    windows = upload(hub, image_bytes("PNG"), 'x")<img src=x>:?*|. .png')
    case_no = new_case(hub, "rental_filing", MANUAL, materials=[spoof, rare, windows])
    xlsx, archive = export_workbook(hub, MANUAL, "rental_filing")
    names = [f"{case_no}/01-合同gpj.exe.jpg", f"{case_no}/02-\ue000\U00031350证明.jpg",
             f"{case_no}/03-x_)_img src=x_____.jpg"]
    assert zipfile.ZipFile(io.BytesIO(archive)).namelist() == names
    _, ws, header = sheet_rows(xlsx, "房屋租赁备案")
    assert ws.cell(row=2, column=header.index("材料(JPG, 见压缩包)") + 1).value.split("\n") == names
    # without the zip, the workbook lists the names as shown
    bare, _ = export_workbook(hub, MANUAL, "rental_filing", with_materials=False)
    _, ws, header = sheet_rows(bare, "房屋租赁备案")
    cell = ws.cell(row=2, column=header.index("材料(JPG, 见压缩包)") + 1).value
    assert "\u202e" not in cell and "合同gpj.exe.png" in cell and "\U00031350" in cell


def test_export_layout_masking_and_materials(hub):
    pdf = upload(hub, pdf_two_pages(), "购房合同.pdf")
    png = upload(hub, image_bytes("PNG"), "身份证明.png")
    case_no = new_case(hub, "rental_filing", MANUAL, materials=[pdf, png])
    new_case(hub, "rental_filing", "511702", apply_no="A-AUTO")  # auto: not in the queue

    xlsx, archive = export_workbook(hub, MANUAL, "rental_filing")
    wb, ws, header = sheet_rows(xlsx, "房屋租赁备案")
    assert ws.max_row == 2 and ws.freeze_panes == "B2"
    row = {h: c.value for h, c in zip(header, ws[2], strict=True)}
    assert row["案件编号"] == case_no and row["区县"] == MANUAL and row["申请人"] == "张三"
    assert row["证件号码"] == "110105********002X" and ID_NO not in str(list(ws.values))
    assert row["联系电话"] == "138****8000" and row["收件时间"] == "2026-11-22 10:00:00"
    assert row["当前环节"] == "申请" and row["承租人证件号"] == "110105********002X"
    assert ws.column_dimensions["A"].width == 24
    [dv] = ws.data_validations.dataValidation
    letter = openpyxl.utils.get_column_letter(header.index("新环节") + 1)
    assert str(dv.sqref) == f"{letter}2:{letter}{2 + SPARE_ROWS}"
    assert dv.formula1 == '"' + ",".join(OPERATOR_STAGES) + '"'

    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert names == [f"{case_no}/01-购房合同-p1.jpg", f"{case_no}/01-购房合同-p2.jpg",
                     f"{case_no}/02-身份证明.jpg"]
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        for name in names:
            with Image.open(io.BytesIO(z.read(name))) as img:
                assert img.format == "JPEG"
    assert row["材料(JPG, 见压缩包)"].split("\n") == names

    clear, _ = export_workbook(hub, MANUAL, show_personal_data=True, with_materials=False)
    _, ws2, header2 = sheet_rows(clear, "房屋租赁备案")
    assert ws2.cell(row=2, column=header2.index("证件号码") + 1).value == ID_NO


def test_round_trip_applies_stages_and_queues_province(hub):
    rental = new_case(hub, "rental_filing", MANUAL, apply_no="A-1")
    survey = new_case(hub, "survey_review", MANUAL, apply_no="A-2",
                      data={"enterprise_name": "达州测绘", "project_name": "凤凰城"})
    untouched = new_case(hub, "survey_review", MANUAL, apply_no="A-3",
                         data={"enterprise_name": "达州测绘", "project_name": "西外"})
    verify = new_case(hub, "presale_contract_verify", MANUAL, apply_no="A-4")

    xlsx, _ = export_workbook(hub, MANUAL)
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    assert wb.sheetnames == ["商品房预售合同备案核验", "房屋租赁备案", "房屋产权面积测绘成果审核"]
    ws = wb["房屋租赁备案"]
    header = [c.value for c in ws[1]]
    fill(ws, header, 2, new_stage="受理", operator="赵", at=datetime(2026, 11, 23, 9, 0))
    # a further stage for the same case: the operator copies the row below
    ws.append([c.value for c in ws[2]])
    fill(ws, header, 3, new_stage="办结", operator="赵", at="2026-11-24 09:00:00",
         filing_no="ZL-511725-0001", opinion="准予备案")
    ws = wb["房屋产权面积测绘成果审核"]
    header = [c.value for c in ws[1]]
    fill(ws, header, 2, new_stage="不予受理", opinion="材料不全")
    ws = wb["商品房预售合同备案核验"]
    header = [c.value for c in ws[1]]
    fill(ws, header, 2, new_stage="受理")
    ws.append([c.value for c in ws[2]])
    fill(ws, header, 3, new_stage="办结", result='{"filed": true}')

    report = import_workbook(hub, save(wb), operator="admin01")
    assert report.errors == [] and report.applied == 5

    assert stages_of(hub, rental) == ["accepted", "completed"]
    assert stages_of(hub, survey) == ["rejected"] and stages_of(hub, untouched) == []
    assert case_of(hub, rental).stage == "completed"
    pushed = province_messages(hub, case_no=rental)
    assert [(p["stage"], p["at"], p["operator"], p["filing_no"]) for p in pushed] == [
        ("accepted", "2026-11-23T01:00:00+00:00", "赵", None),
        ("completed", "2026-11-24T01:00:00+00:00", "赵", "ZL-511725-0001"),
    ]
    [rejected] = province_messages(hub, case_no=survey)
    assert rejected["operator"] == "admin01" and rejected["opinion"] == "材料不全"
    [result] = province_messages(hub, "results")
    assert result["case_no"] == verify and result["data"] == {"filed": True}

    # the same workbook again changes nothing: the repeats are skipped
    before = len(province_messages(hub))
    again = import_workbook(hub, save(wb), operator="admin01")
    assert again.errors == [] and again.applied == 0 and len(again.skipped) == 5
    assert len(province_messages(hub)) == before
    # and the closed cases left the work queue
    with hub.transaction() as s:
        assert [c.case_no for c in s.scalars(work_queue(MANUAL))] == [untouched]


def test_one_bad_row_applies_nothing_and_names_it(hub):
    good = new_case(hub, "rental_filing", MANUAL, apply_no="B-1")
    other = new_case(hub, "rental_filing", MANUAL, apply_no="B-2")
    xlsx, _ = export_workbook(hub, MANUAL, "rental_filing")
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = wb["房屋租赁备案"]
    header = [c.value for c in ws[1]]
    rows = {ws.cell(row=r, column=1).value: r for r in (2, 3)}
    fill(ws, header, rows[good], new_stage="受理")
    fill(ws, header, rows[other], new_stage="受理")
    ws.append([c.value for c in ws[rows[other]]])
    fill(ws, header, 4, new_stage="办结")  # no filing number
    report = import_workbook(hub, save(wb), operator="admin01")
    assert report.applied == 0
    assert report.errors == [
        ("房屋租赁备案", 4, "备案号：新环节为「办结」的备案类事项必须填写备案号")]
    assert stages_of(hub, good) == [] and stages_of(hub, other) == []
    assert province_messages(hub) == []

    # unknown case and a stage that cannot follow: both named, still nothing applied
    fill(ws, header, 4, new_stage="审批", filing_no=None)
    ws.cell(row=4, column=1, value=other)
    ws.append([c.value for c in ws[2]])
    ws.cell(row=5, column=1, value="511725209901019999")
    fill(ws, header, rows[other], new_stage=None)  # so 审批 comes before any 受理
    report = import_workbook(hub, save(wb), operator="admin01")
    assert report.applied == 0
    [(_, four, follow), (_, five, unknown)] = report.errors
    assert (four, five) == (4, 5)
    assert follow.startswith("新环节「审批」不能接在当前环节「申请」之后，请按")
    assert unknown.startswith("案件编号：没有案件 511725209901019999，请核对")
    assert stages_of(hub, good) == [] and province_messages(hub) == []

    bad_cell = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = bad_cell["房屋租赁备案"]
    fill(ws, header, 2, new_stage="办完了")
    report = import_workbook(hub, save(bad_cell), operator="admin01")
    assert report.applied == 0 and report.errors[0][:2] == ("房屋租赁备案", 2)
    assert "办完了" in report.errors[0][2]
    assert "请从下拉列表选择：受理、审批、办结、不予受理" in report.errors[0][2]
    assert import_workbook(hub, b"not a workbook", "admin01").errors[0][2].startswith("不是 Excel")


def test_mark_stage_as_a_callback_would(hub):
    case_no = new_case(hub, "maintenance_fund_deposit", MANUAL, apply_no="WX-1", data={})
    assert mark_stage(hub, case_no, "accepted", "admin01").recorded
    with pytest.raises(StageRefused) as refused:
        mark_stage(hub, case_no, "finished", "admin01")
    assert refused.value.errors[0][0] == "stage"
    early = mark_stage(hub, case_no, "accepted", "admin01")
    assert not early.recorded and early.duplicate
    assert mark_stage(hub, case_no, "completed", "admin01", opinion="已交存").recorded
    late = mark_stage(hub, case_no, "approved", "admin01")
    assert not late.recorded and "completed" in late.reason
    with pytest.raises(LookupError):
        mark_stage(hub, "nope", "accepted", "admin01")
    assert [p["stage"] for p in province_messages(hub)] == ["accepted", "completed"]
    assert stages_of(hub, case_no) == ["accepted", "completed"]


def test_bulk_stages_match_callbacks_one_by_one(hub):
    """plan_stages + write_stages (an import) decide and write exactly what apply_stage
    (a county callback) does report by report: outcomes, events, case stages, outbox rows."""
    from sqlalchemy import select

    from adapters.county_stages import StageReport, apply_stage, plan_stages, write_stages
    from store.models import OutboxMessage, StageEvent

    t = [datetime(2026, 11, 23, h, 0) for h in range(1, 9)]
    script = [  # (case, report): repeats, approved twice, closed cases, stages out of order
        (0, StageReport("accepted", t[0], "赵")),
        (0, StageReport("accepted", t[1], "钱")),  # a repeat of the last event
        (0, StageReport("approved", t[1], "赵", opinion="同意")),
        (0, StageReport("approved", t[1], "赵", opinion="同意")),  # same time and operator
        (0, StageReport("approved", t[2], "孙")),  # another approval: a new event
        (0, StageReport("completed", t[3], "赵", filing_no="ZL-1")),
        (0, StageReport("accepted", t[4], "赵")),  # closed, seen before
        (0, StageReport("rejected", t[4], "赵")),  # closed, never seen
        (1, StageReport("approved", t[0], "李")),  # cannot follow received
        (1, StageReport("rejected", t[1], "李", opinion="材料不全")),
        (2, StageReport("accepted", t[0], None)),
        (2, StageReport("completed", t[1], "周", result={"filed": True})),
        (3, StageReport("completed", t[5], "吴", result={"n": 1})),  # already accepted
    ]
    items = ["rental_filing", "rental_filing", "presale_contract_verify",
             "presale_contract_verify"]

    def open_set(prefix):
        numbers = [new_case(hub, item, MANUAL, apply_no=f"{prefix}-{i}")
                   for i, item in enumerate(items)]
        with hub.transaction() as s:  # case 3 was accepted by an earlier callback
            apply_stage(s, hub, s.scalars(select(Case).where(Case.case_no == numbers[3])).one(),
                        StageReport("accepted", t[0], "吴"), source=SOURCE)
        return numbers

    def rows_of(numbers):
        with hub.transaction() as s:
            cases = {c.id: c for c in s.scalars(select(Case).where(Case.case_no.in_(numbers)))}
            index = {cid: numbers.index(c.case_no) for cid, c in cases.items()}
            def result(e):
                return None if e.result_enc is None else hub.cipher.open_json(e.result_enc)

            events = [(index[e.case_id], e.stage, e.at, e.operator, e.opinion, e.filing_no,
                       e.source, result(e))
                      for e in s.scalars(select(StageEvent).where(StageEvent.case_id.in_(cases))
                                         .order_by(StageEvent.id))]
            stages = [cases[cid].stage for cid in sorted(cases, key=index.get)]
            outbox = []
            for m in s.scalars(select(OutboxMessage).where(OutboxMessage.case_id.in_(cases))
                               .order_by(OutboxMessage.id)):
                payload = hub.cipher.open_json(m.payload_enc)
                payload.update(case_no=index[m.case_id], apply_no=None)
                outbox.append((index[m.case_id], m.interface, m.adapter, m.partner, m.operation,
                               m.division, m.item, m.status, m.attempts, m.max_attempts,
                               m.min_backoff, m.max_backoff, m.timeout, m.resubmit_count,
                               m.next_attempt_at == m.created_at, payload))
            return events, stages, outbox

    one_by_one, bulk = open_set("S"), open_set("B")
    outcomes = []
    for i, report in script:
        with hub.transaction() as s:
            case = s.scalars(select(Case).where(Case.case_no == one_by_one[i])).one()
            o = apply_stage(s, hub, case, report, source=SOURCE)
            outcomes.append((o.recorded, o.duplicate, o.reason))
    with hub.transaction() as s:
        cases = {c.case_no: c for c in s.scalars(select(Case).where(Case.case_no.in_(bulk)))}
        planned = plan_stages(s, [(cases[bulk[i]], report) for i, report in script])
        assert write_stages(s, hub, planned, source=SOURCE) == sum(o[0] for o in outcomes)
    assert [(p.recorded, p.duplicate, p.reason) for p in planned] == outcomes
    assert [p.seen_before for p in planned if not p.recorded] == [
        True, True, True, False, False]
    assert rows_of(bulk) == rows_of(one_by_one)
    assert rows_of(bulk)[1] == ["completed", "rejected", "completed", "completed"]


def test_a_workbook_that_unpacks_too_large_is_refused_unread(hub):
    """A zip bomb: a real export whose sheet is padded to past MAX_WORKBOOK_UNPACKED."""
    from adapters.manual_excel import MAX_WORKBOOK_UNPACKED

    case_no = new_case(hub, "rental_filing", MANUAL)
    xlsx, _ = export_workbook(hub, MANUAL, with_materials=False)
    wb, ws, header = sheet_rows(xlsx, "房屋租赁备案")
    fill(ws, header, 2, new_stage="受理", at="2026-11-23 09:00:00", operator="王窗口")
    filled = save(wb)
    bomb = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(filled)) as src, \
            zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        with out.open("xl/padding.xml", "w") as pad:
            for _ in range(MAX_WORKBOOK_UNPACKED // (1 << 20) + 1):
                pad.write(b" " * (1 << 20))
    assert len(bomb.getvalue()) < 2 << 20  # small on the wire
    report = import_workbook(hub, bomb.getvalue(), "operator")
    [(sheet, row, reason)] = report.errors
    assert (sheet, row) == ("", 0)
    assert reason.startswith("工作簿内容过多（约 161.1 MB，最多 160 MB）")
    assert report.applied == 0 and stages_of(hub, case_no) == []
    assert import_workbook(hub, b"PK\x03\x04 not a zip", "operator").errors[0][2] \
        .startswith("不是 Excel 工作簿（.xlsx），请选择")
    assert import_workbook(hub, filled, "operator").applied == 1  # the same, unpadded


def test_a_row_bomb_is_refused_as_a_whole(hub):
    """A small file of a great many rows (3.5 million empty rows in 226 KB took an
    import 51 s and 0.4 GB): past MAX_IMPORT_ROWS the workbook is refused with a
    Chinese error and nothing of it is applied, even a filled row before the limit."""
    from adapters.manual_excel import MAX_IMPORT_ROWS

    case_no = new_case(hub, "rental_filing", MANUAL, apply_no="BOMB-1")
    xlsx, _ = export_workbook(hub, MANUAL, "rental_filing", with_materials=False)
    template = openpyxl.load_workbook(io.BytesIO(xlsx))
    header = [c.value for c in template["房屋租赁备案"][1]]
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("房屋租赁备案")
    ws.append(header)
    filled = [None] * len(header)
    filled[header.index("案件编号")] = case_no
    filled[header.index("新环节")] = "受理"
    ws.append(filled)
    for _ in range(MAX_IMPORT_ROWS):
        ws.append([None])
    report = import_workbook(hub, save(wb), operator="admin01")
    assert report.applied == 0 and len(report.errors) == 1
    sheet, row, why = report.errors[0]
    assert (sheet, row) == ("房屋租赁备案", MAX_IMPORT_ROWS + 2) and "分批" in why
    assert stages_of(hub, case_no) == []


def _with_part(xlsx: bytes, name: str, data: bytes) -> bytes:
    """``xlsx`` with the part ``name`` replaced by (or added as) ``data``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info))
        dst.writestr(name, data)
    return out.getvalue()


def _styles_bomb(styles: bytes, size: int) -> bytes:
    """A valid styles part grown past ``size`` by one font repeated (openpyxl makes an
    object of each: 97 MB of them took 55 s and 3.1 GB)."""
    font = b'<font><sz val="11"/><name val="Calibri"/></font>'
    head, sep, tail = styles.partition(b"</fonts>")
    assert sep, styles[:200]
    return head + font * (size // len(font) + 1) + sep + tail


def test_a_styles_bomb_or_an_oversized_part_is_refused_unread(hub):
    """Each part openpyxl reads whole has a limit of its own, below the workbook's: a
    few hundred KB on the wire can unpack to a styles part that costs openpyxl
    gigabytes, well within the 160 MB of the whole workbook. Refused before openpyxl
    reads it, nothing applied, with what the clerk can do; a part just within its limit
    is still read."""
    from adapters.manual_excel import MAX_SHARED_STRINGS, MAX_WHOLE_PART

    case_no = new_case(hub, "rental_filing", MANUAL)
    xlsx, _ = export_workbook(hub, MANUAL, with_materials=False)
    wb, ws, header = sheet_rows(xlsx, "房屋租赁备案")
    fill(ws, header, 2, new_stage="受理", at="2026-11-23 09:00:00", operator="王窗口")
    filled = save(wb)
    with zipfile.ZipFile(io.BytesIO(filled)) as z:
        styles = z.read("xl/styles.xml")
    bomb = _with_part(filled, "xl/styles.xml", _styles_bomb(styles, MAX_WHOLE_PART))
    assert len(bomb) < 1 << 20  # small on the wire
    [(sheet, row, reason)] = import_workbook(hub, bomb, "operator").errors
    assert (sheet, row) == ("", 0)
    assert reason.startswith("工作簿的格式或附加内容过多（约 16.1 MB，最多 16 MB），未导入任何行；"
                             "请在 Excel 中清除多余的单元格格式后另存"), reason
    # the shared strings past theirs (read whole, each a Python string)
    strings = (b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
               + b"<si/>" * (MAX_SHARED_STRINGS // 5 + 1) + b"</sst>")
    padded = _with_part(filled, "xl/sharedStrings.xml", strings)
    [(_, _, reason)] = import_workbook(hub, padded, "operator").errors
    assert reason.startswith("工作簿内容过多（约 64.1 MB，最多 64 MB），未导入任何行；"
                             "请按区县或事项分批导出、填写和导入"), reason
    assert stages_of(hub, case_no) == []
    # just within the limit: read, and the filled row applied
    within = _with_part(filled, "xl/styles.xml",
                        _styles_bomb(styles, MAX_WHOLE_PART // 2))
    assert import_workbook(hub, within, "operator").applied == 1
    assert stages_of(hub, case_no) == ["accepted"]


def test_a_cell_longer_than_excel_holds_is_cut_saying_so(hub):
    """A 商品房预售许可申请 may list 2,000 house ids of up to 64 characters: joined, far past
    the 32,767 characters of an Excel cell, where openpyxl cuts a text without a word.
    The exported cell fits and ends saying that it was cut, how long the whole was and
    where to read it; a cell that fits is exported whole."""
    CELL_MAX = 32_767  # noqa: N806  (Excel's own limit, not the module's constant)

    ids = [f"H{n:04d}-" + "栋" * 58 for n in range(2000)]
    data = {"developer_name": "达州某某置业有限公司", "developer_uscc": "91511700MA62XXXX0X",
            "presale_scope": "1-3 号楼", "address": "通川区朝阳路1号", "house_ids": ids}
    new_case(hub, "presale_permit_application", MANUAL, apply_no="LONG-1", data=data)
    new_case(hub, "presale_permit_application", MANUAL, apply_no="SHORT-1",
             data={**data, "house_ids": ids[:3]})
    xlsx, _ = export_workbook(hub, MANUAL, "presale_permit_application", with_materials=False)
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    [ws] = wb.worksheets
    header = [c.value for c in ws[1]]
    column = header.index("房屋编号清单")
    cells = {row[3]: row[column] for row in ws.iter_rows(min_row=2, values_only=True)
             if row[3]}
    joined = "、".join(ids)
    long = cells["LONG-1"]
    head = long.split("……（")[0]
    assert CELL_MAX - 100 < len(long) <= CELL_MAX and joined.startswith(head)
    assert head.endswith("、") and head[:-1].split("、")[-1] in ids  # no id cut in half
    assert long.endswith(f"共 {len(joined)} 字，完整内容见案件详情）")
    assert cells["SHORT-1"] == "、".join(ids[:3])


@pytest.mark.parametrize(("at", "said"), [
    # a clerk's 2062 for 2026: later than now
    ("2062-11-23 09:00:00", "办理时间：晚于当前时间，请填写实际办理的时间"),
    # a clerk's 1026 for 2026: before the application was even submitted (it had been
    # recorded as an on-time 受理)
    ("1026-11-23 09:00:00", "办理时间：早于本案申请时间（2026-11-22 10:00:00）"),
], ids=["ahead-of-the-clock", "before-the-case"])
def test_a_stage_time_that_cannot_be_is_a_row_error_in_chinese(hub, at, said):
    """The row is named with what to do, nothing of the workbook applied."""
    case_no = new_case(hub, "rental_filing", MANUAL, apply_no="TIME-X")
    xlsx, _ = export_workbook(hub, MANUAL, with_materials=False)
    wb, ws, header = sheet_rows(xlsx, "房屋租赁备案")
    fill(ws, header, 2, new_stage="受理", at=at, operator="王窗口")
    report = import_workbook(hub, save(wb), "operator")
    [(sheet, row, reason)] = report.errors
    assert (sheet, row) == ("房屋租赁备案", 2)
    assert reason.startswith(said), reason
    assert report.applied == 0 and stages_of(hub, case_no) == []


def _rewrite(xlsx: bytes, name: str, change) -> bytes:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(io.BytesIO(xlsx)) as z:
        return _with_part(xlsx, name, change(z.read(name)))


def _with_strings(xlsx: bytes, entries: bytes) -> bytes:
    """``xlsx`` with a shared-strings table of ``entries``, declared in its content types
    (openpyxl wrote the cells' text inline: none was there)."""
    strings = (b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
               + entries + b"</sst>")
    return _rewrite(_with_part(xlsx, "xl/sharedStrings.xml", strings), "[Content_Types].xml",
                    lambda xml: xml.replace(b"</Types>", (
                        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
                        b"</Types>")))


def _filled(hub) -> tuple[str, bytes]:  # type: ignore[no-untyped-def]
    """A 渠县 case and the export with its row filled 受理, as a clerk fills it."""
    case_no = new_case(hub, "rental_filing", MANUAL, apply_no="F-1")
    xlsx, _ = export_workbook(hub, MANUAL, with_materials=False)
    wb, ws, header = sheet_rows(xlsx, "房屋租赁备案")
    fill(ws, header, 2, new_stage="受理", at="2026-11-23 09:00:00", operator="王窗口")
    return case_no, save(wb)


def test_many_sheets_naming_one_part_are_refused_before_it_is_read(hub):
    """openpyxl reads a sheet's part once for every sheet that names it: 25 sheets
    naming one 60 MB part (a 63 KB upload) took 29 s each. Counted as openpyxl finds
    them, each sheet's part against the workbook's limit; too many sheets are refused."""
    import re as _re

    case_no, filled = _filled(hub)

    def sheets(count: int):  # type: ignore[no-untyped-def]
        def change(xml: bytes) -> bytes:
            one = _re.search(rb"<sheet [^>]*/>", xml).group(0)
            many = b"".join(one.replace(b'sheetId="1"', b'sheetId="%d"' % (n + 1))
                            .replace("房屋租赁备案".encode(), f"表{n}".encode())
                            for n in range(count))
            return xml.replace(one, many)
        return change

    padded = _rewrite(filled, "xl/worksheets/sheet1.xml",
                      lambda xml: xml.replace(b"</worksheet>", b"<!--" + b" " * (20 << 20)
                                              + b"--></worksheet>"))
    bomb = _rewrite(padded, "xl/workbook.xml", sheets(9))  # 9 x 20 MB to read: 180 MB
    assert len(bomb) < 1 << 20
    [(_, _, reason)] = import_workbook(hub, bomb, "operator").errors
    assert reason.startswith("工作簿的工作表过多（9 个、约 180.1 MB；最多 64 个、160 MB）"), reason
    [(_, _, reason)] = import_workbook(
        hub, _rewrite(filled, "xl/workbook.xml", sheets(65)), "operator").errors
    assert reason.startswith("工作簿的工作表过多（65 个"), reason
    assert stages_of(hub, case_no) == []
    assert import_workbook(hub, padded, "operator").applied == 1  # one sheet: read


def test_an_unreadable_cell_names_its_row_and_applies_nothing(hub):
    """A cell no Excel writes (a boolean of "x") raised inside openpyxl while the rows
    were read: the job ended 「内部错误」. Now the row is named, in Chinese."""
    case_no, filled = _filled(hub)
    bad = _rewrite(filled, "xl/worksheets/sheet1.xml", lambda xml: xml.replace(
        b"</row>", b'<c r="ZZ2" t="b"><v>x</v></c></row>', 2).replace(
        b'<c r="ZZ2" t="b"><v>x</v></c></row>', b"</row>", 1))
    report = import_workbook(hub, bad, "operator")
    [(sheet, row, reason)] = report.errors
    assert (sheet, row) == ("房屋租赁备案", 2), report.errors
    assert reason.startswith("此行起无法读取")
    assert report.applied == 0 and stages_of(hub, case_no) == []


def test_rows_past_a_stale_dimension_are_read_and_checked(hub):
    """A worksheet whose ``<dimension>`` ends before its rows (a tool that writes a stale
    one): openpyxl stopped there, so a bad row after it went unread and the rest
    applied. Every row is read: the bad row is named, nothing applied."""
    case_no, filled = _filled(hub)
    wb, ws, header = sheet_rows(filled, "房屋租赁备案")
    extra = ws.max_row + 1
    ws.cell(row=extra, column=header.index("案件编号") + 1).value = "NO-SUCH-CASE"
    fill(ws, header, extra, new_stage="受理", at="2026-11-23 09:00:00", operator="王窗口")
    two = save(wb)
    stale = _rewrite(two, "xl/worksheets/sheet1.xml",
                     lambda xml: re.sub(rb'<dimension ref="[^"]+"/>', b'<dimension ref="A1:P2"/>',
                                        xml))
    report = import_workbook(hub, stale, "operator")
    assert report.applied == 0 and len(report.errors) == 1, report.errors
    assert "NO-SUCH-CASE" in report.errors[0][2] and stages_of(hub, case_no) == []


def test_a_workbook_with_an_open_password_says_so():
    from adapters.manual_excel import ENCRYPTED, workbook_problem

    assert workbook_problem(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512) == ENCRYPTED


def test_a_cut_cell_counts_characters_as_excel_does():
    """Excel counts UTF-16 units: a 生僻字 of CJK Extension B is two, so 20,000 of them
    are past a cell's 32,767 though Python counts 20,000."""
    from mapping.excel import CELL_MAX, fit_cell

    rare = "\U00020000" * 20_000
    cut = fit_cell(rare)
    assert cut != rare and len(cut.encode("utf-16-le")) // 2 <= CELL_MAX
    assert fit_cell("\U00020000" * 16_000) == "\U00020000" * 16_000


def test_a_shared_strings_table_of_too_many_entries_is_refused_unread(hub):
    """12 million empty strings (60 MB, an 89 KB upload) took 1.2 GB: each is a Python
    string. Past 2,000,000 entries (100,000 rows of 20 texts) the workbook is refused."""
    from adapters.manual_excel import MAX_STRINGS

    case_no, filled = _filled(hub)
    padded = _with_strings(filled, b"<si/>" * (MAX_STRINGS + 1))
    report = import_workbook(hub, padded, "operator")
    [(_, _, reason)] = report.errors
    assert reason.startswith(f"工作簿的文字条目过多（{MAX_STRINGS + 1} 条"), reason
    assert report.applied == 0 and stages_of(hub, case_no) == []


def test_a_shared_strings_part_that_does_not_unpack_is_not_a_workbook(hub):
    """Its entries are counted as it unpacks: a corrupt part stopped the count with a
    zlib error, and the job ended 「内部错误」. It reads as what it is: not a workbook."""
    from adapters.manual_excel import NOT_A_WORKBOOK

    case_no, filled = _filled(hub)
    declared = _with_strings(filled, b"<si><t>a</t></si>" * 10_000)
    raw = bytearray(declared)
    with zipfile.ZipFile(io.BytesIO(declared)) as z:
        info = z.getinfo("xl/sharedStrings.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 20
    raw[start:start + 40] = b"\xff" * 40  # the compressed data, not the headers
    report = import_workbook(hub, bytes(raw), "operator")
    assert report.errors == [("", 0, NOT_A_WORKBOOK)]
    assert report.applied == 0 and stages_of(hub, case_no) == []


def test_a_strict_open_xml_workbook_is_told_to_be_saved_as_a_normal_one(hub):
    """Excel's 「Strict Open XML 电子表格」: openpyxl finds no sheet in it, and the clerk
    read 「表头已被修改」 of a workbook they had only saved in another format."""
    from adapters.manual_excel import STRICT

    case_no, filled = _filled(hub)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(filled)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():  # the namespaces Excel writes when saving as Strict
            dst.writestr(info, src.read(info).replace(
                b"http://schemas.openxmlformats.org/spreadsheetml/2006/main",
                b"http://purl.oclc.org/ooxml/spreadsheetml/main").replace(
                b"http://schemas.openxmlformats.org/officeDocument/2006/relationships",
                b"http://purl.oclc.org/ooxml/officeDocument/relationships"))
    report = import_workbook(hub, out.getvalue(), "operator")
    assert report.errors == [("", 0, STRICT)]
    assert "另存为" in STRICT and report.applied == 0 and stages_of(hub, case_no) == []


def test_a_workbook_without_a_worksheet_says_so(hub):
    """A workbook whose only sheets are not worksheets (a chart sheet): the import
    ended with no error and nothing applied, not a word to the clerk."""
    from adapters.manual_excel import NO_SHEETS

    case_no, filled = _filled(hub)
    chart_only = _rewrite(filled, "xl/workbook.xml", lambda xml: re.sub(
        rb"<sheets>.*</sheets>", b"<sheets/>", xml, flags=re.S))
    report = import_workbook(hub, chart_only, "operator")
    assert report.errors == [("", 0, NO_SHEETS)]
    assert report.applied == 0 and stages_of(hub, case_no) == []
