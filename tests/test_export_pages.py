"""An export reads the manual queue page by page, each page in a short read transaction
of its own (adapters.manual_excel.EXPORT_PAGE): every case open when it began once, also
when cases are opened and closed while it runs, and on SQLite the WAL written meanwhile
can be checkpointed before the export ends (one snapshot for the whole export kept it growing,
and the intake commit that finally checkpointed it stalled every writer)."""

from __future__ import annotations

import io
import sqlite3
import zipfile

import openpyxl
from sqlalchemy import select

from adapters.manual_excel import EXPORT_PAGE, export_bundle, mark_stage
from store.models import Case
from tests.county_support import new_case

MANUAL = "511725"  # 渠县: no API
CASES = 2 * EXPORT_PAGE + 50  # three pages


def _seed(hub, first: int, count: int) -> None:  # type: ignore[no-untyped-def]
    for i in range(first, first + count):
        new_case(hub, "rental_filing", MANUAL, apply_no=f"PAGE-{i:05d}")


def _sub_case_nos(hub) -> list[str]:  # type: ignore[no-untyped-def]
    with hub.db.read_session() as s:
        return list(s.scalars(select(Case.case_no).where(Case.parent_id.is_not(None))
                              .order_by(Case.id)))


def _exported(bundle: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        wb = openpyxl.load_workbook(io.BytesIO(z.read("queue.xlsx")), read_only=True)
    ws = wb["房屋租赁备案"]
    header = [c.value for c in next(ws.iter_rows(max_row=1))]
    column = header.index("案件编号")
    return [row[column] for row in ws.iter_rows(min_row=2, values_only=True) if row[column]]


def test_an_export_pages_through_cases_opened_and_closed_while_it_runs(make_hub, store_url):
    hub = make_hub(store_url)
    _seed(hub, 0, CASES)
    before = _sub_case_nos(hub)
    closed_behind, closed_ahead = before[10], before[-10]  # in page 1; in page 3
    checkpoints: list[tuple[int, int, int]] = []

    def progress(done: int, _total: int) -> None:
        if done == EXPORT_PAGE // 2:  # page 1 read, page 2 not yet
            for case_no in (closed_behind, closed_ahead):
                mark_stage(hub, case_no, "rejected", operator="赵", opinion="材料不全")
            _seed(hub, CASES, 1)  # opened meanwhile: after every case read so far
        if done == EXPORT_PAGE + 10 and hub.db.url.startswith("sqlite"):  # page 2 read
            path = hub.db.url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as raw:
                checkpoints.append(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone())

    out = io.BytesIO()
    export_bundle(hub, out, "queue", MANUAL, progress=progress)
    exported = _exported(out.getvalue())
    opened_meanwhile = _sub_case_nos(hub)[-1]
    assert len(exported) == len(set(exported))  # no case twice across pages
    # page 1 was read before the marks, later pages after them; the case opened meanwhile
    # is past the queue's last id when the export began: it waits for the next export
    assert opened_meanwhile not in before
    assert set(exported) == set(before) - {closed_ahead}
    if hub.db.url.startswith("sqlite"):
        [(busy, log_frames, checkpointed)] = checkpoints
        # no read transaction is open while the export writes its rows and materials,
        # so every frame written meanwhile can be copied back; a snapshot held since the
        # export began (or over a page's materials) would pin them
        assert busy == 0 and log_frames > 0 and checkpointed == log_frames, checkpoints


def test_an_export_of_an_exact_number_of_pages_ends(make_hub, store_url):
    hub = make_hub(store_url)
    _seed(hub, 0, EXPORT_PAGE)
    out = io.BytesIO()
    export_bundle(hub, out, "queue", MANUAL)
    assert sorted(_exported(out.getvalue())) == sorted(_sub_case_nos(hub))
