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
        "编号", "状态", "接口", "对接方", "区县", "已尝试次数", "最后错误"]
    assert done.stdout.splitlines()[-1] == "试运行：将重新提交 0 条消息（未发送任何消息）"


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


def test_export_and_import_manual_answer_in_chinese(make_config, sqlite_url, tmp_path):
    import io

    import openpyxl

    from tests.county_support import new_case, stages_of
    from tests.test_excel import MANUAL, fill, save

    config = make_config(sqlite_url)
    hub = Hub(load_config(config))
    try:
        case_no = new_case(hub, "rental_filing", MANUAL, apply_no="CLI-OK-1")
    finally:
        hub.close()
    out = tmp_path / "out"
    done = _run(config, "export-manual", "--county", MANUAL, "--out", str(out))
    assert done.returncode == 0, done.stderr
    [xlsx] = out.glob("*.xlsx")
    [archive] = out.glob("*-materials.zip")
    assert done.stdout.strip() == f"已导出人工办理清单：{xlsx}（工作簿），{archive}（材料）"
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.read_bytes()))
    ws = wb["房屋租赁备案"]
    fill(ws, [c.value for c in ws[1]], 2, new_stage="受理")
    (tmp_path / "filled.xlsx").write_bytes(save(wb))
    done = _run(config, "import-manual", str(tmp_path / "filled.xlsx"), "--operator", "王")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.strip() == "导入完成：应用 1 个环节，跳过重复 0 行"
    again = _run(config, "import-manual", str(tmp_path / "filled.xlsx"))
    assert again.returncode == 0, again.stderr
    header, skipped, total = again.stdout.strip().splitlines()
    assert header == "工作表\t行\t说明"
    assert skipped.startswith("房屋租赁备案\t2\t") and skipped.isascii() is False
    assert total == "导入完成：应用 0 个环节，跳过重复 1 行"
    hub = Hub(load_config(config))
    try:
        assert stages_of(hub, case_no) == ["accepted"]
    finally:
        hub.close()


def test_check_answers_in_chinese(make_config, sqlite_url):
    done = _run(make_config(sqlite_url), "check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("配置无误：达州市（511700），"), done.stdout


#: argparse's own refusals, in Chinese (cliwords.py): (arguments, words of the line).
PARSER_ERRORS = [
    (("nonsense",), "参数 命令：无效的取值 'nonsense'（可选：'init-secrets',"),
    ((), "缺少必填参数：命令"),
    (("route",), "缺少必填参数：--county, --item"),
    (("route", "--county"), "参数 --county：需要一个值"),
    (("resubmit", "--status", "foo"), "参数 --status：无效的取值 'foo'（可选：'dead', 'done'）"),
    (("resubmit", "--id", "x"), "参数 --id：应为整数：'x'"),
    (("serve", "--port", "eighty"), "参数 --port：应为整数：'eighty'"),
    (("check", "--bogus"), "无法识别的参数：--bogus"),
    (("export-manual",), "缺少必填参数：--out"),
    (("import-manual",), "缺少必填参数：工作簿"),
    (("due", "--from", "2026-10-01", "--days", "-1"), "参数 --days：工作日数应为 0 到"),
    (("demo", "--every", "often"), "参数 --every：应为秒数（数字）：'often'"),
]


@pytest.mark.parametrize("args,words", PARSER_ERRORS, ids=[" ".join(a) or "-" for a, _ in
                                                           PARSER_ERRORS])
def test_argument_errors_are_one_chinese_line(make_config, sqlite_url, args, words):
    done = _run(make_config(sqlite_url), *args)
    assert done.returncode == 2 and done.stdout == "", done.stdout
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("错误：命令参数有误：") and words in line, line
    assert line.endswith("查看用法）"), line
    for english in ("usage", "error:", "invalid", "required", "expected", "unrecognized"):
        assert english not in line, line


#: Every command's help, the fund supervision's included.
HELPED = ["init-secrets", "migrate", "check", "serve", "worker", "route", "resubmit", "demo",
          "export-manual", "import-manual", "create-admin", "due", "bank-account",
          "fund-account", "fund-house", "fund-instruction", "fund-held"]


@pytest.mark.parametrize("command", [None, *HELPED])
def test_help_is_in_chinese(make_config, sqlite_url, command):
    import re

    args = ("-h",) if command is None else (command, "-h")
    done = _run(make_config(sqlite_url), *args)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("用法：hub.py"), text
    assert "显示本帮助并退出" in text and "show this help" not in text
    assert "options:" not in text and "positional arguments" not in text
    han = re.compile(r"[\u4e00-\u9fff]")
    # every option and command described, in Chinese
    described = [line for line in text.splitlines() if re.match(r"  \S", line)
                 and len(re.split(r"\s{2,}", line.strip(), maxsplit=1)) == 2]
    assert described, text
    for line in described:
        assert han.search(line), line
