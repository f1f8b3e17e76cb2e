"""One write path for every kind of application (issue 12).

Over the real server, on SQLite and PostgreSQL: a new application, one with materials,
a sync query, a validation failure, the valid request taking its record over and a
county's 申请并受理 each end in the store's one writer
(``store.case_write.write_case``, whose ``written`` counter counts the plans per
kind), exactly once; a repeat writes nothing; and the rows they leave have one shape
(the same columns filled, whichever way they came).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from store import case_write
from store.models import Case, OutboxMessage
from tests import hostile
from tests.county_support import post_signed
from tests.hubserver import application, province_env

VERIFY = "presale_contract_verify"


@pytest.fixture
def env(make_hub, store_url):
    e = province_env(make_hub, store_url, inbound=["province", "county_smart"])
    yield e
    e.close()


def _written_since(before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in case_write.written.items()
            if v != before.get(k, 0)}


def _shape(case: Case, also: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Which columns of the row are filled (``also``: counted as filled)."""
    return tuple(c.key for c in Case.__table__.columns
                 if getattr(case, c.key) is not None or c.key in also)


def _rows(hub: Any, apply_no: str) -> list[Case]:
    with hub.transaction() as s:
        return list(s.scalars(select(Case).where(Case.apply_no == apply_no).order_by(Case.id)))


def test_every_kind_ends_in_the_one_writer_with_rows_of_one_shape(env):
    client, hub = env.client, env.hub
    env.county.state.answers[VERIFY] = {"filed": True}
    seen: dict[str, list[str]] = {}

    def one(kind: str, send: Any, apply_no: str, code: str = "0000") -> dict[str, Any]:
        before = dict(case_write.written)
        body = send()
        assert body["code"] == code, body
        assert _written_since(before) == {kind: 1}
        seen[kind] = [apply_no]
        return body

    # a new application, and its repeat: the first answer, nothing written
    first = one("new", lambda: client.submit("rental_filing", application(
        apply_no="K-NEW")).body, "K-NEW")
    before = dict(case_write.written)
    assert client.submit("rental_filing", application(apply_no="K-NEW")).body == first
    assert _written_since(before) == {}

    # with materials
    file_id = client.upload("K-MAT", "511702", "身份证明.png",
                            hostile.png(16, 16)).body["data"]["file_id"]
    with_materials = application(apply_no="K-MAT")
    with_materials["materials"] = [{"file_id": file_id, "name": "身份证明.png"}]
    one("materials", lambda: client.submit("rental_filing", with_materials).body, "K-MAT")

    # a sync query, answered in the same call
    assert one("sync_query", lambda: client.submit(VERIFY, application(
        VERIFY, apply_no="K-SYNC")).body, "K-SYNC")["data"] == {"filed": True}

    # a validation failure, then the corrected request taking its record over
    bad = application(apply_no="K-FIX")
    bad["data"]["lessee_id_no"] = "110105198001011230"
    one("validation_failed", lambda: client.submit("rental_filing", bad).body, "K-FIX",
        code="2002")
    one("take_over", lambda: client.submit("rental_filing", application(
        apply_no="K-FIX")).body, "K-FIX")

    # a county's own 申请并受理, in its namespace
    def county_apply() -> dict[str, Any]:
        return post_signed(env.server.url, "/api/county/v1/apply-and-accept", {
            "item": "rental_filing", "county_code": "511702", "county_case_no": "K-CTY",
            "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X"},
            "data": application()["data"], "at": "2026-11-23T09:00:00+08:00",
            "operator": "刘"}, "county_511702").json()
    one("county_apply_and_accept", county_apply, "K-CTY")

    # the rows: parents of one shape, sub-cases of one shape, whatever the kind
    parents, subs = {}, {}
    for kind, (apply_no,) in seen.items():
        rows = _rows(hub, apply_no)
        parents[kind] = _shape(rows[0])
        if kind != "validation_failed":
            [sub] = rows[1:]
            subs[kind] = _shape(sub)
            assert sub.parent_id == rows[0].id and sub.case_no.startswith("511702")
    # (the county's own parent carries no province answer: it was never asked)
    assert "answer_enc" not in parents["county_apply_and_accept"]
    parents["county_apply_and_accept"] = _shape(_rows(hub, "K-CTY")[0], also=("answer_enc",))
    assert len(set(parents.values())) == 1, parents
    assert len(set(subs.values())) == 1, subs

    # each county delivery went out through the outbox of the one writer
    with hub.transaction() as s:
        delivered = {c for c, in s.execute(select(Case.apply_no).join(
            OutboxMessage, OutboxMessage.case_id == Case.id).where(
            OutboxMessage.interface.like("county.%")))}
    assert delivered == {"K-NEW", "K-MAT", "K-SYNC", "K-FIX"}
