"""Shared set-up for the admin tests: a hub served by a real WSGI server on loopback,
operators with roles and divisions, cases opened through the production path, and an
HTTP client that signs in and carries the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from adapters.case_plan import open_case
from admin.people import create_user, set_role_functions, set_user_access
from hub import Hub
from mapping.canonical import Applicant, CanonicalCase
from store.admin_models import AdminRole
from tests.hubserver import HubServer

PASSWORD = "Test-passw0rd-long"
ID_NO = "11010519491231002X"
ALL_FUNCTIONS = ("view", "resubmit", "mark_stage", "export", "manage_interfaces",
                 "manage_users", "manage_settings", "view_personal_data", "view_audit")
COUNTY_FUNCTIONS = ("view", "resubmit", "mark_stage", "export")


@dataclass
class Served:
    hub: Hub
    url: str


def serve_app(hub: Hub) -> tuple[str, Callable[[], None]]:
    """The hub's app (admin included) on the production server (waitress)."""
    server = HubServer(hub).start()
    return server.url, server.stop


def add_operator(hub: Hub, username: str, functions: tuple[str, ...],
                 divisions: tuple[str, ...] | None = None) -> None:
    """A user with one role of ``functions``; ``divisions`` None means the whole city."""
    with hub.transaction() as s:
        role = AdminRole(name=f"role-{username}")
        s.add(role)
        s.flush()
        set_role_functions(s, role, functions)
        user = create_user(s, username, username, PASSWORD, all_divisions=divisions is None)
        set_user_access(s, user, [role.id], divisions or (), hub.city.counties)


def new_case(hub: Hub, counties: list[str], apply_no: str,
             item: str = "rental_filing", id_no: str = ID_NO) -> dict[str, Any]:
    """Open a case the way the province intake does; returns its case numbers."""
    canonical = CanonicalCase(
        item=item, apply_no=apply_no, city_code="511700", county_codes=counties,
        applicant=Applicant(name="张三丰", id_type="1", id_no=id_no, phone="13800138000"),
        submitted_at=datetime.now(UTC),
        data={"lessee_name": "李四", "lessee_id_no": "110105194912310037",
              "lessor_name": "王五", "lessor_id_no": "110105194912310053",
              "house_id": "H-1", "address": "通川区某路 1 号"})
    with hub.transaction() as s:
        opened = open_case(s, hub, canonical)
        return {"parent": opened.parent.case_no,
                "subs": {sub.county_code: sub.case_no for sub, _ in opened.subs},
                "sub_ids": {sub.county_code: sub.id for sub, _ in opened.subs}}


class Client:
    """A browser-like HTTP client: cookies, and the CSRF token of the last page."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        self.token = ""

    def _remember(self, resp: requests.Response) -> requests.Response:
        found = re.search(r'name="csrf_token" value="([^"]+)"', resp.text)
        if found:
            self.token = found.group(1)
        return resp

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self._remember(
            self.http.get(self.base + path, allow_redirects=kw.pop("follow", True), **kw))

    def post(self, path: str, data: dict[str, Any] | None = None, csrf: bool = True,
             **kw: Any) -> requests.Response:
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.token)
        return self._remember(self.http.post(self.base + path, data=body,
                                             allow_redirects=kw.pop("follow", True), **kw))

    def login(self, username: str, password: str = PASSWORD) -> requests.Response:
        self.get("/admin/login")
        return self.post("/admin/login", {"username": username, "password": password})


@pytest.fixture
def county_peer(make_peer):  # type: ignore[no-untyped-def]
    return make_peer()


@pytest.fixture
def served(make_hub, sqlite_url, county_peer) -> Iterator[Served]:  # type: ignore[no-untyped-def]
    """A hub whose county 511702 is a loopback peer, served over real HTTP."""
    hub = make_hub(sqlite_url, inbound=[], partners={
        "county_511702": {"base_url": county_peer.url + "/county/511702", "division": "511702"},
        "county_511703": {"base_url": county_peer.url + "/county/511703", "division": "511703"},
    })
    url, stop = serve_app(hub)
    yield Served(hub, url)
    stop()


@pytest.fixture
def client(served: Served) -> Client:
    return Client(served.url)
