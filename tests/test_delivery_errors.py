"""A delivery's failure in the clerks' words (mapping/delivery_errors.py), on the pages
through the real server: the message list said 「gave up after 1 attempts:
NewConnectionError: HTTPConnection(host='127.0.0.1', port=9)…」."""

from __future__ import annotations

from mapping.delivery_errors import explain
from tests.support import wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    Client,
    add_operator,
    county_peer,
    new_case,
    served,
)


def test_the_engines_errors_read_in_chinese_and_unknown_ones_keep_their_text():
    assert explain("gave up after 5 attempts: ConnectTimeoutError: timed out") == \
        "已重试 5 次，不再自动重试；连接对方系统超时"
    assert explain("MaxRetryError: NewConnectionError('…Connection refused')") == \
        "无法连接对方系统（地址不通或对方服务未启动）"
    assert explain("ReadTimeoutError: read timed out") == "对方系统在时限内没有答复"
    said = explain("permanent: HTTP 400 code 2002: data.house_id: required")
    assert said.startswith("对方拒收，不再自动重试；对方答复 HTTP 400，结果代码 2002")
    said = explain("HTTP 400 code 2002: data.house_id: required")
    assert said.startswith("对方答复 HTTP 400，结果代码 2002") and said.endswith("required")
    assert explain("HTTP 502: answer is not JSON (Expecting value)") == \
        "对方答复 HTTP 502，内容不是 JSON"
    assert explain("something new: x") == "发送失败：something new: x"
    assert explain(None) == "" and explain("") == ""
    # what the peer wrote goes through ``quoted`` (the admin's masker); the hub's words not
    assert explain("HTTP 400 code 2002: 张三丰", quoted=lambda s: "*" * len(s)).endswith(
        "2002（" + explain("HTTP 400 code 2002: x").split("（")[1].split("）")[0] + "）：***")


def test_the_message_list_explains_a_parked_delivery(make_hub, sqlite_url):
    hub = make_hub(sqlite_url, inbound=[], partners={
        "county_511702": {"base_url": "http://127.0.0.1:9/county/511702",
                          "division": "511702", "timeout": 1}},
        retry_policies={"default": {"max_attempts": 1, "min_backoff": 0.01,
                                    "max_backoff": 0.01}})
    from tests.test_admin_fixtures import serve_app

    url, stop = serve_app(hub)
    try:
        add_operator(hub, "root", ALL_FUNCTIONS)
        new_case(hub, ["511702"], "ERR-1")
        hub.start_workers(threads=1)
        wait_until(lambda: "已重试 1 次，不再自动重试；无法连接对方系统" in _listing(hub, url),
                   what="the parked message, explained")
        listing = _listing(hub, url)
        assert 'title="gave up after 1 attempts:' in listing  # the raw text, on hover
    finally:
        stop()


def _listing(hub, url: str) -> str:  # type: ignore[no-untyped-def]
    c = Client(url)
    c.login("root")
    return c.get("/admin/messages").text.split('id="message-list"')[1]
