"""The manual queue's export and import run in the background (admin/jobs.py): a job row
with its state and progress, the operator's notice when done, the zip downloaded from
the job by the operator who asked only, and a job of a process that stopped marked
失败 (服务重启，请重新提交) — on both stores, with real servers."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import stat
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
import yaml
from sqlalchemy import select

from admin.jobs import MAX_UNFINISHED, RESTART
from hub import Hub, load_config
from store.admin_models import AdminJob
from store.models import StageEvent
from tests.hubserver import HubServer
from tests.manual_jobs import (
    export,
    export_zip,
    exported_sheet,
    exported_workbook,
    import_page,
    job_of,
    saved,
    wait_job,
)
from tests.support import start_hub_process, stop_process, wait_until
from tests.test_admin_fixtures import (
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    Client,
    add_operator,
    new_case,
)

MANUAL, OTHER = "511725", "511723"  # 渠县 and 宣汉县: both manual


@pytest.fixture
def site(make_hub, store_url):  # type: ignore[no-untyped-def]
    hub = make_hub(store_url, inbound=[])
    server = HubServer(hub).start()
    add_operator(hub, "clerk", ALL_FUNCTIONS, (MANUAL,))
    add_operator(hub, "other", COUNTY_FUNCTIONS, (OTHER,))
    add_operator(hub, "root", ALL_FUNCTIONS)
    yield hub, server.url
    server.stop()


def _client(url: str, username: str) -> Client:
    c = Client(url)
    c.login(username)
    return c


def _row(hub: Hub, job_id: int) -> AdminJob:
    with hub.db.read_session() as s:
        job = s.get(AdminJob, job_id)
        s.expunge(job)
    return job


def test_export_runs_in_the_background_and_its_zip_downloads(site):
    hub, url = site
    cases = [new_case(hub, [MANUAL], f"BG-{n}")["subs"][MANUAL] for n in range(3)]
    c = _client(url, "clerk")
    page = export(c, county=MANUAL)
    assert page.status_code == 200
    job_id = job_of(page)
    assert f"已开始导出（任务 {job_id}）" in page.text
    assert 'id="manual-jobs"' in page.text and "导出人工办理清单" in page.text
    job = wait_job(c, job_id)
    assert (job["state"], job["state_name"]) == ("done", "完成")
    assert (job["done"], job["total"]) == (3, 3)
    assert job["notice"].startswith(f"导出完成（任务 {job_id}）：渠县-全部事项-")
    row = _row(hub, job_id)
    assert (row.username, row.county, row.state) == ("clerk", MANUAL, "done")
    beijing = (row.created_at + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert job["created"] == beijing  # operators read Beijing time
    path = hub.config.files_dir / "jobs" / row.file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    resp = c.get(job["download"])
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/zip"
    assert 'filename="manual-511725-all-' in resp.headers["Content-Disposition"]
    wb = exported_workbook(resp.content)
    exported = {ws.cell(r, 1).value for ws in wb.worksheets for r in range(2, ws.max_row + 1)}
    assert set(cases) <= exported
    # the page lists the job with its Chinese state, progress and link
    listed = c.get("/admin/manual").text
    assert "完成" in listed and "3 / 3" in listed and job["download"] in listed


def _ask_export(c: Client) -> int:
    """Ask for an export without opening the page it leads to (which would show the
    notice if the job were done by then)."""
    c.get("/admin/manual")
    resp = c.post("/admin/manual/export", {"county": ""}, follow=False)
    assert resp.status_code in (302, 303), resp.text[:200]
    return int(resp.headers["Location"].rsplit("job=", 1)[1])


def test_the_notice_of_a_finished_export_shows_once(site):
    hub, url = site
    new_case(hub, [MANUAL], "NOTE-1")
    c = _client(url, "clerk")
    job_id = _ask_export(c)
    wait_until(lambda: _row(hub, job_id).state == "done", timeout=60, what="the export")
    first = c.get("/admin/").text  # another page: the notice as a flash
    assert f"导出完成（任务 {job_id}）" in first
    assert f"导出完成（任务 {job_id}）" not in c.get("/admin/").text  # once
    # on the manual page itself the notice carries the download link
    job_id = _ask_export(c)
    wait_until(lambda: _row(hub, job_id).state == "done", timeout=60, what="the second export")
    page = c.get("/admin/manual").text
    notice = page.split('id="manual-progress"', 1)[1].split("</p>", 1)[0]
    assert f"导出完成（任务 {job_id}）" in notice and "job-download" in notice
    assert " hidden" not in notice.split(">", 1)[0]


def test_import_counts_its_rows_and_reports_in_chinese(site):
    hub, url = site
    subs = [new_case(hub, [MANUAL], f"IMP-{n}")["subs"][MANUAL] for n in range(2)]
    c = _client(url, "clerk")
    resp = export_zip(c, county=MANUAL)
    wb, ws, header = exported_sheet(resp.content)
    for r in range(2, ws.max_row + 1):
        if ws.cell(r, 1).value in subs:
            ws.cell(r, header.index("新环节") + 1, "受理")
    good = io.BytesIO()
    wb.save(good)
    page = import_page(c, good.getvalue())
    assert "导入完成：应用 2 行" in page
    [job] = [j for j in _jobs(hub) if j.kind == "manual_import"]
    assert (job.state, job.done, job.total, job.username) == ("done", 2, 2, "clerk")
    assert not list((hub.config.files_dir / "jobs").glob("import-*"))  # upload removed
    # a bad row: listed in Chinese, nothing applied
    ws.cell(2, header.index("新环节") + 1, "办完了")
    bad = io.BytesIO()
    wb.save(bad)
    page = import_page(c, bad.getvalue())
    assert "导入未应用任何行" in page and "新环节" in page and "请从下拉列表选择" in page


def _jobs(hub: Hub) -> list[AdminJob]:
    with hub.db.read_session() as s:
        rows = list(s.scalars(select(AdminJob).order_by(AdminJob.id)))
        for row in rows:
            s.expunge(row)
    return rows


def test_another_operator_cannot_see_or_download_the_job(site):
    hub, url = site
    new_case(hub, [MANUAL], "MINE-1")
    clerk = _client(url, "clerk")
    job = wait_job(clerk, job_of(export(clerk)))
    assert job["download"]
    # hostile or stale addresses: nothing, never a 500
    for path in ("/admin/manual/jobs/99999999999999999999999", "/admin/manual/jobs/0",
                 "/admin/manual/jobs/-1", "/admin/manual/jobs/x/download"):
        assert clerk.get(path).status_code == 404, path
    assert clerk.get("/admin/manual?job=99999999999999999999999").status_code == 200
    assert clerk.get("/admin/manual/export").status_code == 405  # asking is a POST (CSRF)
    assert clerk.post("/admin/manual/export", {"county": MANUAL}, csrf=False).status_code == 400
    for username in ("other", "root"):  # another county's operator; the city's admin
        c = _client(url, username)
        assert c.get(f"/admin/manual/jobs/{job['id']}").status_code == 404
        assert c.get(job["download"]).status_code == 404
        assert job["download"] not in c.get("/admin/manual").text
        assert f"任务 {job['id']}" not in c.get("/admin/").text
    # the operator who asked, once moved to another county, no longer gets the zip
    with hub.transaction() as s:
        from admin.people import set_user_access
        from store.admin_models import AdminUser

        user = s.scalars(select(AdminUser).where(AdminUser.username == "clerk")).one()
        set_user_access(s, user, _role_ids(s, user), (OTHER,), hub.city.counties)
    again = _client(url, "clerk")
    assert again.get(job["download"]).status_code == 404
    assert clerk.get(f"/admin/manual/jobs/{job['id']}/download").status_code == 404


def _role_ids(s, user) -> list[int]:  # type: ignore[no-untyped-def]
    from store.admin_models import AdminUserRole

    return list(s.scalars(select(AdminUserRole.role_id).where(
        AdminUserRole.user_id == user.id)))


def test_a_job_unfinished_when_its_process_was_killed_is_failed_at_start(
        make_config, store_url, tmp_path):
    """``hub.py serve`` killed (SIGKILL) with exports queued and running: the next hub to
    start marks them 失败 with the reason, and the operator sees it."""
    config = make_config(store_url, inbound=[])
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    hub = Hub(load_config(config))
    add_operator(hub, "clerk", ALL_FUNCTIONS, (MANUAL,))
    for n in range(120):
        new_case(hub, [MANUAL], f"KILL-{n}")
    proc = start_hub_process(config, "serve", "--no-workers", "--no-scheduler",
                             log=tmp_path / "serve.log")
    try:
        c = Client(f"http://127.0.0.1:{port}")
        wait_until(lambda: _up(c), timeout=120, what="the served hub")
        c.login("clerk")
        c.get("/admin/manual")
        for _ in range(3):  # two run, one waits (two threads)
            c.post("/admin/manual/export", {"county": MANUAL}, follow=False)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        stop_process(proc)
    unfinished = [j.id for j in _jobs(hub) if j.state in ("queued", "running")]
    assert unfinished, [(j.id, j.state) for j in _jobs(hub)]  # the test kills mid-way
    server = HubServer(hub).start()  # the next start-up
    try:
        jobs = {j.id: j for j in _jobs(hub)}
        for job_id in unfinished:
            assert (jobs[job_id].state, jobs[job_id].error) == ("failed", RESTART)
        c = Client(server.url)
        c.login("clerk")
        view = c.get(f"/admin/manual/jobs/{unfinished[0]}").json()
        assert view["state_name"] == "失败" and view["note"] == RESTART
        assert not [p for p in (hub.config.files_dir / "jobs").iterdir()
                    if p.name.startswith("export-") and jobs.get(_job_of_file(p)) is not None
                    and jobs[_job_of_file(p)].state == "failed"]
    finally:
        server.stop()
        hub.close()


def _job_of_file(path: Path) -> int:
    return int(path.name.split("-")[1])


def _up(c: Client) -> bool:
    try:
        return c.get("/healthz").status_code == 200
    except OSError:
        return False


def test_stopping_the_hub_fails_its_unfinished_jobs(make_hub, store_url):
    """SIGTERM's path (hub.close): a job still queued is failed with the reason, not left."""
    hub = make_hub(store_url, inbound=[])
    server = HubServer(hub).start()
    add_operator(hub, "clerk", ALL_FUNCTIONS, (MANUAL,))
    for n in range(60):
        new_case(hub, [MANUAL], f"STOP-{n}")
    c = Client(server.url)
    c.login("clerk")
    c.get("/admin/manual")
    ids = [job_of(c.post("/admin/manual/export", {"county": MANUAL})) for _ in range(3)]
    server.stop()
    hub.close()
    states = {j.id: (j.state, j.error) for j in _jobs(hub)}
    assert not [i for i in ids if states[i][0] in ("queued", "running")], states
    assert all(states[i] in (("done", None), ("failed", RESTART)) for i in ids), states


def test_an_export_runs_in_a_child_process_of_lower_priority(site):
    """The export's CPU work (openpyxl, zlib) runs outside the web process, niced, so the
    requests get the CPU first; a child that dies ends its job failed with no file left."""
    hub, url = site
    for n in range(30):
        new_case(hub, [MANUAL], f"NICE-{n}")
    c = _client(url, "clerk")
    job_id = _ask_export(c)

    def niced_child():  # type: ignore[no-untyped-def]
        for child in multiprocessing.active_children():
            if child.name == f"admin-export-{job_id}":
                try:
                    nice = os.getpriority(os.PRIO_PROCESS, child.pid)
                except OSError:
                    return None
                return child if nice == os.getpriority(os.PRIO_PROCESS, 0) + 10 else None
        return None

    child = wait_until(niced_child, timeout=30, interval=0.005, what="the export's child")
    os.kill(child.pid, signal.SIGKILL)
    job = wait_job(c, job_id)
    assert job["state"] == "failed" and job["notice"], job
    assert job["note"].startswith("导出未完成：内部错误"), job
    assert not list((hub.config.files_dir / "jobs").glob(f"export-{job_id}-*"))
    # the next export is unaffected
    job = wait_job(c, _ask_export(c))
    assert (job["state"], job["done"], job["total"]) == ("done", 30, 30), job


def test_a_burst_of_asks_queues_no_more_than_the_limit(site):
    """Eight exports asked by one operator at the same moment (eight signed-in tabs): the
    count and the new job are one locked step, so exactly ``MAX_UNFINISHED`` (3) are
    queued and the others refused with the Chinese notice, nothing queued for them."""
    hub, url = site
    for n in range(200):
        new_case(hub, [MANUAL], f"BURST-{n}")
    burst = 8
    clients = [_client(url, "clerk") for _ in range(burst)]
    for c in clients:
        c.get("/admin/manual")
    barrier = threading.Barrier(burst)

    def ask(c: Client) -> str:
        barrier.wait(timeout=30)
        resp = c.post("/admin/manual/export", {"county": MANUAL}, follow=False)
        assert resp.status_code in (302, 303), resp.text[:200]
        return resp.headers["Location"]

    with ThreadPoolExecutor(burst) as pool:
        places = list(pool.map(ask, clients))
    queued = [p for p in places if "job=" in p]
    assert len(queued) == MAX_UNFINISHED, places
    assert len(_jobs(hub)) == MAX_UNFINISHED
    refused = clients[places.index(next(p for p in places if "job=" not in p))]
    assert f"您已有 {MAX_UNFINISHED} 个导出或导入任务" in refused.get("/admin/manual").text


def test_a_scope_check_of_a_workbook_with_70_000_case_numbers_is_one_report(make_hub, store_url):
    """A county operator's workbook naming 70,000 cases: the scope check asked for all of
    them in one IN list, past PostgreSQL's 65,535 bound parameters, and the import ended
    in an internal error instead of its row report. Now a few hundred at a time."""
    import io as _io

    from adapters.manual_excel import import_workbook
    from tests.county_support import new_case

    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's limit of 65,535 bound parameters (SQLite's is higher)")
    hub = make_hub(store_url, inbound=[])
    other = new_case(hub, "rental_filing", "511703", apply_no="SCOPE-1")
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("房屋租赁备案")
    ws.append(["案件编号", "新环节"])
    for n in range(70_000):
        ws.append([f"5117022026120{n:09d}", "受理"])
    ws.append([other, "受理"])
    raw = _io.BytesIO()
    wb.save(raw)
    report = import_workbook(hub, raw.getvalue(), "clerk", divisions=["511702"])
    assert report.errors == [("房屋租赁备案", 70_002, f"案件 {other} 不在您的数据权限范围内")]
    assert report.applied == 0


def _filled_export(c: Client, subs: list[str]) -> bytes:
    """The operator's export of ``MANUAL`` with ``subs`` marked 受理, as a clerk fills it."""
    resp = export_zip(c, county=MANUAL)
    wb, ws, header = exported_sheet(resp.content)
    for r in range(2, ws.max_row + 1):
        if ws.cell(r, 1).value in subs:
            ws.cell(r, header.index("新环节") + 1, "受理")
    return saved(wb)


_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _with_strings(xlsx: bytes, count: int, text: bytes = b"a") -> bytes:
    """``xlsx`` with ``count`` more entries ``text`` in its shared-strings table (none
    used by a cell): valid, within every limit of the import, small on the wire, and
    costly to read (each becomes a Python string: 32 MB of them took 10 s and 250 MB)."""
    extra = b"<si><t>" + text + b"</t></si>"
    extra *= count
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = src.namelist()
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/sharedStrings.xml":
                head, sep, tail = data.rpartition(b"</sst>")
                data = head + extra + sep + tail
            elif info.filename == "[Content_Types].xml" and "xl/sharedStrings.xml" not in names:
                data = data.replace(b"</Types>", (
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
                    b"</Types>"))
            dst.writestr(info, data)
        if "xl/sharedStrings.xml" not in names:  # openpyxl wrote the cells' text inline
            dst.writestr("xl/sharedStrings.xml", f'<sst xmlns="{_MAIN}">'.encode() + extra
                         + b"</sst>")
    return out.getvalue()


@pytest.mark.parametrize("limit", ["memory", "time"])
def test_a_job_past_its_memory_or_time_is_stopped_and_says_so(make_hub, store_url, limit):
    """A workbook within every part limit can still be costly to read. The job's child
    may map ``admin.job_memory_mb`` and run ``admin.job_minutes``: past either it is
    stopped, its job failed with a Chinese reason, nothing applied, and the web process
    goes on answering. Under the memory limit the same workbook without the padding
    imports, so the limit, not the set-up, stops the padded one (under the 3 s time
    limit the unpadded one would race the child's own start on a loaded machine)."""
    settings = {"job_memory_mb": 300} if limit == "memory" else {"job_minutes": 0.05}
    hub = make_hub(store_url, inbound=[], admin=settings)
    server = HubServer(hub).start()
    try:
        add_operator(hub, "clerk", ALL_FUNCTIONS, (MANUAL,))
        subs = [new_case(hub, [MANUAL], f"LIM-{n}")["subs"][MANUAL] for n in range(2)]
        c = _client(server.url, "clerk")
        filled = _filled_export(c, subs)
        padded = (_with_strings(filled, 1_990_000, b"\xe6\x88\xbf" * 5) if limit == "memory"
                  else _with_strings(filled, 1_500_000))  # within 2,000,000 and 64 MB
        assert len(padded) < 1 << 20
        c.get("/admin/manual")
        resp = c.http.post(c.base + "/admin/manual/import", data={"csrf_token": c.token},
                           files={"workbook": ("filled.xlsx", padded)})
        job = wait_job(c, job_of(resp), timeout=120)
        assert job["state"] == "failed", (job['note'], job['state'])
        expected = ("导入超出后台任务可用的内存（300 MB）而停止，未导入任何行" if limit == "memory"
                    else "导入运行超过 0.05 分钟而停止，未导入任何行")
        assert job["note"].startswith(expected), job["note"]
        assert c.get("/admin/manual").status_code == 200  # the web process goes on
        with hub.db.read_session() as s:
            assert not s.scalars(select(StageEvent).where(StageEvent.stage == "accepted")).all()
        assert not list((hub.config.files_dir / "jobs").glob("import-*"))  # upload removed
        if limit == "memory":
            assert "导入完成：应用 2 行" in import_page(c, filled)
    finally:
        server.stop()


@pytest.mark.parametrize(("setting", "value"), [
    ("job_memory_mb", "lots"), ("job_memory_mb", 100), ("job_memory_mb", True),
    ("job_minutes", 0), ("job_minutes", 2000)])
def test_a_wrong_job_limit_stops_the_start_naming_it(make_hub, store_url, setting, value):
    from hub import ConfigError

    hub = make_hub(store_url, inbound=[], admin={setting: value})
    with pytest.raises(ConfigError, match=rf"config\.yaml: admin\.{setting}: .*\(got "):
        HubServer(hub).start()


def test_a_workbook_naming_a_case_outside_the_operators_divisions_is_refused(site):
    """The city's admin exports every manual county; a 渠县 clerk imports that workbook
    with stages filled for a 渠县 case and a 宣汉县 one. The 宣汉县 row is named (the
    clerk may not act on it) and nothing is applied, the 渠县 row neither; the clerk's
    own rows alone import. Read once for both checks (adapters.manual_excel)."""
    hub, url = site
    mine = new_case(hub, [MANUAL], "SCOPE-MINE")["subs"][MANUAL]
    theirs = new_case(hub, [OTHER], "SCOPE-THEIRS")["subs"][OTHER]
    resp = export_zip(_client(url, "root"))
    wb, ws, header = exported_sheet(resp.content)
    rows = {ws.cell(r, 1).value: r for r in range(2, ws.max_row + 1) if ws.cell(r, 1).value}
    for case_no in (mine, theirs):
        ws.cell(rows[case_no], header.index("新环节") + 1, "受理")
    both = io.BytesIO()
    wb.save(both)
    c = _client(url, "clerk")
    page = import_page(c, both.getvalue())
    assert "导入未应用任何行" in page
    # the row is named; the other division's case number is not shown to this clerk
    assert f"<td>房屋租赁备案</td><td>{rows[theirs]}</td><td>案件 *" in page
    assert "不在您的数据权限范围内" in page and theirs not in page
    with hub.db.read_session() as s:
        assert not s.scalars(select(StageEvent).where(StageEvent.stage == "accepted")).all()
    ws.delete_rows(rows[theirs])
    own = io.BytesIO()
    wb.save(own)
    assert "导入完成：应用 1 行" in import_page(c, own.getvalue())
