"""Why a delivery failed, in the clerks' words.

An outbox row's ``last_error`` is written for the engineers who read logs (``store.outbox``,
``adapters.http``, ``adapters.fund.client``): ``gave up after 5 attempts: ConnectTimeoutError:
...``. The admin pages show this module's Chinese reading of it, with the raw text one
hover away. Pure: text in, text out; an error it does not know keeps its raw text after a
Chinese lead-in, so nothing is hidden.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mapping import names

_GAVE_UP = re.compile(r"gave up after (\d+) attempts: (.*)", re.S)
_HTTP_CODE = re.compile(r"HTTP (\d{3}) code ([^:]*): (.*)", re.S)
_HTTP_NOT_JSON = re.compile(r"HTTP (\d{3}): answer is not JSON", re.S)
_BANK = re.compile(r"bank answered ([^:]*): (.*)", re.S)
#: (what the raw text holds, what it means), first match wins.
_CAUSES = (
    (("ConnectTimeout", "ConnectTimeoutError"), "连接对方系统超时"),
    (("ReadTimeout", "ReadTimeoutError", "timed out", "TimeoutError"),
     "对方系统在时限内没有答复"),
    (("NewConnectionError", "ConnectionRefused", "Connection refused",
      "Name or service not known", "nodename nor servname"),
     "无法连接对方系统（地址不通或对方服务未启动）"),
    (("RemoteDisconnected", "ConnectionReset", "Connection reset", "ProtocolError",
      "IncompleteRead"), "对方系统中途断开了连接"),
    (("response too large",), "对方的答复过大，已拒收"),
    (("payload is not strict JSON",), "报文内容不是规范的 JSON，未发送"),
    (("SOAP fault",), "银行系统返回了 SOAP 错误"),
    (("SSLError", "CERTIFICATE_VERIFY_FAILED"), "与对方系统的加密连接（证书）校验失败"),
)


def explain(error: str | None, quoted: Callable[[str], str] = str) -> str:
    """``error`` (an outbox row's ``last_error``) in Chinese; "" for none. ``quoted``
    passes what the peer wrote (its message, an unknown error's text) before it is
    quoted: the admin masks personal data in it (not in the hub's own words, which the
    masker would take for names)."""
    if not error:
        return ""
    lead = ""
    if gave_up := _GAVE_UP.fullmatch(error):
        lead, error = f"已重试 {gave_up.group(1)} 次，不再自动重试；", gave_up.group(2)
    elif error.startswith("permanent: "):
        lead, error = "对方拒收，不再自动重试；", error[len("permanent: "):]
    return lead + _cause(error, quoted)


def _cause(error: str, quoted: Callable[[str], str]) -> str:
    if found := _HTTP_CODE.fullmatch(error):
        status, code, message = found.groups()
        named = names.name("result_codes", code)
        label = f"{code}（{named}）" if named != code else code
        return f"对方答复 HTTP {status}，结果代码 {label}：{quoted(message[:200])}"
    if found := _HTTP_NOT_JSON.match(error):
        return f"对方答复 HTTP {found.group(1)}，内容不是 JSON"
    if found := _BANK.fullmatch(error):
        return f"银行答复 {quoted(found.group(1))}：{quoted(found.group(2)[:200])}"
    for needles, meaning in _CAUSES:
        if any(n in error for n in needles):
            return meaning
    return f"发送失败：{quoted(error[:200])}"
