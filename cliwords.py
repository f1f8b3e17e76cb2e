"""The command line in the operators' words: argparse's own texts (usage, help headings,
"invalid choice", "the following arguments are required"…) in Chinese, and the parser
whose every argument error is one Chinese line ``错误：…`` with exit code 2.

argparse looks its texts up through ``argparse._`` / ``argparse.ngettext`` (gettext) each
time it prints one, so ``install()`` replaces those two lookups; a text not listed
below stays as argparse wrote it.
"""

from __future__ import annotations

import argparse
from typing import Any

ZH = {
    "usage: ": "用法：",
    "positional arguments": "位置参数",
    "options": "选项",
    "subcommands": "子命令",
    "show this help message and exit": "显示本帮助并退出",
    "show program's version number and exit": "显示版本并退出",
    "argument %(argument_name)s: %(message)s": "参数 %(argument_name)s：%(message)s",
    "the following arguments are required: %s": "缺少必填参数：%s",
    "invalid choice: %(value)r (choose from %(choices)s)":
        "无效的取值 %(value)r（可选：%(choices)s）",
    "unrecognized arguments: %s": "无法识别的参数：%s",
    "expected one argument": "需要一个值",
    "expected at most one argument": "最多一个值",
    "expected at least one argument": "至少需要一个值",
    "not allowed with argument %s": "不能与参数 %s 同时使用",
    "one of the arguments %s is required": "参数 %s 必须给出其中一个",
    "ignored explicit argument %r": "多余的值 %r",
    "ambiguous option: %(option)s could match %(matches)s":
        "选项 %(option)s 不明确，可能是 %(matches)s",
    "unexpected option string: %s": "意外的选项：%s",
    "invalid %(type)s value: %(value)r": "无效的取值 %(value)r（应为 %(type)s）",
    "unknown parser %(parser_name)r (choices: %(choices)s)":
        "未知命令 %(parser_name)r（可用：%(choices)s）",
    "can't open '%(filename)s': %(error)s": "不能打开 %(filename)s：%(error)s",
    "%(prog)s: error: %(message)s\n": "%(prog)s：错误：%(message)s\n",
}
ZH_PLURAL = {"expected %s argument": "需要 %s 个值"}


def _(text: Any) -> Any:
    return ZH.get(text, text) if isinstance(text, str) else text


def _n(singular: str, plural: str, n: int) -> str:
    return ZH_PLURAL.get(singular) or (singular if n == 1 else plural)


def install() -> None:
    """argparse speaks Chinese from now on (in this process)."""
    argparse._ = _  # type: ignore[attr-defined]
    argparse.ngettext = _n  # type: ignore[attr-defined]


class OneLineParser(argparse.ArgumentParser):
    """An argument error is one Chinese line on stderr (no usage block) and exit code 2;
    usage and help in Chinese (``install``). Subcommands' parsers are of this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        install()
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"错误：命令参数有误：{message}（运行 {self.prog} -h 查看用法）\n")


def whole_number(text: str) -> int:
    """``type=`` of a whole-number option (``--port``, ``--id``): a Chinese refusal."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"应为整数：{text[:40]!r}") from None


def seconds(text: str) -> float:
    """``type=`` of a number of seconds."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"应为秒数（数字）：{text[:40]!r}") from None
