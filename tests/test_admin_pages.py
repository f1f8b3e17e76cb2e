"""Unknown URLs under /admin/ get the admin's HTML 404 page (after sign-in, like every
page), while real pages, static files and the app's JSON 404 elsewhere are unchanged."""

from __future__ import annotations

from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    Client,
    add_operator,
    client,
    county_peer,
    served,
)


def test_unknown_admin_url_gets_the_admin_404_page(served, client):  # noqa: F811
    add_operator(served.hub, "root", ALL_FUNCTIONS)
    # signed out: the sign-in page first, as for any admin URL
    resp = client.get("/admin/no-such-page", follow=False)
    assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"]
    assert client.login("root").status_code == 200

    for path in ("/admin/no-such-page", "/admin/a/b/c.html", "/admin/users/not-a-number",
                 "/admin/static"):
        resp = client.get(path, follow=False)
        assert resp.status_code == 404, path
        assert resp.headers["Content-Type"].startswith("text/html"), path
        assert "没有找到" in resp.text and 'id="login-submit"' not in resp.text, path
        assert resp.headers["X-Frame-Options"] == "DENY"
    client.get("/admin/users")
    resp = client.post("/admin/no-such-page", {})
    assert resp.status_code == 404 and "没有找到" in resp.text

    # real pages and static files are not shadowed; a wrong method stays a 405
    assert "用户" in client.get("/admin/users").text
    assert client.get("/admin/users").status_code == 200
    css = client.get("/admin/static/admin.css")
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert client.get("/admin/static/missing.css").status_code == 404
    resp = client.post("/admin/users", {})
    assert resp.status_code == 405 and "GET" in resp.headers["Allow"]

    # outside /admin the app's JSON 404 is unchanged
    resp = client.get("/no-such-endpoint")
    assert resp.status_code == 404 and resp.json()["code"] == "4001"
