"""Numeric query and form parameters of the admin pages are bounded before conversion
(issue 10): a page number past the store's integers, or a 10 000-digit setting, is a
normal answer (page 1, a format error for the operator), never a 500."""

from __future__ import annotations

from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    Client,
    add_operator,
    client,
    county_peer,
    served,
)

PAGES = ["99999999999999999999", "9" * 10_000, "-1", "1e309", "nan", "0x10", "１"]


def test_page_numbers_are_bounded(served, client):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    assert client.login("root").status_code == 200
    for path in ("/admin/cases", "/admin/messages", "/admin/manual", "/admin/audit"):
        for page in PAGES:
            resp = client.get(f"{path}?page={page}")
            assert resp.status_code == 200, (path, page[:30], resp.status_code)


def test_integer_settings_are_bounded(served, client):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    assert client.login("root").status_code == 200
    client.get("/admin/settings")
    for value in ("9" * 10_000, "99999999999999999999", "1e3", "-5"):
        resp = client.post("/admin/settings/params", {"lockout_threshold": value})
        assert resp.status_code == 200, (value[:30], resp.status_code)
        assert "格式不正确" in resp.text, value[:30]
    resp = client.post("/admin/settings/params", {"lockout_threshold": "6"})
    assert resp.status_code == 200 and "已保存参数" in resp.text
