"""Where the admin pages send a browser next: the sign-in's ``next`` and a form's
``back`` stay under /admin/ however they are written (dot segments, encoded dots, a
CR/LF that would start a header of its own), through the real server (waitress)."""

from __future__ import annotations

import pytest

from admin.web import admin_path
from tests.test_admin_fixtures import ALL_FUNCTIONS, PASSWORD, Client, add_operator

pytest_plugins = ["tests.test_admin_fixtures"]

OUTSIDE = ["/admin/../..//evil.com", "/admin/%2e%2e/%2E%2E//evil.com", "/admin/./../x",
           "/admin/\r\nSet-Cookie: a=b", "//evil.com/admin/", "/admin\\..\\x",
           "https://evil.com/admin/", "/admin/" + "x" * 600, "/adminx/", ""]
INSIDE = ["/admin/", "/admin/messages?status=dead&page=2", "/admin/cases/5117022026#x",
          "/admin/a..b/", "/admin/manual?q=../x"]


@pytest.mark.parametrize("target", OUTSIDE)
def test_a_target_leading_out_of_admin_falls_back(target):
    assert admin_path(target, "/admin/fallback") == "/admin/fallback"


@pytest.mark.parametrize("target", INSIDE)
def test_a_target_under_admin_is_kept(target):
    assert admin_path(target, "/admin/fallback") == target


def test_next_and_back_through_the_server(served):
    add_operator(served.hub, "ops", ALL_FUNCTIONS)
    for target in ("/admin/../..//evil.com", "/admin/%2e%2e//evil.com"):
        c = Client(served.url)
        c.get("/admin/login")
        r = c.post(f"/admin/login?next={target}", {"username": "ops", "password": PASSWORD},
                   follow=False)
        assert r.status_code in (302, 303), r.text[:300]
        assert r.headers["Location"].endswith("/admin/"), r.headers["Location"]
    c = Client(served.url)
    assert c.login("ops").status_code == 200
    c.get("/admin/messages")
    for back, lands in (("/admin/\r\nSet-Cookie: a=b", "/admin/messages"),
                        ("/admin/../x", "/admin/messages"),
                        ("/admin/messages?status=dead", "/admin/messages?status=dead")):
        r = c.post("/admin/messages/resubmit", {"id": "999999", "back": back}, follow=False)
        assert r.status_code in (302, 303), (back, r.status_code)
        assert r.headers["Location"].endswith(lands), (back, r.headers["Location"])
        assert "a=b" not in r.headers.get("Set-Cookie", "")
        c.get("/admin/messages")
