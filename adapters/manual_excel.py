"""Manual fallback for counties without an API: cases wait for operators (Excel).

A manual route makes no call: its sub-cases (``route_mode == "manual"``, stage not
final) form the operators' work queue. Operators export it to a workbook (with the
materials as JPG in a zip), do the work in the county's own system, then either import
the workbook with its stage columns filled in or mark a case on the admin page
(``mark_stage``). Both apply stages exactly as a county's callback would: a mark through
``adapters.county_stages.apply_stage`` → ``store.cases.record_stage``; an import decides
every row first (``plan_stages``, the same rules) and then writes them all in bulk
(``write_stages``) in one transaction — or, if any row is bad, nothing.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any, TypeVar

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, defer

from adapters.base import Adapter
from adapters.county_stages import (
    StageRefused,
    StageReport,
    apply_stage,
    check_stage,
    find_sub_case,
    plan_stages,
    store_errors,
    write_stages,
)
from adapters.materials import MaterialError, to_jpegs
from mapping.cells import xlsx_cell, xlsx_row
from mapping.excel import (
    OPERATOR_STAGES,
    CellError,
    case_row,
    columns_for,
    explain,
    explain_outcome,
    header_map,
    item_of_sheet,
    operator_values,
    result_of,
    sheet_title,
    stage_of,
    text_of,
    time_of,
)
from mapping.items import FINAL_STAGES, ITEMS
from store import files
from store.cases import StageOutcome
from store.content import ContentLimits
from store.models import Case

if TYPE_CHECKING:
    from hub import Hub

T = TypeVar("T")
SOURCE = "manual"
#: Rows below the cases that still get the stage list, for rows an operator adds.
SPARE_ROWS = 200
_HEADER_FONT = Font(bold=True)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_OPERATOR_FILL = PatternFill("solid", fgColor="FFF2CC")
_WRAP = Alignment(wrap_text=True, vertical="top")
#: ``progress(done, total)``: called as an export or an import goes (admin/jobs.py shows
#: it to the operator); it may raise to stop the work (the process is stopping).
Progress = Callable[[int, int], None]

log = logging.getLogger("cityhub.manual")


class ManualExcelAdapter(Adapter):
    """A manual route makes no call: its sub-cases wait in the operators' work queue."""

    alias = "manual_excel"
    delivers = False


# --------------------------------------------------------------------------- work queue


def work_queue(county: str | None = None, item: str | None = None,
               divisions: Iterable[str] | None = None) -> Select[tuple[Case]]:
    """Open manual sub-cases, oldest first (by item, then case id)."""
    stmt = select(Case).where(
        Case.parent_id.is_not(None), Case.route_mode == "manual",
        Case.stage.not_in(tuple(FINAL_STAGES)))
    if county is not None:
        stmt = stmt.where(Case.county_code == county)
    if item is not None:
        stmt = stmt.where(Case.item == item)
    if divisions is not None:
        stmt = stmt.where(Case.county_code.in_(list(divisions)))
    return stmt.order_by(Case.item, Case.id)


# --------------------------------------------------------------------------- mark one case


def mark_stage(hub: Hub, case_no: str, stage: str, operator: str, opinion: str | None = None,
               filing_no: str | None = None, result: Any = None,
               at: datetime | None = None) -> StageOutcome:
    """An operator marks one case's stage (the admin page checks who may).

    Raises ``LookupError`` for an unknown case and ``StageRefused`` for an invalid mark;
    a stage that cannot follow (or a repeat) comes back as an outcome with ``recorded``
    False and its ``reason``, as for a callback.
    """
    report = StageReport(stage=stage, at=at, operator=operator, opinion=opinion or None,
                         filing_no=filing_no or None, result=result)
    with hub.transaction() as s:
        case = find_sub_case(s, case_no)
        if case is None:
            raise LookupError(f"unknown case {case_no!r}")
        errors = check_stage(case.item, report)
        if errors:
            raise StageRefused(errors)
        outcome = apply_stage(s, hub, case, report, source=SOURCE)
        if outcome.recorded:
            hub.audit(s, operator, "mark-stage", target=case.case_no,
                      detail={"stage": stage, "filing_no": filing_no})
    return outcome


# --------------------------------------------------------------------------- export


#: What a material's name loses before a clerk sees it (the workbook's cell, the zip's
#: paths): control and format characters (a line break; a right-to-left override shows
#: 合同gpj.exe as 合同exe.jpg), line and paragraph separators. Private-use and not yet
#: assigned code points stay: rare characters of names (生僻字) are written with them.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


#: What a Windows file name may not hold (the clerks' PCs extract the export there).
_WINDOWS_UNSAFE = re.compile(r'[<>:"|?*]')


def display_name(name: str) -> str:
    """``name`` as the export shows it (see ``_HIDDEN``)."""
    return "".join(ch for ch in name if unicodedata.category(ch) not in _HIDDEN)


def _material_names(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """(file id, the name as shown) of each material of an application."""
    return [(m["file_id"], display_name(str(m.get("name") or "")) or m["file_id"])
            for m in payload.get("materials") or [] if isinstance(m, dict) and m.get("file_id")]


def _add_materials(hub: Hub, archive: zipfile.ZipFile, case_no: str,
                   materials: list[tuple[str, str]], prefix: str = "") -> list[str]:
    """Write a case's materials as JPG into the zip; return the paths (or why not). Each
    file is read in a read transaction of its own and converted after it has ended."""
    paths: list[str] = []
    for n, (file_id, name) in enumerate(materials, start=1):
        # the name as shown (``display_name``), no directory of it, and nothing Windows'
        # zip extractor refuses in a file name (it refused the whole archive)
        stem = _WINDOWS_UNSAFE.sub("_", PurePosixPath(name.replace("\\", "/")).stem)
        stem = stem.rstrip(" .") or file_id
        with hub.db.read_session() as s:
            loaded = files.load(s, hub.cipher, file_id)
        if loaded is None:
            paths.append(f"{name}: 未上传 (not uploaded)")
            continue
        try:
            pages = to_jpegs(loaded[1], limits=ContentLimits.of(hub.config.limits))
        except MaterialError as exc:
            paths.append(f"{name}: 无法转换 ({exc})")
            continue
        for p, jpeg in enumerate(pages, start=1):
            suffix = f"-p{p}" if len(pages) > 1 else ""
            path = f"{prefix}{case_no}/{n:02d}-{stem}{suffix}.jpg"
            archive.writestr(path, jpeg)
            paths.append(path)
    return paths


class _SheetWriter:
    """One write-only sheet per item: styled header, frozen, widths, stage validation."""

    def __init__(self, wb: Workbook, item_code: str) -> None:
        self.item = ITEMS[item_code]
        self.ws = wb.create_sheet(sheet_title(self.item))
        self.columns = columns_for(self.item)
        self.rows = 0
        self.ws.freeze_panes = "B2"
        for i, col in enumerate(self.columns, start=1):
            self.ws.column_dimensions[get_column_letter(i)].width = col.width
        self.ws.append([xlsx_cell(self.ws, col.label, font=_HEADER_FONT,
                                  fill=_OPERATOR_FILL if col.operator else _HEADER_FILL)
                        for col in self.columns])
        self._materials_col = next(i for i, c in enumerate(self.columns) if c.key == "materials")

    def append(self, row: list[Any]) -> None:
        cells = xlsx_row(self.ws, row)  # every text a string cell, never a formula
        if row[self._materials_col]:
            cells[self._materials_col] = xlsx_cell(self.ws, row[self._materials_col],
                                                   alignment=_WRAP)
        self.ws.append(cells)
        self.rows += 1

    def close(self) -> None:
        keys = [c.key for c in self.columns]
        letter = get_column_letter(keys.index("new_stage") + 1)
        last = self.rows + 1 + SPARE_ROWS  # rows an operator adds (a further stage)
        dv = DataValidation(type="list", formula1='"' + ",".join(OPERATOR_STAGES) + '"',
                            allow_blank=True, showErrorMessage=True,
                            errorTitle="新环节", error="请选择: " + "、".join(OPERATOR_STAGES))
        dv.add(f"{letter}2:{letter}{last}")
        self.ws.data_validations.append(dv)


#: Cases an export reads per read transaction. One snapshot held for a whole export
#: (seconds, for a county's queue) keeps SQLite's WAL from being checkpointed, so it
#: grows until an intake commit has to copy it all back while holding the write lock;
#: short snapshots, page after page, let the WAL be checkpointed between them.
EXPORT_PAGE = 200


@dataclass(frozen=True)
class _Span:
    """One item's part of the queue: ``count`` cases with ids from ``first`` to ``last``."""

    item: str
    first: int
    last: int
    count: int


def _queue_spans(hub: Hub, stmt: Select[tuple[Case]]) -> list[_Span]:
    """The items of the queue ``stmt`` selects, in item order, each with its id range
    and count: one pass over the cases, in a read transaction of its own."""
    with hub.db.read_session() as s:
        rows = s.execute(stmt.with_only_columns(
            Case.item, func.min(Case.id), func.max(Case.id), func.count())
            .group_by(Case.item).order_by(None)).all()
    return sorted((_Span(*row) for row in rows), key=lambda span: span.item)  # any collation


def _case_pages(hub: Hub, stmt: Select[tuple[Case]], spans: Iterable[_Span],
                read: Callable[[Session, Case], T], size: int = EXPORT_PAGE
                ) -> Iterator[list[T]]:
    """``read(session, case)`` of every case of ``stmt``, item by item and by id, a page
    at a time, each page read in a read transaction of its own that has ended when the
    page is handed on. A page is a range of the primary key, after the last id of the
    page before and up to the item's last one (no page scans the cases outside it): a
    case is read once even if others change between pages, one that becomes final
    meanwhile is left out, as it would be from a later export, and one opened meanwhile
    past the item's last id waits for the next export. (On PostgreSQL ids come from the
    sequence before a case commits, so one committed meanwhile may have an id within
    the span: it is exported now, once.)"""
    for span in spans:
        after = span.first - 1
        while after < span.last:
            page_stmt = (stmt.where(Case.item == span.item, Case.id > after,
                                    Case.id <= span.last)
                         .order_by(None).order_by(Case.id).limit(size))
            with hub.db.read_session() as s:
                page = list(s.scalars(page_stmt))
                results = [read(s, case) for case in page]
            if results:
                yield results
            if len(page) < size:
                break
            after = page[-1].id


def export_workbook(hub: Hub, county: str | None = None, item: str | None = None,
                    show_personal_data: bool = False, divisions: Iterable[str] | None = None,
                    with_materials: bool = True) -> tuple[bytes, bytes]:
    """The open manual cases (of a county, an item, a set of divisions) as a workbook.

    Returns ``(xlsx_bytes, zip_bytes)``: one sheet per item, one row per case; the zip
    holds each case's materials as JPG under ``<case_no>/``. ID numbers and phones are
    masked unless ``show_personal_data`` (the caller decides who may see them).
    """
    zip_buf = io.BytesIO()
    with zipfile.ZipFile(zip_buf, "w", zipfile.ZIP_STORED) as archive:
        xlsx = _write_export(hub, archive, "", county, item, show_personal_data, divisions,
                             with_materials)
    return xlsx, zip_buf.getvalue()


def export_bundle(hub: Hub, out: IO[bytes], stem: str, county: str | None = None,
                  item: str | None = None, show_personal_data: bool = False,
                  divisions: Iterable[str] | None = None,
                  progress: Progress | None = None) -> None:
    """The export as one zip written to ``out``: ``<stem>.xlsx`` and a ``materials/``
    folder (``materials/<case_no>/NN-name.jpg``, as the workbook's 材料 column names)."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        xlsx = _write_export(hub, archive, "materials/", county, item, show_personal_data,
                             divisions, True, progress)
        archive.writestr(f"{stem}.xlsx", xlsx)


def _write_export(hub: Hub, archive: zipfile.ZipFile, prefix: str, county: str | None,
                  item: str | None, show_personal_data: bool,
                  divisions: Iterable[str] | None, with_materials: bool,
                  progress: Progress | None = None) -> bytes:
    if item is not None and item not in ITEMS:
        raise LookupError(f"unknown item {item!r}")
    divisions = None if divisions is None else list(divisions)
    wb = Workbook(write_only=True)
    sheet: _SheetWriter | None = None
    queue = work_queue(county, item, divisions)
    spans = _queue_spans(hub, queue)
    total, done = sum(span.count for span in spans), 0
    if progress is not None:
        progress(0, total)

    def read(s: Session, case: Case) -> tuple[Case, dict[str, Any], Any]:
        payload = hub.cipher.open_json(case.payload_enc)
        return case, payload, hub.sharing.warnings_of(s, case.item, payload)

    for page in _case_pages(hub, queue, spans, read):
        for case, payload, warnings in page:  # no read transaction is open here
            if sheet is None or sheet.item.code != case.item:
                if sheet is not None:
                    sheet.close()
                sheet = _SheetWriter(wb, case.item)
            materials = _material_names(payload)
            paths = (_add_materials(hub, archive, case.case_no, materials, prefix)
                     if with_materials else [name for _, name in materials])
            sheet.append(case_row(sheet.item, case.case_no, case.county_code, case.stage,
                                  payload, paths, show_personal_data, warnings))
            done += 1
            if progress is not None:
                progress(done, max(total, done))
    if sheet is None:  # nothing open: still a valid workbook with the layout
        sheet = _SheetWriter(wb, item or next(iter(ITEMS)))
    sheet.close()
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def manual_counties(hub: Hub) -> list[str]:
    """Counties routed manually by the table or by an operator's division setting (a
    county set to auto keeps its queue of earlier manual cases)."""
    routes = [*hub.routes.routes.values(), *hub.routes.effective_routes()]
    return sorted({r.county for r in routes if r.manual})


def export_names(hub: Hub, county: str | None, item: str | None,
                 day: date) -> tuple[str, str]:
    """``(ascii_stem, chinese_stem)`` of an export, by county, item and (Beijing) date:
    ``manual-511725-rental_filing-20261202`` and ``渠县-房屋租赁备案-20261202``. Both
    are built from the configuration's names and codes only, never from the request."""
    county_code = county if county in hub.city.counties else "all"
    item_code = item if item in ITEMS else "all"
    ascii_stem = f"manual-{county_code}-{item_code}-{day:%Y%m%d}"
    county_zh = hub.city.counties.get(county or "", "全部区县")
    item_zh = ITEMS[item].name_zh if item in ITEMS else "全部事项"
    return ascii_stem, f"{county_zh}-{item_zh}-{day:%Y%m%d}"


# --------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    """What an import did: rows applied, repeats skipped, or the errors (then nothing)."""

    applied: int = 0
    skipped: list[tuple[str, int, str]] = field(default_factory=list)
    errors: list[tuple[str, int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Row:
    sheet: str
    row: int
    case_no: str | None
    item: str
    report: StageReport


#: An imported workbook unpacks to at most this many bytes, in at most this many parts
#: (a zip bomb is refused before openpyxl reads a byte of it; zipfile itself stops each
#: part at its declared size). The hub's own export takes about 1.1 KB a row: 160 MB
#: holds the ``MAX_IMPORT_ROWS`` rows of one queue.
MAX_WORKBOOK_UNPACKED = 160 * 1024 * 1024
#: Rows of one workbook's sheets at most: an export holds a queue's open cases (a few
#: thousand); a 226 KB file of 3.5 million empty rows took an import 51 s and 0.4 GB.
MAX_IMPORT_ROWS = 100_000
TOO_MANY_ROWS = (f"工作簿的行数超过 {MAX_IMPORT_ROWS} 行，未导入任何行；"
                 "请按区县或事项分批导出、填写和导入")
MAX_WORKBOOK_PARTS = 2000
NOT_A_WORKBOOK = "不是 Excel 工作簿（.xlsx），请选择本平台导出并填写的工作簿"
NO_SHEETS = "工作簿中没有可读取的工作表，未导入任何行；请选择本平台导出并填写的工作簿"
ENCRYPTED = "工作簿设置了打开密码，平台无法读取；请在 Excel 或 WPS 中取消密码后另存，再导入"
UNREADABLE_ROW = ("此行起无法读取（单元格或文件内容不是 Excel 写出的格式），未导入任何行；"
                  "请在 Excel 或 WPS 中打开本平台导出的工作簿填写后另存，勿用其他工具改写文件")
TOO_LARGE = ("工作簿内容过多（约 {size} MB，最多 {limit} MB），未导入任何行；"
             "请按区县或事项分批导出、填写和导入")
TOO_MUCH_FORMAT = ("工作簿的格式或附加内容过多（约 {size} MB，最多 {limit} MB），未导入任何行；"
                   "请在 Excel 中清除多余的单元格格式后另存，或重新导出后填写")
#: openpyxl reads the shared strings whole, each a Python string: at most this much
#: (a table of 12 million empty strings, 60 MB, took 1.2 GB).
MAX_SHARED_STRINGS = 64 * 1024 * 1024
#: Entries of the shared strings at most: 100,000 rows of 20 texts, every one different.
MAX_STRINGS = 2_000_000
#: Every part but the worksheets and the shared strings (styles, workbook, properties,
#: theme...) unpacks to at most this much: openpyxl makes objects of them all, styles at
#: the worst ratio (a 97 MB styles part of one font repeated, in a 240 KB upload, took
#: 55 s and 3.1 GB; 8 MB took 4 s and 320 MB). Excel's own ceiling of 64,000 cell
#: formats is about 10 MB of plain ones.
MAX_WHOLE_PART = 16 * 1024 * 1024
_WORKSHEET = re.compile(r"xl/worksheets/[^/]+\.xml")
_SHARED_STRINGS = "xl/sharedStrings.xml"
#: Sheets of one workbook at most (an export has one per item).
MAX_SHEETS = 64
#: An OLE compound file: what Excel and WPS write for a workbook with an open password.
_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Excel's "Strict Open XML" workbook: openpyxl finds no sheet in it (their namespace is
#: not the one it knows), which read as a sheet whose header had been changed.
STRICT = ("这是“Strict Open XML 电子表格”格式的工作簿，平台无法读取，未导入任何行；请在 Excel "
          "中“另存为”普通的“Excel 工作簿(*.xlsx)”后再导入")
_STRICT_NAMESPACE = b"purl.oclc.org/ooxml/spreadsheetml/main"


def workbook_problem(data: bytes) -> str | None:
    """Why an uploaded workbook is not read at all, or None if it may be (the limits
    above, checked on the zip's directory before openpyxl reads a byte; zipfile stops
    each part at its declared size, so a part that lies about it fails to read)."""
    if data.startswith(_CFB):
        return ENCRYPTED
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None  # not a zip package: the reader reports "not an Excel workbook"
    with archive:
        return _parts_problem(archive)


def _parts_problem(archive: zipfile.ZipFile) -> str | None:
    parts = archive.infolist()
    unpacked = sum(p.file_size for p in parts)
    if len(parts) > MAX_WORKBOOK_PARTS or unpacked > MAX_WORKBOOK_UNPACKED:
        return TOO_LARGE.format(size=_mb(unpacked), limit=_mb(MAX_WORKBOOK_UNPACKED))
    for part in parts:
        if _WORKSHEET.fullmatch(part.filename):
            continue  # streamed row by row: the workbook's own limit
        if part.filename == _SHARED_STRINGS:
            if part.file_size > MAX_SHARED_STRINGS:
                return TOO_LARGE.format(size=_mb(part.file_size),
                                        limit=_mb(MAX_SHARED_STRINGS))
        elif part.file_size > MAX_WHOLE_PART:
            return TOO_MUCH_FORMAT.format(size=_mb(part.file_size), limit=_mb(MAX_WHOLE_PART))
    if _strict(archive):
        return STRICT
    return _sheets_problem(archive)


def _strict(archive: zipfile.ZipFile) -> bool:
    """Whether the workbook part declares Strict OOXML's namespace (its first 4 KB)."""
    for part in archive.infolist():
        if part.filename.endswith("workbook.xml") and part.filename.count("/") == 1:
            try:
                with archive.open(part) as stream:
                    return _STRICT_NAMESPACE in stream.read(4096)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError, RuntimeError):
                return False  # not readable: load_workbook reports the file
    return False


def _sheets_problem(archive: zipfile.ZipFile) -> str | None:
    """Why the workbook's sheets are too much to read, or None. openpyxl reads a sheet's
    part once for each sheet that names it (twice without a ``<dimension>``): 25 sheets
    naming one 60 MB part, in a 63 KB upload, took 29 s each. The sheets are found as
    openpyxl finds them (its manifest and workbook parser), and the parts they name are
    counted once for each, against the workbook's own limit."""
    from openpyxl.packaging.manifest import Manifest
    from openpyxl.reader.excel import _find_workbook_part
    from openpyxl.reader.workbook import WorkbookParser
    from openpyxl.xml.constants import SHARED_STRINGS
    from openpyxl.xml.functions import fromstring

    try:
        package = Manifest.from_tree(fromstring(archive.read("[Content_Types].xml")))
        parser = WorkbookParser(archive, _find_workbook_part(package).PartName[1:])
        parser.parse()
        targets = [rel.target for _, rel in parser.find_sheets()]
        strings = package.find(SHARED_STRINGS)  # wherever the package puts them
    except Exception:  # noqa: BLE001 — not readable so: load_workbook reports it itself
        return None
    sizes = {p.filename: p.file_size for p in archive.infolist()}
    if strings is not None and sizes.get(strings.PartName[1:], 0) > MAX_SHARED_STRINGS:
        size = sizes[strings.PartName[1:]]
        return TOO_LARGE.format(size=_mb(size), limit=_mb(MAX_SHARED_STRINGS))
    if strings is not None and strings.PartName[1:] in sizes:
        try:
            count = _count_strings(archive, strings.PartName[1:])
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError):
            return None  # a part that does not unpack: load_workbook reports the file
        if count > MAX_STRINGS:
            return (f"工作簿的文字条目过多（{count} 条，最多 {MAX_STRINGS} 条），未导入任何行；"
                    "请按区县或事项分批导出、填写和导入")
    read = sum(sizes.get(t, 0) for t in targets)
    if len(targets) > MAX_SHEETS or read > MAX_WORKBOOK_UNPACKED:
        return (f"工作簿的工作表过多（{len(targets)} 个、约 {_mb(read)} MB；最多 "
                f"{MAX_SHEETS} 个、{_mb(MAX_WORKBOOK_UNPACKED)} MB），未导入任何行；"
                "请只导入本平台导出的工作簿，勿复制工作表")
    return None


_SI = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s/>]")


def _count_strings(archive: zipfile.ZipFile, name: str) -> int:
    """The entries of the shared-strings part ``name``, counted as it unpacks (1 MB at a
    time): each becomes a Python string, the empty ones too."""
    count, tail = 0, b""
    with archive.open(name) as part:
        while chunk := part.read(1 << 20):
            window = tail + chunk
            count += len(_SI.findall(window))
            tail = window[-32:]
            count -= len(_SI.findall(tail))  # counted again with the next chunk
    return count + len(_SI.findall(tail))


def _mb(size: int) -> str:
    """``size`` in MB as a clerk reads it: whole when it is, else one decimal rounded up
    (8.01 MB is 「8.1」, never 「8.0 MB，最多 8 MB」)."""
    tenths = -(-size * 10 // (1024 * 1024))
    return f"{tenths // 10}" if tenths % 10 == 0 else f"{tenths / 10:.1f}"


def _read_rows(data: bytes, operator: str, report: ImportReport,
               named: list[tuple[str, int, str]] | None = None) -> list[_Row]:
    """The rows with a stage to apply (errors in ``report``); ``named`` collects every
    row's (sheet, row, case number), filled or not, for the scope check (left empty
    when the workbook is refused as a whole)."""
    problem = workbook_problem(data)
    if problem is not None:
        report.errors.append(("", 0, problem))
        return []
    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except MemoryError:  # not "not a workbook": the job's limit (admin.jobs) says so
        raise
    except Exception as exc:  # openpyxl raises many kinds for a file that is not xlsx
        log.info("an imported workbook was not readable: %s", type(exc).__name__)
        report.errors.append(("", 0, NOT_A_WORKBOOK))
        return []
    if not wb.worksheets:  # e.g. only a chart sheet: else the job said nothing at all
        wb.close()
        report.errors.append(("", 0, NO_SHEETS))
        return []
    rows: list[_Row] = []
    read = 0
    sheet, at = "", 1  # the row being read: named if it cannot be
    try:
        for ws in wb.worksheets:
            sheet, at = ws.title[:31], 1
            item = item_of_sheet(ws.title)
            # every row to the end of the part: a stale <dimension> (a tool that writes
            # one) made openpyxl stop there, and the rows after it went unread, unchecked
            ws.reset_dimensions()
            lines = ws.iter_rows(values_only=True)
            header = header_map(next(lines, ()) or ())
            at = 2
            if item is None or "case_no" not in header or "new_stage" not in header:
                report.errors.append((ws.title[:31], 1, "不是导出的工作表（工作表名称或表头"
                                                        "已被修改），请勿修改工作表名称和表头"))
                continue
            for number, line in enumerate(lines, start=2):
                at = number + 1
                read += 1
                if read > MAX_IMPORT_ROWS:
                    report.errors.append((ws.title[:31], number, TOO_MANY_ROWS))
                    if named is not None:
                        named.clear()
                    return []
                cells = operator_values(header, line)
                if named is not None and (case_no := text_of(cells["case_no"])):
                    named.append((ws.title, number, case_no))
                parsed = _parse_row(ws.title, number, item.code, cells, operator, report)
                if parsed is not None:
                    rows.append(parsed)
    except MemoryError:
        raise
    except Exception as exc:  # a cell or the XML past where the rows were read so far
        log.info("an imported workbook's rows were not readable: %s", type(exc).__name__)
        report.errors.append((sheet, at, UNREADABLE_ROW))
        if named is not None:
            named.clear()
        return []
    finally:
        wb.close()
    return rows


def _parse_row(sheet: str, number: int, item: str, cells: dict[str, Any], operator: str,
               report: ImportReport) -> _Row | None:
    try:
        stage = stage_of(cells["new_stage"])
        if stage is None:
            return None  # not worked on yet
        at = time_of(cells["at"])
        result = result_of(cells["result"])
    except CellError as exc:
        report.errors.append((sheet, number, str(exc)))
        return None
    case_no = text_of(cells["case_no"])
    stage_report = StageReport(
        stage=stage, at=at, operator=text_of(cells["operator"]) or operator,
        opinion=text_of(cells["opinion"]), filing_no=text_of(cells["filing_no"]), result=result)
    problems = check_stage(item, stage_report)
    if not case_no:
        problems.insert(0, ("case_no", "required"))
    if problems:
        report.errors.append((sheet, number, "；".join(explain(f, r) for f, r in problems)))
        return None
    return _Row(sheet, number, case_no, item, stage_report)


def _cases_by_no(session: Session, numbers: set[str]) -> dict[str, Case]:
    """The sub-cases named in a workbook, loaded in a few statements (without their
    sealed payloads, which applying a stage does not read)."""
    found: dict[str, Case] = {}
    ordered = sorted(numbers)
    for i in range(0, len(ordered), 500):
        for case in session.scalars(select(Case).options(
                defer(Case.payload_enc), defer(Case.answer_enc)).where(
                Case.case_no.in_(ordered[i:i + 500]), Case.county_code != "")):
            found[case.case_no] = case
    return found


def import_workbook(hub: Hub, data: bytes, operator: str,
                    progress: Progress | None = None,
                    divisions: Iterable[str] | None = None) -> ImportReport:
    """Apply the stages filled into an exported workbook — all rows, or none.

    Rows whose 新环节 is blank are left alone. A row may repeat a case number to add a
    further stage (applied in row order). Any bad row (unreadable cell, unknown case,
    a stage that cannot follow, a missing filing number…) is reported as
    ``(sheet, row, reason)`` and then no row of the workbook is applied. A stage the case
    already has — a repeat of its last event, or any stage it went through before it
    closed (a workbook imported twice) — is skipped, as a callback's duplicate is.
    ``progress(done, total)`` counts the rows read, then checked. With ``divisions``
    (an operator's data permissions), a row naming a case of another division — filled
    or not — refuses the workbook first, each such row named (the workbook is read once
    for both).
    """
    report = ImportReport()
    named: list[tuple[str, int, str]] | None = None if divisions is None else []
    rows = _read_rows(data, operator, report, named)
    if named and divisions is not None:
        outside = _out_of_scope(hub, named, frozenset(divisions))
        if outside:
            return ImportReport(errors=outside)
    if report.errors:
        return report
    try:
        return _import_rows(hub, rows, operator, report, progress)
    except StageRefused as refused:  # a number two rows (or a concurrent 办结) both use
        reason = "；".join(explain(f, r) for f, r in refused.errors)
        cases_of: dict[str, set[str]] = {}
        for row in rows:
            if row.report.stage == "completed" and row.report.filing_no:
                cases_of.setdefault(row.report.filing_no, set()).add(row.case_no or "")
        twice = [(row.sheet, row.row, reason) for row in rows
                 if row.report.stage == "completed"
                 and len(cases_of.get(row.report.filing_no or "", ())) > 1]
        report.applied, report.skipped = 0, []
        report.errors = twice or [("", 0, reason)]
        return report


def _out_of_scope(hub: Hub, named: list[tuple[str, int, str]], allowed: frozenset[str]
                  ) -> list[tuple[str, int, str]]:
    """The rows of ``named`` whose case is of a division outside ``allowed``."""
    numbers = sorted({c for _, _, c in named})
    counties: dict[str, str] = {}
    with hub.db.read_session() as s:  # a few hundred at a time: a bound list of binds
        for i in range(0, len(numbers), 500):
            counties.update(s.execute(select(Case.case_no, Case.county_code).where(
                Case.case_no.in_(numbers[i:i + 500]))).all())
    return [(sheet, n, f"案件 {c} 不在您的数据权限范围内") for sheet, n, c in named
            if c in counties and counties[c] not in allowed]


def _import_rows(hub: Hub, rows: list[Any], operator: str, report: ImportReport,
                 progress: Progress | None) -> ImportReport:
    if progress is not None:
        progress(0, len(rows))
    with hub.transaction() as s:
        cases = _cases_by_no(s, {row.case_no for row in rows if row.case_no})
        errors: list[tuple[int, str]] = []  # (position in rows, reason)
        known: list[int] = []
        for n, row in enumerate(rows):
            case = cases.get(row.case_no or "")
            if case is None:
                errors.append((n, f"案件编号：没有案件 {row.case_no[:40] if row.case_no else ''}，"
                                  "请核对是否从导出的工作簿复制"))
            elif case.item != row.item:
                kind = ITEMS[case.item].name_zh if case.item in ITEMS else case.item
                errors.append((n, f"案件编号：{row.case_no} 是「{kind}」的案件，"
                                  "请填在该事项的工作表中"))
            elif problems := store_errors(s, hub, case, row.report):  # as apply_stage
                errors.append((n, "；".join(explain(f, r) for f, r in problems)))
            else:
                known.append(n)
            if progress is not None:
                progress(n + 1, len(rows))
        # every row is decided first (as a callback would be); nothing is written unless
        # all of them may be applied
        planned = plan_stages(s, [(cases[rows[n].case_no or ""], rows[n].report)
                                  for n in known])
        for n, plan in zip(known, planned, strict=True):
            if plan.recorded:
                continue
            if plan.duplicate and plan.seen_before:  # a repeat, or a workbook imported again
                report.skipped.append((rows[n].sheet, rows[n].row,
                                       explain_outcome("already recorded")))
            else:
                errors.append((n, explain_outcome(plan.reason)))
        if errors:
            report.errors = [(rows[n].sheet, rows[n].row, reason) for n, reason in sorted(errors)]
            return report
        applied = write_stages(s, hub, planned, source=SOURCE)
        hub.audit(s, operator, "import-manual", detail={
            "applied": applied, "skipped": len(report.skipped)})
        report.applied = applied
    return report
