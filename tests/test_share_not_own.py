"""A department acts only for itself (departments.md, DESIGN "Every partner is
untrusted"): a court changes or releases only the 失信被执行人 entries and seizures it
reported. Another court's attempt is 1004, changes nothing, is in the sharing audit and
raises an alert — also when both courts push the same new record at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from adapters.sim.departments import DepartmentClient
from store.models import Alert
from store.share_models import ShareAccess, ShareDefaulter, ShareSeizure
from tests.county_support import secret, served

LISTED = "110105198001011238"
OTHER = "11010519491231002X"
CASE = "(2026)川1702执123号"


@pytest.fixture
def courts(make_hub, store_url):
    hub = make_hub(store_url, inbound=["departments"], partners={
        "court": {"department": "court"}, "court_dachuan": {"department": "court"}})
    with served(hub) as url:
        a, b = (DepartmentClient(url, app, secret(app)) for app in ("court", "court_dachuan"))
        yield hub, a, b
        a.close()
        b.close()


def _defaulters(hub) -> list[tuple[str, str, str | None, str]]:
    with hub.db.session() as s:
        return [(r.case_no, r.court, r.removed_at, r.app_id)
                for r in s.scalars(select(ShareDefaulter).order_by(ShareDefaulter.id))]


def _alerts(hub) -> list[str]:
    with hub.db.session() as s:
        return list(s.scalars(select(Alert.title).where(Alert.kind == "share_not_own")))


def test_another_court_cannot_remove_or_rewrite_a_defaulter_entry(courts):
    hub, a, b = courts
    assert a.list_defaulter(LISTED, "王五", CASE, "通川区人民法院").body["code"] == "0000"
    before = _defaulters(hub)
    removal = b.list_defaulter(LISTED, "王五", CASE, "达川区人民法院", removed_at="2026-11-20")
    assert (removal.status, removal.body["code"]) == (403, "1004"), removal.body
    assert removal.body["errors"] == [{"field": "entries[0]",
                                       "reason": "reported by another department"}]
    # a batch with one foreign entry is refused whole: its own new entry is not stored
    batch = b.call("defaulters", {"entries": [
        {"id_no": OTHER, "name": "张三", "case_no": "(2026)川1703执1号", "court": "达川区人民法院",
         "listed_at": "2026-11-02", "removed_at": None},
        {"id_no": LISTED, "name": "王五", "case_no": CASE, "court": "达川区人民法院",
         "listed_at": "2026-11-02", "removed_at": None}]})
    assert batch.body["code"] == "1004" and [e["field"] for e in batch.body["errors"]] == [
        "entries[1]"]
    assert _defaulters(hub) == before == [(CASE, "通川区人民法院", None, "court")]
    with hub.db.session() as s:
        refused = list(s.scalars(select(ShareAccess.code).where(
            ShareAccess.app_id == "court_dachuan", ShareAccess.action == "push.defaulters")))
    assert refused == ["1004", "1004"]
    [title] = _alerts(hub)  # one open alert per department and push; repeats audited
    assert "court_dachuan" in title and "已拒绝" in title and "失信被执行人" in title
    # the court that listed it removes it
    own = a.list_defaulter(LISTED, "王五", CASE, "通川区人民法院", removed_at="2026-11-20")
    assert own.body["code"] == "0000" and own.body["data"]["changed"] == 1
    assert _defaulters(hub) == [(CASE, "通川区人民法院", "2026-11-20", "court")]


def test_another_court_cannot_release_a_seizure(courts):
    hub, a, b = courts
    assert a.seize("CF-2026-001", "H-1", "通川区人民法院", "(2026)川1702执保5号"
                   ).body["code"] == "0000"
    release = b.seize("CF-2026-001", "H-1", "达川区人民法院", "(2026)川1703执保1号",
                      released_at="2026-11-21")
    assert (release.status, release.body["code"]) == (403, "1004")
    with hub.db.session() as s:
        row = s.scalars(select(ShareSeizure)).one()
        assert (row.released_at, row.court, row.app_id) == (None, "通川区人民法院", "court")
    assert len(_alerts(hub)) == 1
    assert a.seize("CF-2026-001", "H-1", "通川区人民法院", "(2026)川1702执保5号",
                   released_at="2026-11-21").body["code"] == "0000"


def test_two_courts_pushing_the_same_new_entry_at_once_one_owns_it(courts):
    hub, a, b = courts
    for round_ in range(20):
        case_no = f"(2026)川1702执9{round_}号"
        answers: dict[str, str] = {}
        start = threading.Barrier(2)

        def push(client, court, start=start, answers=answers, case_no=case_no):
            start.wait()
            answers[client.app_id] = client.list_defaulter(LISTED, "王五", case_no, court
                                                           ).body["code"]

        threads = [threading.Thread(target=push, args=(c, n))
                   for c, n in ((a, "通川区人民法院"), (b, "达川区人民法院"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers.values()) == ["0000", "1004"], answers
        [winner] = [app for app, code in answers.items() if code == "0000"]
        rows = [r for r in _defaulters(hub) if r[0] == case_no]
        assert len(rows) == 1 and rows[0][3] == winner
