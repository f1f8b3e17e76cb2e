"""The hub's log formatter: exceptions are logged by type and frames only; times are
in the operators' zone with their offset (config ``timezone``, Beijing time by default:
``2026-12-07 06:09:34.719+08:00``), whatever the server's own zone, as everything else
an operator reads.

An exception's text may carry what caused it — a field value, a row's parameters, an
answer's body with personal data — and log files are read by more people, kept longer
and shipped further than the store. The full text of a failed call stays in its sealed
call-log row (``store.calllog``, ``error``), found by the ref id the log line gives.
"""

from __future__ import annotations

import logging
import traceback
from datetime import datetime
from types import TracebackType
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")
#: The zone of the log lines this process writes (``use_zone``; the hub sets its config's).
_zone: ZoneInfo = BEIJING


def use_zone(name: str) -> None:
    """Stamp this process's log lines in the zone ``name`` (an IANA name, checked by the
    config) from now on."""
    global _zone
    _zone = ZoneInfo(name)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return list(reversed(seen))


class SafeFormatter(logging.Formatter):
    """``logging.Formatter`` whose tracebacks name each exception's type, not its text."""

    def format(self, record: logging.LogRecord) -> str:
        # logging caches a traceback's text on the record (``exc_text``) for the next
        # handler: never take another formatter's full text, never leave ours for it.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        at = datetime.fromtimestamp(record.created, _zone)
        if datefmt:
            return at.strftime(datefmt)
        return at.isoformat(sep=" ", timespec="milliseconds")

    def formatException(self, ei: ExcInfo) -> str:  # noqa: N802 (logging's name)
        lines: list[str] = []
        for exc in _chain(ei[1]):
            if lines:
                lines.append("which led to:")
            lines.append("Traceback (most recent call last):")
            for frame in traceback.extract_tb(exc.__traceback__):
                lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
            kind = type(exc)
            lines.append(f"{kind.__module__}.{kind.__qualname__} (text not logged)")
        return "\n".join(lines)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        return stack_info


def install(level: str | int, fmt: str) -> None:
    """Configure the root logger with one stderr handler using ``SafeFormatter``."""
    logging.basicConfig(level=level, format=fmt)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeFormatter(fmt))
