"""A control character (a NUL, which no PostgreSQL text column can hold; a CR/LF) in a
path, query-string or form parameter, through the real server on both stores: the
partner APIs answer 2002 naming the parameter (logged, nothing stored), the admin pages
a Chinese 400 page; never a 500 (on PostgreSQL every lookup with it failed)."""

from __future__ import annotations

from sqlalchemy import func, select

from store.models import CallLogEntry, Case, StoredFile
from tests.hubserver import province_env
from tests.test_admin_fixtures import ALL_FUNCTIONS, Client, add_operator, serve_app

pytest_plugins = ["tests.test_admin_fixtures"]

ADMIN_PAGES = [
    "/admin/cases?case_no=%00&apply_no=%00&all=1", "/admin/cases/5117%0002",
    "/admin/messages?interface=%00&partner=%00", "/admin/calls?interface=%00&division=%00",
    "/admin/interfaces/route?county=%00&item=%00", "/admin/fund/6222%0001",
    "/admin/share?operator=%00", "/admin/audit?actor=%0D%0ASet-Cookie:%20a=b",
    "/admin/deadlines?county=%00", "/admin/manual?county=%00", "/admin/?county=%00",
    "/admin/stats.xlsx?county=%00",
]


def test_admin_pages_refuse_a_control_character_with_a_chinese_page(make_hub, store_url):
    hub = make_hub(store_url, inbound=[])
    url, stop = serve_app(hub)
    try:
        add_operator(hub, "ops", ALL_FUNCTIONS)
        c = Client(url)
        assert c.login("ops").status_code == 200
        for page in ADMIN_PAGES:
            r = c.get(page)
            assert r.status_code == 400, (page, r.status_code)
            assert "含有控制字符" in r.text, page
        c.get("/admin/messages")
        r = c.post("/admin/messages/resubmit", {"interface": "\x00", "dry_run": "1"})
        assert r.status_code == 400 and "含有控制字符" in r.text
        # the same pages with text are served
        assert c.get("/admin/cases?case_no=5117&all=1").status_code == 200
        assert c.get("/admin/audit?actor=张　三").status_code == 200
    finally:
        stop()


def test_partner_apis_answer_2002_for_a_control_character_in_a_parameter(make_hub, store_url):
    env = province_env(make_hub, store_url)
    try:
        for path in ("/api/province/v1/materials/ab%00cd",
                     "/api/province/v1/materials/abcd?x=%00",
                     "/api/province/v1/rental%00filing"):
            method = "POST" if "rental" in path else "GET"
            ans = env.client.request(method, path, b"{}" if method == "POST" else b"")
            assert (ans.status, ans.body["code"]) == (400, "2002"), (path, ans.raw[:300])
        with env.hub.db.session() as s:
            assert s.scalar(select(func.count()).select_from(Case)) == 0
            assert s.scalar(select(func.count()).select_from(StoredFile)) == 0
            codes = list(s.scalars(select(CallLogEntry.code)))
        assert codes.count("2002") == 3 and "5000" not in codes
    finally:
        env.close()
