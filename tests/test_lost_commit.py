"""A COMMIT that reached the store but whose answer was lost (the connection dropped
in between): the intake's unit runs again, recognises its own committed request by its
call-log row's ref id, and answers as the first run would have — for an accepted
application, for a failed validation (not 1003 for its own nonce) and for the 一网通办
entry's submission, which has no nonce (not 5000 for its own call-log row). All through
waitress.

The loss is made at the library's edge: an engine ``commit`` listener that raises the
driver's "connection lost" after SQLite has committed (``store.db`` commits in its own
listener, which runs first). SQLite only: on PostgreSQL the listener runs before the
real COMMIT, so nothing would have been committed.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from adapters.sim.portal import handover_token
from store.identity_models import EntryHandover
from store.models import CallLogEntry, Case
from tests.county_support import secret
from tests.hubserver import application, province_env
from tests.test_entry import RENTAL, confirm


class LoseOneCommitAnswer:
    """Arms a listener that fails the next group commit's COMMIT after it committed."""

    def __init__(self, hub: Any) -> None:
        self.engine, self.armed, self.lost = hub.db.engine, False, 0
        event.listen(self.engine, "commit", self._after_commit)

    def _after_commit(self, _conn: Any) -> None:
        frame, grouped = sys._getframe(), False
        while frame is not None:  # only the intake's shared transaction
            grouped = grouped or frame.f_code.co_name == "_committed"
            frame = frame.f_back
        if self.armed and grouped:
            self.armed = False
            self.lost += 1
            raise OperationalError("COMMIT", {}, ConnectionResetError("connection lost"),
                                   connection_invalidated=True)

    def close(self) -> None:
        event.remove(self.engine, "commit", self._after_commit)


@pytest.fixture
def env(make_hub: Any, sqlite_url: str) -> Iterator[tuple[Any, LoseOneCommitAnswer]]:
    world = province_env(make_hub, sqlite_url)
    loss = LoseOneCommitAnswer(world.hub)
    try:
        yield world, loss
    finally:
        loss.close()
        world.close()


def _stored(hub: Any) -> tuple[list[str], int]:
    with hub.transaction() as s:
        stages = [c.stage for c in s.scalars(select(Case).where(Case.county_code == ""))]
        calls = s.scalar(select(func.count()).select_from(CallLogEntry)
                         .where(CallLogEntry.direction == "in"))
    return stages, int(calls or 0)


def test_a_failed_validation_is_answered_as_such_after_its_commit_answer_is_lost(env):
    world, loss = env
    bad = application(lessee_id_no="110105198001011230")  # a wrong check digit
    loss.armed = True
    answer = world.client.submit("rental_filing", bad)
    assert loss.lost == 1
    assert (answer.status, answer.body["code"]) == (400, "2002"), answer.body  # not 1003
    assert any("lessee_id_no" in e["field"] for e in answer.body["errors"]), answer.body
    assert _stored(world.hub) == (["validation_failed"], 1)  # once, with its one log row


def test_an_accepted_application_keeps_its_answer_after_its_commit_answer_is_lost(env):
    world, loss = env
    loss.armed = True
    answer = world.client.submit("rental_filing", application())
    assert loss.lost == 1
    assert (answer.status, answer.body["code"]) == (200, "0000"), answer.body
    again = world.client.submit("rental_filing", application())  # the province's repeat
    assert again.body["data"]["case_no"] == answer.body["data"]["case_no"]
    assert _stored(world.hub) == (["received"], 2)


def test_an_entry_submission_without_a_nonce_is_answered_after_its_commit_answer_is_lost(
        make_hub: Any, sqlite_url: str) -> None:
    """The 一网通办 entry submits through the intake with no nonce: its own committed
    call-log row answers the run again (before: a duplicate ref id, three times, 5000)."""
    world = province_env(make_hub, sqlite_url, inbound=["province", "county_smart", "entry"])
    loss = LoseOneCommitAnswer(world.hub)
    try:
        url, apply_no = world.server.url, "510000-20261206-E0001"
        http = requests.Session()
        page = http.post(f"{url}/entry/rental_filing", timeout=10, data={
            "token": handover_token(secret("province"), "rental_filing", apply_no, "511702")})
        assert page.status_code == 200 and 'id="confirm-form"' in page.text
        form = confirm(url, http, page.text)
        assert form.status_code == 200 and apply_no in form.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        loss.armed = True
        done = http.post(f"{url}/entry/s/submit", timeout=10,
                         data={**RENTAL, "csrf_token": csrf})
        assert loss.lost == 1
        assert done.status_code == 200 and "申请已提交" in done.text, done.text[:300]
        case_no = re.search(r'id="case-no">([^<]+)<', done.text).group(1)
        with world.hub.transaction() as s:
            parents = s.scalars(select(Case).where(Case.county_code == "")).all()
            handover = s.scalars(select(EntryHandover)).one()
        assert [(c.case_no, c.stage) for c in parents] == [(case_no, "received")]
        assert handover.case_no == case_no
    finally:
        loss.close()
        world.close()
