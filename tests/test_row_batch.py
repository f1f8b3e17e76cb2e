"""The intake's two PostgreSQL statements give what their portable twins give.

``store.row_batch`` writes a unit's INSERTs as one statement on PostgreSQL and
``store.unit_open`` makes its four opening reads one; every other store runs the
statements one by one. On PostgreSQL both forms run here side by side, on the same
rows, and must leave and answer the same. On SQLite the portable form is what runs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from routes.policy import RetryPolicy
from store import case_write
from store.calllog import CallRecord, write_calls
from store.models import CallLogEntry, Case, InterfaceSwitch, OutboxMessage, utcnow
from store.outbox import NewMessage, insert_messages
from store.row_batch import RowBatch
from store.unit_open import open_unit, portable_open_unit

SKIP = {"id", "case_no", "apply_no", "parent_id", "case_id", "ref_id"}


def _rows(hub: Any, tag: str, ids: list[int]) -> tuple[list[dict[str, Any]], NewMessage,
                                                         CallRecord]:
    now = utcnow()
    parent, sub = ids
    common = {"item": "rental_filing", "namespace": "", "city_code": "511700",
              "source": "province", "stage": "received", "route_adapter": None,
              "route_mode": None, "applicant_id_hash": hub.cipher.id_hash("11010519491231002X"),
              "payload_enc": hub.cipher.seal_json({"n": "张三"}), "answer_enc": None,
              "created_at": now, "updated_at": now, "promised_days": None, "due_at": None}
    cases = [{**common, "id": parent, "case_no": f"P{tag}", "parent_id": None,
              "apply_no": f"A{tag}", "county_code": ""},
             {**common, "id": sub, "case_no": f"S{tag}", "parent_id": parent,
              "apply_no": f"A{tag}", "county_code": "511702", "route_adapter": "county_smart",
              "route_mode": "api", "promised_days": 5, "due_at": now + timedelta(days=7)}]
    message = NewMessage("county.apply", "county_smart", "county_511702", "apply",
                         {"case_no": f"S{tag}", "名": "李四"}, RetryPolicy(max_attempts=7), 9.5,
                         division="511702", item="rental_filing", case_id=sub)
    record = CallRecord("province.rental_filing", "in", "province", now, division="511702",
                        item="rental_filing", case_id=parent, request={"apply_no": f"A{tag}"},
                        response={"code": "0000"}, code="0000")
    return cases, message, record


def _write(hub: Any, tag: str, batched: bool) -> list[int]:
    """A parent, its sub-case, the sub-case's outbox row and the parent's call-log row,
    batched or one statement after another; the two case ids."""
    with hub.db.engine.begin() as conn:
        ids = case_write.reserve_case_ids(conn, 2)
        cases, message, record = _rows(hub, tag, ids)
        if batched:
            batch = RowBatch()
            batch.add(case_write._INSERT_CASES, cases)
            insert_messages(conn, hub.cipher, [message], batch=batch)
            write_calls(conn, hub.cipher, [record], batch=batch)
            assert batch
            batch.flush(conn)
            assert not batch
        else:
            case_write._INSERT_CASES.executemany(conn, cases)
            insert_messages(conn, hub.cipher, [message])
            write_calls(conn, hub.cipher, [record])
    return ids


def _stored(hub: Any, ids: list[int]) -> list[dict[str, Any]]:
    """Every column of what was written for the case ``ids``, sealed values opened."""
    parent, sub = ids
    out = []
    with hub.db.engine.connect() as conn:
        for table, where in ((Case, Case.id == parent), (Case, Case.id == sub),
                             (OutboxMessage, OutboxMessage.case_id == sub),
                             (CallLogEntry, CallLogEntry.case_id == parent)):
            (row,) = conn.execute(select(table.__table__).where(where)).mappings().all()
            out.append({k: hub.cipher.open_json(v) if k.endswith("_enc") and v else v
                        for k, v in row.items() if k not in SKIP and not k.endswith("_at")})
    return out


def test_a_batch_writes_the_rows_its_statements_write_one_by_one(make_hub, store_url):
    hub = make_hub(store_url)
    one_by_one = _stored(hub, _write(hub, "x", batched=False))
    batched = _stored(hub, _write(hub, "y", batched=True))
    for row in batched[:2] + one_by_one[:2]:
        assert row["payload_enc"] == {"n": "张三"}
    assert batched[2]["payload_enc"]["名"] == "李四"
    batched[2]["payload_enc"]["case_no"] = one_by_one[2]["payload_enc"]["case_no"]
    batched[3]["request_enc"] = one_by_one[3]["request_enc"]
    assert batched == one_by_one


def test_a_failing_batch_writes_nothing(make_hub, store_url):
    hub = make_hub(store_url)
    parent, _ = _write(hub, "z", batched=True)
    with pytest.raises(IntegrityError), hub.db.engine.begin() as conn:
        ids = case_write.reserve_case_ids(conn, 2)
        cases, message, _record = _rows(hub, "z", ids)
        cases[0]["apply_no"] = "A-new"  # a new parent, then a sub-case already there
        cases[1]["parent_id"] = parent
        batch = RowBatch()
        batch.add(case_write._INSERT_CASES, [cases[0]])
        insert_messages(conn, hub.cipher, [replace(message, case_id=parent)], batch=batch)
        batch.add(case_write._INSERT_CASES, [cases[1]])
        batch.flush(conn)
    with hub.db.engine.connect() as conn:
        assert conn.scalar(select(Case.id).where(Case.apply_no == "A-new")) is None
        assert conn.scalar(text("SELECT count(*) FROM outbox")) == 1


def _both(hub: Any, **kw: Any) -> tuple[Any, Any]:
    """``open_unit`` and its portable twin on the same state (each rolled back)."""
    answers = []
    for fn in (open_unit, portable_open_unit):
        with hub.db.engine.connect() as conn, conn.begin() as tx:
            answers.append(fn(conn, **kw))
            tx.rollback()
    return answers[0], answers[1]


def test_the_opening_statement_answers_as_its_four_statements_do(make_hub, store_url):
    hub = make_hub(store_url)
    parent, _ = _write(hub, "o", batched=True)
    now = utcnow()
    with hub.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO nonces (app_id, nonce, seen_at) VALUES "
                          "('province', 'seen', :t)"), {"t": now})
        conn.execute(InterfaceSwitch.__table__.insert(), [
            {"kind": "interface", "name": "province.off", "enabled": False, "changed_at": now},
            {"kind": "interface", "name": "province.on", "enabled": True, "changed_at": now}])
    cases = [
        ({"item": "rental_filing", "apply_no": "Ao", "nonce": ("province", "new1", now),
          "interface": "province.on", "ids": 3}, (parent, False, True, False, 3)),
        ({"item": "rental_filing", "apply_no": "none", "nonce": ("province", "seen", now),
          "interface": "province.off", "ids": 1}, (None, False, False, False, 1)),
        ({"item": "rental_filing", "apply_no": "none", "nonce": ("province", "new2", now),
          "interface": "province.off", "ids": 2}, (None, False, True, True, 2)),
        ({"item": "rental_filing", "apply_no": "Ao", "nonce": None, "interface": None,
          "ids": 0}, (parent, False, True, False, 0)),
        ({"item": "other_item", "apply_no": "Ao", "nonce": ("province", "new3", now),
          "interface": None, "ids": 1}, (None, False, True, False, 1)),
        ({"item": "rental_filing", "apply_no": "Ao", "nonce": ("province", "new4", now),
          "interface": "province.on", "ids": 1, "namespace": "county_511702"},
         (None, False, True, False, 1)),
    ]
    for kw, (found_id, _, nonce_new, disabled, n) in cases:
        one, four = _both(hub, **kw)
        assert (one.found is None) == (found_id is None), kw
        if found_id is not None:
            assert one.found[:3] == four.found[:3] == (parent, "Po", "received")
            assert bytes(one.found[3] or b"") == bytes(four.found[3] or b"")
        assert one.nonce_new == four.nonce_new == nonce_new, kw
        assert one.disabled == four.disabled == disabled, kw
        assert len(one.ids) == len(four.ids) == n, kw
        assert one.ids == sorted(set(one.ids)) and all(i > parent for i in one.ids)
