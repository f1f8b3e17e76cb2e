"""Bad command-line input: one clear line on stderr, a non-zero exit, never a traceback,
and nothing in the audit trail for what did not happen (subprocesses, as an operator
runs them)."""

from __future__ import annotations

import subprocess
import zipfile

import pytest
from sqlalchemy import func, select

from hub import Hub, load_config
from store.models import AuditEntry
from tests.support import ROOT, hub_command

BAD = [
    ("export-manual", "--county", "999999", "--out", "{out}"),          # unknown county
    ("export-manual", "--item", "no_such_item", "--out", "{out}"),      # unknown item
    ("export-manual", "--county", "511702", "--out", "{out}"),          # not a manual county
    ("export-manual", "--out", "{file}"),                               # --out is a file
    ("import-manual", "{missing}"),                                     # no such file
    ("import-manual", "{text}"),                                        # not .xlsx
    ("import-manual", "{fake}"),                                        # .xlsx, not a zip
    ("import-manual", "{zipped}"),                                      # a zip, not a workbook
    ("resubmit", "--id", "987654"),                                     # no such message
    ("resubmit", "--id", "abc"),                                        # not a number
    ("resubmit", "--filter", "--since", "2026-13-45"),                  # bad date
    ("resubmit", "--filter", "--since", "yesterday"),                   # not a date
    ("resubmit", "--filter", "--county", "999999"),                     # unknown county
    ("resubmit", "--filter", "--item", "no_such_item"),                 # unknown item
    ("route", "--county", "999999", "--item", "rental_filing"),         # unknown county
    ("route", "--county", "511702", "--item", "no_such_item"),          # unknown item
    ("due", "--from", "2026-13-45", "--days", "3"),                     # bad date
    ("due", "--from", "yesterday", "--days", "3"),
]


def _run(config, *args):  # type: ignore[no-untyped-def]
    return subprocess.run(hub_command(config, *args), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"HUB_LOG_LEVEL": "WARNING",
                                                      "PATH": "/usr/bin:/bin"})


def _audits(config) -> int:  # type: ignore[no-untyped-def]
    hub = Hub(load_config(config))
    try:
        with hub.transaction() as s:
            return s.scalar(select(func.count()).select_from(AuditEntry)) or 0
    finally:
        hub.close()


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_input_is_one_line_and_a_non_zero_exit(make_config, sqlite_url, tmp_path, args):
    config = make_config(sqlite_url)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "fake.xlsx").write_text("not a workbook")
    (tmp_path / "a-file").write_text("x")
    with zipfile.ZipFile(tmp_path / "zipped.xlsx", "w") as z:
        z.writestr("notes.txt", "not a workbook")
    paths = {"out": str(tmp_path / "out"), "file": str(tmp_path / "a-file"),
             "missing": str(tmp_path / "nope.xlsx"), "text": str(tmp_path / "notes.txt"),
             "fake": str(tmp_path / "fake.xlsx"),
             "zipped": str(tmp_path / "zipped.xlsx")}
    before = _audits(config)
    done = _run(config, *(a.format(**paths) for a in args))
    assert done.returncode != 0, done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    # every line speaks to operators: Chinese, with the code or value at fault
    assert lines[0].startswith("错误："), lines[0]
    assert "error:" not in lines[0]
    named = [a.format(**paths) for a in args[1:] if not a.startswith("--")]
    assert any(v[:16] in lines[0] for v in named if v != "3"), lines[0]
    assert not (tmp_path / "out").exists()  # nothing written
    assert _audits(config) == before


def test_dry_run_has_column_headers(make_config, sqlite_url):
    config = make_config(sqlite_url)
    done = _run(config, "resubmit", "--filter", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split("\t") == [
        "id", "status", "interface", "partner", "division", "attempts", "last_error"]


@pytest.mark.parametrize("args", [("migrate",), ("resubmit", "--filter", "--dry-run"),
                                  ("due", "--from", "2026-09-30", "--days", "3")])
def test_an_unreachable_store_is_one_chinese_line(make_config, args):
    config = make_config("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    done = _run(config, *args)
    assert done.returncode == 2, done.stdout
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1].startswith("错误：") and "hub.py migrate" in lines[-1], done.stderr


def test_a_broken_secrets_file_is_one_chinese_line(make_config, sqlite_url):
    config = make_config(sqlite_url)
    secrets = load_config(config).secrets_file
    secrets.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_text("{not json")
    done = _run(config, "init-secrets")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("错误：配置有误") and str(secrets) in line and "init-secrets" in line
    assert secrets.read_text() == "{not json"  # nothing overwritten


def test_import_manual_names_each_bad_row_in_chinese(make_config, sqlite_url, tmp_path):
    import io

    import openpyxl

    from adapters.manual_excel import export_workbook
    from tests.county_support import new_case, stages_of
    from tests.test_excel import MANUAL, fill, save

    config = make_config(sqlite_url)
    hub = Hub(load_config(config))
    try:
        case_no = new_case(hub, "rental_filing", MANUAL, apply_no="CLI-1")
        xlsx, _ = export_workbook(hub, MANUAL, "rental_filing")
    finally:
        hub.close()
    wb = openpyxl.load_workbook(io.BytesIO(xlsx))
    ws = wb["房屋租赁备案"]
    fill(ws, [c.value for c in ws[1]], 2, new_stage="办完了")
    (tmp_path / "filled.xlsx").write_bytes(save(wb))
    before = _audits(config)
    done = _run(config, "import-manual", str(tmp_path / "filled.xlsx"))
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    first, last = done.stderr.strip().splitlines()
    assert first.startswith("错误：工作表 '房屋租赁备案' 第 2 行：") and "办完了" in first
    assert last == "未导入任何行：1 行有错误，请改正这些行后重新导入"
    assert _audits(config) == before
    hub = Hub(load_config(config))
    try:
        assert stages_of(hub, case_no) == []
    finally:
        hub.close()


def test_init_secrets_and_migrate_answer_in_chinese(make_config, sqlite_url):
    config = make_config(sqlite_url)
    secrets = _run(config, "init-secrets")
    assert secrets.returncode == 0, secrets.stderr
    assert secrets.stdout.strip() == f"密钥文件已就绪：{load_config(config).secrets_file}"
    migrated = _run(config, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.strip().splitlines()[-1].startswith("数据库已是最新结构：sqlite")
