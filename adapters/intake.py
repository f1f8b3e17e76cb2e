"""The intake of the province's requests: parse, idempotency, open the case, answer.

One path for every kind of request (a new application, with or without materials, a
repeat, a sync query, a valid request taking over the record of a failed validation,
a failed validation, a listed defaulter's refusal): one *unit* of the process's group
commit (store.group_commit, in a savepoint of its own) that records the nonce, looks
the (item, apply_no) up, plans the writes (adapters.case_plan: routes, numbered rows,
the answer) and has the store write them (store.case_write.write_case) with the
request's call-log row — committed before the answer is sent. That row's ref id is the
request's idempotency key when a COMMIT's answer is lost and the unit runs again.

The answer is stored on the parent case (``answer_enc``) so a repeat of (item,
apply_no) gets the same answer and creates nothing; concurrent duplicates meet at the
unique constraint (namespace, item, apply_no, county_code) — the loser's unit fails
alone, runs again and answers the winner's answer. The province's numbers are
namespace "": a case a county opened itself (申请并受理) is in that county's namespace
and never found or blocked here.

Validation failures are recorded too (spec 4.1): a parent case at stage
``validation_failed`` holding what was sent, and that stage pushed to the province.
A later *valid* request with the same apply_no (the province corrected it) takes that
record over: the parent keeps its history and is opened normally, with its sub-cases.
A request without a usable ``apply_no`` is answered and call-logged, but no case is
recorded: there is no key to record or report it under.

Sync queries are delivered to the county at once, after the commit, through the
outbox rows the plan queued (held from the workers meanwhile; ``Dispatcher.deliver_now``),
so the call is logged, and retried later by the workers if the county does not answer
in time. Then the answer is ``pending`` and the county adapter's ``after_delivery``
pushes ``/results``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.case_plan import CaseBasis, case_basis, plan_case, plan_failure
from adapters.dispatch import Dispatcher, worker_name
from adapters.web import PendingCallLog, call_context, envelope
from mapping.canonical import CanonicalCase, FieldError
from mapping.items import Item, ItemKind
from mapping.province_in import FIELD_INVALID, ValidationFailure, parse_application
from mapping.validators import apply_no_ok
from store import files
from store.calllog import logged
from store.case_write import write_case
from store.cases import province_message
from store.models import CallLogEntry, Case, OutboxMessage, utcnow
from store.outbox import mark_new_rows, took_new_rows
from store.row_batch import RowBatch
from store.unit_open import Opening, open_unit

if TYPE_CHECKING:
    from adapters.auth import PendingNonce
    from hub import Hub

VALIDATION_FAILED = "validation_failed"
#: Extra seconds a sync query's outbox row is kept from the workers while the intake calls.
INLINE_GRACE = 10.0

#: True while the intake delivers a sync query itself: the answer goes back in the same
#: call, so ``after_delivery`` must not push ``/results`` for it.
INLINE_DELIVERY: ContextVar[bool] = ContextVar("inline_delivery", default=False)

# --------------------------------------------------------------------------- answers


def iso_utc(at: datetime) -> str:
    return at.isoformat(timespec="seconds") + "+00:00" if at.tzinfo is None else at.isoformat()


def accepted_answer(hub: Hub, parent: Any, subs: list[Any]) -> dict[str, Any]:
    """The hub's 受理 record (province.md): case number, time, receiver, sub-cases."""
    return envelope("0000", "accepted", {
        "case_no": parent.case_no,
        "received_at": iso_utc(parent.created_at),
        "receiver": hub.config.hub_app_id,
        "sub_cases": [{"county_code": s.county_code, "case_no": s.case_no} for s in subs],
    })


def pending_answer(hub: Hub, parent: Any, subs: list[Any]) -> dict[str, Any]:
    answer = accepted_answer(hub, parent, subs)
    answer["message"] = "pending: the result will be pushed to /results"
    answer["data"]["status"] = "pending"
    return answer


@dataclass
class _Outcome:
    answer: dict[str, Any]
    case_id: int | None
    #: Sub-cases a sync query delivers now: (case id, case_no, county).
    deliver_now: list[tuple[int, str, str]] = field(default_factory=list)


#: What a unit does once the nonce is recorded and no answer is stored for the key:
#: (connection, its opening reads — the failed record found or None, the case ids
#: reserved —, the batch its INSERTs go to) -> (answer, parent id, sub-cases to deliver).
Decide = Callable[[Connection, Opening, RowBatch], _Outcome]


@contextmanager
def orm_session(conn: Connection) -> Iterator[Session]:
    """A Session on a unit's connection, in a savepoint of the unit's transaction (which
    stays the group's): its messages wake the workers when the group commits."""
    with Session(bind=conn, join_transaction_mode="create_savepoint",
                 autoflush=False) as s:
        yield s
        if took_new_rows(s):
            mark_new_rows(conn)
        s.commit()  # releases the savepoint


class Intake:
    """The province's requests, from a parsed body to a committed case and its answer."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    # -- entry point

    def submit(self, item: Item, doc: dict[str, Any],
               nonce: PendingNonce | None = None) -> dict[str, Any]:
        """Handle one request for ``item``; returns the envelope to answer with.

        ``nonce`` (from ``authenticate_deferred``) is recorded inside the transaction
        that stores the request, which also writes the call-log row of an accepted one:
        one commit per accepted application. Where no transaction commits, the caller
        settles the nonce (``PendingNonce.settle``).
        """
        record = call_context()
        record.item = item.code
        log = PendingCallLog.of_request()
        try:
            canonical = parse_application(item, doc, self.hub.city)
            record.division = canonical.county_codes[0] if canonical.county_codes else None
            listing = self.hub.sharing.refusal(canonical)  # a listed defaulter (departments.md)
            if listing is not None:
                def refuse(conn: Connection, opening: Opening, _batch: RowBatch) -> _Outcome:
                    with orm_session(conn) as s:
                        answer, case_id = self.hub.sharing.refuse(s, canonical, listing,
                                                                  opening.found)
                    return _Outcome(answer, case_id)
                return self._run(canonical.item, canonical.apply_no, nonce, log, refuse).answer
            sync = item.kind is ItemKind.SYNC_QUERY
            basis = case_basis(self.hub, canonical)  # before the transaction: no store in it
            outcome = self._run(canonical.item, canonical.apply_no, nonce, log,
                                lambda s, opening, batch: self._open(s, canonical, basis,
                                                                     opening, sync, batch),
                                ids=len(canonical.county_codes) + 1)
            if sync and outcome.deliver_now:
                return self._deliver_sync(outcome)
            return outcome.answer
        except ValidationFailure as failure:
            return self._record_failure(item, doc, failure, nonce, log)

    # -- the one path

    def _run(self, item: str, apply_no: str, nonce: PendingNonce | None,
             log: PendingCallLog, decide: Decide, ids: int = 0) -> _Outcome:
        """The request as a unit of the group commit (see the module doc): its opening
        reads in one statement (``store.unit_open``; ``ids`` case ids reserved there),
        its INSERTs in one more (``store.row_batch``) on PostgreSQL."""
        hub = self.hub

        def unit(s: Connection) -> _Outcome:
            batch = RowBatch()
            log.record.case_id = None  # a unit may run again: nothing of a rolled-back run
            opening = open_unit(
                s, item, apply_no,
                None if nonce is None else (nonce.app_id, nonce.nonce, utcnow()),
                None if nonce is None else nonce.interface, ids)
            found = opening.found
            if found is not None and logged(s, log.record.ref_id):
                # This very request committed (its case, its call-log row and any nonce)
                # and the COMMIT's answer was lost with the connection: as then, whatever
                # that answer was (accepted, or a failed validation's).
                return _Outcome(self._stored_answer(found[3], found[1]), found[0])
            if not opening.nonce_new:
                assert nonce is not None
                nonce.claim(s)  # 1003, or a stale sighting refreshed (then the switch)
            elif opening.disabled:
                assert nonce is not None
                raise nonce.disabled_error()
            if found is not None and found[2] != VALIDATION_FAILED:
                outcome = _Outcome(self._stored_answer(found[3], found[1]), found[0])
            else:
                outcome = decide(s, opening, batch)
            log.record.case_id = outcome.case_id
            # The call-log row commits with the case, whatever the answer: its ref id is
            # the key that recognises this request's own commit when it runs again.
            log.write(s, outcome.answer, batch)
            batch.flush(s)
            return outcome

        for attempt in range(3):
            try:
                outcome = hub.group_commit.run(unit)
            except BaseException as exc:
                if isinstance(exc, IntegrityError) and attempt < 2:
                    continue  # a concurrent duplicate won: its row is visible now
                log.record.case_id = None  # nothing of it committed (or not known to)
                raise
            if nonce is not None:
                nonce.committed = True
            log.logged()
            call_context().case_id = outcome.case_id
            return outcome
        raise AssertionError("unreachable")

    def _stored_answer(self, answer_enc: bytes | None, case_no: str) -> dict[str, Any]:
        """The first answer given for a case, as stored on it."""
        answer = self.hub.cipher.open_json(answer_enc)
        return answer or envelope("0000", "accepted", {"case_no": case_no})

    def _check_materials(self, conn: Connection, canonical: CanonicalCase) -> None:
        """Every material must be a file uploaded for this apply_no (and its counties)."""
        with orm_session(conn) as s:
            found = files.infos(s, [m.file_id for m in canonical.materials])
        errors: list[FieldError] = []
        for i, m in enumerate(canonical.materials):
            f = found.get(m.file_id)
            path = f"materials[{i}].file_id"
            if f is None:
                errors.append(FieldError(path, "no uploaded material has this file_id"))
            elif f.apply_no and f.apply_no != canonical.apply_no:
                errors.append(FieldError(path, "the file was uploaded for another apply_no"))
            elif f.county_code and f.county_code not in canonical.county_codes:
                errors.append(FieldError(path, f"the file was uploaded for county "
                                               f"{f.county_code}, not one of this request's"))
        if errors:
            raise ValidationFailure(FIELD_INVALID, f"{len(errors)} material(s) invalid", errors)

    def _open(self, s: Connection, canonical: CanonicalCase, basis: CaseBasis,
              opening: Opening, sync: bool, batch: RowBatch) -> _Outcome:
        """A new case, or a failed record (``opening.found``) taken over, with its
        sub-cases."""
        hub = self.hub
        found = opening.found
        if canonical.materials:
            self._check_materials(s, canonical)
        made = pending_answer if sync else accepted_answer
        kind = "sync_query" if sync else ("take_over" if found is not None else
                                          "materials" if canonical.materials else "new")
        answers: list[dict[str, Any]] = []

        def answer_for(parent: Any, subs: list[Any]) -> dict[str, Any]:
            answers.append(made(hub, parent, subs))
            return answers[-1]

        planned = plan_case(hub, s, canonical, kind=kind, taken_over=found,
                            answer_for=answer_for, ids=opening.ids, basis=basis)
        if sync and planned.plan.messages:  # the intake delivers them itself, after COMMIT
            planned.plan.hold_until = utcnow() + timedelta(
                seconds=max(m.timeout for m in planned.plan.messages) + INLINE_GRACE)
        write_case(s, hub.cipher, planned.plan, batch)
        answer = answers[-1]
        delivered = {m.case_id for m in planned.plan.messages}
        return _Outcome(answer, planned.parent.id,
                        [(row.id, row.case_no, row.county_code) for row, _ in planned.subs
                         if sync and row.id in delivered])

    # -- sync queries

    def _deliver_sync(self, outcome: _Outcome) -> dict[str, Any]:
        hub = self.hub
        with hub.db.read_session() as s:
            message_of = dict(s.execute(
                select(OutboxMessage.case_id, OutboxMessage.id)
                .where(OutboxMessage.case_id.in_([c for c, *_ in outcome.deliver_now]))).all())
        results: list[tuple[tuple[int, str, str], Any]] = []
        dispatcher = Dispatcher(hub, worker_name("intake"))
        for sub in outcome.deliver_now:
            data = None
            message_id = message_of.get(sub[0])
            if message_id:
                token = INLINE_DELIVERY.set(True)
                try:
                    status = dispatcher.deliver_now(message_id)
                finally:
                    INLINE_DELIVERY.reset(token)
                if status == "done":
                    data = self._county_data(message_id)
            results.append((sub, data))
        if any(data is None for _, data in results):
            self._push_partial(results)
            return outcome.answer
        if len(results) == 1:
            final = envelope("0000", "ok", results[0][1])
        else:
            final = envelope("0000", "ok", {"sub_cases": [
                {"county_code": county, "case_no": case_no, "data": data}
                for (_, case_no, county), data in results]})
        with hub.transaction() as s:
            s.execute(update(Case).where(Case.id == outcome.case_id)
                      .values(answer_enc=hub.cipher.seal_json(final))
                      .execution_options(synchronize_session=False))
        return final

    def _county_data(self, message_id: int) -> Any:
        with self.hub.db.session() as s:  # the county's answer is kept in the call log
            sealed = s.scalar(select(CallLogEntry.response_enc)
                              .where(CallLogEntry.message_id == message_id)
                              .order_by(CallLogEntry.id.desc()).limit(1))
        answer = self.hub.cipher.open_json(sealed) or {}
        data = answer.get("data") if isinstance(answer, dict) else None
        return data if data is not None else {}

    def _push_partial(self, results: list[tuple[tuple[int, str, str], Any]]) -> None:
        """Answering ``pending``: the counties that did answer inline go out by /results."""
        done = [(case_id, data) for (case_id, *_), data in results if data is not None]
        if not done:
            return
        with self.hub.transaction() as s:
            for case_id, data in done:
                sub = s.get(Case, case_id)
                assert sub is not None
                self.hub.enqueue(s, province_message(self.hub, sub, "results",
                                                     results_payload(sub, data)))

    # -- validation failures

    def _record_failure(self, item: Item, doc: dict[str, Any], failure: ValidationFailure,
                        nonce: PendingNonce | None, log: PendingCallLog) -> dict[str, Any]:
        hub = self.hub
        answer = envelope(failure.code, failure.message,
                          errors=[e.to_dict() for e in failure.errors])
        apply_no = doc.get("apply_no")
        if not apply_no_ok(apply_no):
            return answer
        opinion = "; ".join(f"{e.field}: {e.reason}" for e in failure.errors)[:2000]

        def record(s: Connection, opening: Opening, batch: RowBatch) -> _Outcome:
            planned = plan_failure(hub, s, item.code, apply_no, doc, answer, opinion,
                                   opening.found, VALIDATION_FAILED, ids=opening.ids)
            write_case(s, hub.cipher, planned.plan, batch)
            return _Outcome(answer, planned.parent.id)

        return self._run(item.code, apply_no, nonce, log, record, ids=1).answer


def results_payload(case: Case, data: Any) -> dict[str, Any]:
    """The body of ``POST {province}/results`` for one (sub-)case."""
    return {"apply_no": case.apply_no, "item": case.item, "county_code": case.county_code or None,
            "case_no": case.case_no, "data": data}
