"""The intake of the province's requests: parse, idempotency, open the case, answer.

One request becomes one transaction that holds the case, its sub-cases and the
messages they cause, committed before the answer is sent. The answer is stored on
the parent case (``answer_enc``) so a repeat of (item, apply_no) gets the same
answer and creates nothing; concurrent duplicates rely on the unique constraint
(namespace, item, apply_no, county_code) — the loser rolls back and answers the
winner's answer. The province's numbers are namespace "": a case a county opened
itself (申请并受理) is in that county's namespace and never found or blocked here.

Validation failures are recorded too (spec 4.1): a parent case at stage
``validation_failed`` holding what was sent, and that stage pushed to the province.
A later *valid* request with the same apply_no (the province corrected it) takes that
record over: the parent keeps its history and is opened normally, with its sub-cases.
A request without a usable ``apply_no`` is answered and call-logged, but no case is
recorded: there is no key to record or report it under.

Sync queries are delivered to the county at once, inside the request, through the
outbox row ``open_case`` queued (``Dispatcher.deliver_now``), so the call is logged,
and retried later by the workers if the county does not answer in time. Then the
answer is ``pending`` and the county adapter's ``after_delivery`` pushes ``/results``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapters.dispatch import Dispatcher, worker_name
from adapters.web import (
    PendingCallLog,
    call_context,
    envelope,
    log_in_transaction,
    unlog_in_transaction,
)
from mapping.canonical import CanonicalCase, FieldError
from mapping.items import Item, ItemKind
from mapping.province_in import FIELD_INVALID, ValidationFailure, parse_application
from mapping.validators import apply_no_ok
from store import files
from store.calllog import logged
from store.cases import (
    case_no_for,
    insert_case,
    open_case,
    province_message,
    queue_county_delivery,
)
from store.group_commit import Question
from store.intake_checks import Asked, ask_together, find_parent, intake_checks
from store.models import CallLogEntry, Case, OutboxMessage, StageEvent, utcnow
from store.outbox import new_rows_committed
from store.resilience import retry_on_disconnect

if TYPE_CHECKING:
    from adapters.auth import PendingNonce
    from hub import Hub

VALIDATION_FAILED = "validation_failed"
#: Extra seconds a sync query's outbox row is kept from the workers while the intake calls.
INLINE_GRACE = 10.0

#: True while the intake delivers a sync query itself: the answer goes back in the same
#: call, so ``after_delivery`` must not push ``/results`` for it.
INLINE_DELIVERY: ContextVar[bool] = ContextVar("inline_delivery", default=False)

T = TypeVar("T")

class _UseSession(Exception):
    """A grouped intake unit cannot decide; its writes roll back and ``_accept`` runs."""



# --------------------------------------------------------------------------- answers


def iso_utc(at: datetime) -> str:
    return at.isoformat(timespec="seconds") + "+00:00" if at.tzinfo is None else at.isoformat()


def accepted_answer(hub: Hub, parent: Case, subs: list[Case]) -> dict[str, Any]:
    """The hub's 受理 record (province.md): case number, time, receiver, sub-cases."""
    return envelope("0000", "accepted", {
        "case_no": parent.case_no,
        "received_at": iso_utc(parent.created_at),
        "receiver": hub.config.hub_app_id,
        "sub_cases": [{"county_code": s.county_code, "case_no": s.case_no} for s in subs],
    })


def pending_answer(hub: Hub, parent: Case, subs: list[Case]) -> dict[str, Any]:
    answer = accepted_answer(hub, parent, subs)
    answer["message"] = "pending: the result will be pushed to /results"
    answer["data"]["status"] = "pending"
    return answer


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
        try:
            canonical = parse_application(item, doc, self.hub.city)
            record.division = canonical.county_codes[0] if canonical.county_codes else None
            listing = self.hub.sharing.refusal(canonical)  # a listed defaulter (departments.md)
            if listing is not None:
                return self._unique_retry(
                    lambda s: self.hub.sharing.refuse(s, canonical, listing), nonce)
            if item.kind is ItemKind.SYNC_QUERY:
                return self._sync(canonical, nonce)
            if not canonical.materials:
                answer = self._accept_grouped(canonical, nonce)
                if answer is not None:
                    return answer
            return self._unique_retry(lambda s: self._accept(s, canonical), nonce)
        except ValidationFailure as failure:
            return self._record_failure(item, doc, failure, nonce)

    # -- helpers

    def _unique_retry(self, work: Callable[[Session], T], nonce: PendingNonce | None = None
                      ) -> T:
        """Run ``work`` in a transaction (that first records ``nonce``); a concurrent
        duplicate's unique violation retries it once more, when the winner's row is
        visible and its answer is returned."""
        for attempt in range(3):
            def transaction() -> T:
                with self.hub.transaction() as s:
                    if nonce is not None:
                        nonce.claim(s)
                    return work(s)

            try:  # a connection lost before COMMIT: run again on a fresh one
                result = retry_on_disconnect(transaction, "province intake")
            except BaseException as exc:
                unlog_in_transaction()  # a call-log row written in it was rolled back too
                if isinstance(exc, IntegrityError) and attempt < 2:
                    continue
                raise
            if nonce is not None:
                nonce.committed = True
            return result
        raise AssertionError("unreachable")

    @staticmethod
    def _find(s: Session, item: str, apply_no: str) -> Case | None:
        # A Core lookup first: most requests are new and find nothing.
        found = find_parent(s, item, apply_no)
        return None if found is None else s.get(Case, found[0])

    def _stored(self, parent: Case) -> dict[str, Any]:
        call_context().case_id = parent.id
        return self._stored_answer(parent.answer_enc, parent.case_no)

    def _stored_answer(self, answer_enc: bytes | None, case_no: str) -> dict[str, Any]:
        """The first answer given for a case, as stored on it."""
        answer = self.hub.cipher.open_json(answer_enc)
        return answer or envelope("0000", "accepted", {"case_no": case_no})

    def _check_materials(self, s: Session, canonical: CanonicalCase) -> None:
        """Every material must be a file uploaded for this apply_no (and its counties)."""
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

    def _open(self, s: Session, canonical: CanonicalCase,
              answer_for: Callable[[Case, list[Case]], dict[str, Any]] | None = None,
              ) -> tuple[Case, list[Case]] | None:
        """Open (or take over a failed record for) the case; None if it exists already.
        ``answer_for`` makes the answer stored on a new parent (see ``open_case``)."""
        parent = self._find(s, canonical.item, canonical.apply_no)
        if parent is not None and parent.stage != VALIDATION_FAILED:
            return None
        self._check_materials(s, canonical)
        if parent is None:
            opened = open_case(s, self.hub, canonical, answer_for=answer_for)
            return opened.parent, [sub for sub, _ in opened.subs]
        return parent, self._reopen(s, parent, canonical)

    def _reopen(self, s: Session, parent: Case, canonical: CanonicalCase) -> list[Case]:
        """A valid request for an apply_no whose earlier attempt failed validation."""
        hub = self.hub
        payload = canonical.to_dict()
        id_hash = hub.cipher.id_hash(canonical.applicant.id_no or canonical.applicant.uscc)
        parent.stage, parent.updated_at = "received", utcnow()
        parent.payload_enc, parent.applicant_id_hash = hub.cipher.seal_json(payload), id_hash
        subs: list[Case] = []
        for county in canonical.county_codes:
            route = hub.routes.resolve(county, canonical.item)
            now = utcnow()
            sub = Case(
                case_no=f"tmp-{secrets.token_hex(8)}", parent_id=parent.id,
                item=canonical.item, apply_no=canonical.apply_no,
                city_code=canonical.city_code, county_code=county, source=parent.source,
                stage="received", route_adapter=route.adapter, route_mode=route.mode,
                applicant_id_hash=id_hash, payload_enc=hub.cipher.seal_json(payload),
                created_at=now, updated_at=now,
            )
            s.add(sub)
            s.flush()
            sub.case_no = case_no_for(county, sub.id, now)
            if not route.manual and hub.adapter(route.adapter).delivers:
                queue_county_delivery(s, hub, canonical, sub, route)
            subs.append(sub)
        return subs

    # -- applications and async queries

    def _accept_grouped(self, canonical: CanonicalCase, nonce: PendingNonce | None
                        ) -> dict[str, Any] | None:
        """The common case — a new application, or a repeat of an accepted one — as a unit
        of this process's group commit (store.group_commit): the nonce, the case rows,
        the county deliveries and the call-log row, committed with those of concurrent
        requests. None where the Session path (``_accept``) must decide: the apply_no
        holds a failed validation to take over, a duplicate committed in another
        process at the same moment, or the store cannot reserve case ids."""
        hub = self.hub
        if nonce is None:
            return None
        log = PendingCallLog.of_request()  # taken here: the unit may run on another thread
        asked = Asked(app_id=nonce.app_id, nonce=nonce.nonce, seen_at=utcnow(),
                      interface=nonce.interface, item=canonical.item,
                      apply_no=canonical.apply_no, count=1 + len(canonical.county_codes))
        question = Question(ask_together, asked)

        def unit(conn: Connection) -> tuple[dict[str, Any], int, bool]:
            checks = question.answer or intake_checks(conn, asked)
            if not checks.nonce_new:
                if checks.parent is not None and logged(conn, log.record.ref_id):
                    # This very request committed (its nonce, case and call-log row) and
                    # the COMMIT's answer was lost with the connection: answer as then.
                    case_id, case_no, _stage, answer_enc = checks.parent
                    log.record.case_id = case_id
                    return self._stored_answer(answer_enc, case_no), case_id, False
                nonce.claim(conn)  # 1003, or a stale sighting refreshed (then the switch)
            elif checks.disabled:
                raise nonce.disabled_error()
            if checks.parent is not None:
                case_id, case_no, stage, answer_enc = checks.parent
                if stage == VALIDATION_FAILED:
                    raise _UseSession
                answer, queued = self._stored_answer(answer_enc, case_no), False
            else:
                made: list[dict[str, Any]] = []
                written = insert_case(conn, hub, canonical, ids=checks.ids,
                                      answer_for=lambda parent, subs: (
                                          made.append(accepted_answer(hub, parent, subs))
                                          or made[-1]))
                if written is None:
                    raise _UseSession
                answer, case_id, queued = made[-1], written.parent.id, written.queued
            log.record.case_id = case_id
            if answer.get("code") == "0000":  # the call log commits with the case
                log.write(conn, answer)
            return answer, case_id, queued

        try:
            answer, case_id, queued = hub.group_commit.run(unit, question)
        except (_UseSession, IntegrityError):
            return None
        nonce.committed = True
        if answer.get("code") == "0000":
            log.logged()
        call_context().case_id = case_id
        if queued:  # committed on a bare connection: no session signal
            new_rows_committed(hub.db.engine)
        return answer

    def _accept(self, s: Session, canonical: CanonicalCase) -> dict[str, Any]:
        made: list[dict[str, Any]] = []

        def answer_for(parent: Case, subs: list[Case]) -> dict[str, Any]:
            made.append(accepted_answer(self.hub, parent, subs))
            return made[-1]

        opened = self._open(s, canonical, answer_for)
        if opened is None:
            answer = self._stored(self._find(s, canonical.item, canonical.apply_no))  # type: ignore[arg-type]
        else:
            parent, subs = opened
            if made:  # a new case: its answer is stored with it
                answer = made[-1]
            else:  # a failed record taken over
                answer = accepted_answer(self.hub, parent, subs)
                parent.answer_enc = self.hub.cipher.seal_json(answer)
            call_context().case_id = parent.id
        if answer.get("code") == "0000":  # the call log commits with the case
            log_in_transaction(s, answer)
        return answer

    # -- sync queries

    def _sync(self, canonical: CanonicalCase, nonce: PendingNonce | None = None
              ) -> dict[str, Any]:
        hub = self.hub

        def open_sync(s: Session) -> tuple[dict[str, Any], int | None, list[tuple[Case, int]]]:
            opened = self._open(s, canonical)
            if opened is None:
                parent = self._find(s, canonical.item, canonical.apply_no)
                return self._stored(parent), None, []  # type: ignore[arg-type]
            parent, subs = opened
            answer = pending_answer(hub, parent, subs)
            parent.answer_enc = hub.cipher.seal_json(answer)
            call_context().case_id = parent.id
            rows = s.execute(select(OutboxMessage.id, OutboxMessage.case_id, OutboxMessage.timeout)
                             .where(OutboxMessage.case_id.in_([c.id for c in subs]))).all()
            message_of = {case_id: mid for mid, case_id, _ in rows}
            if rows:  # keep the workers off these rows while this request calls the county
                hold = utcnow() + timedelta(seconds=max(t for *_, t in rows) + INLINE_GRACE)
                s.execute(update(OutboxMessage)
                          .where(OutboxMessage.id.in_(list(message_of.values())))
                          .values(next_attempt_at=hold)
                          .execution_options(synchronize_session=False))
            return answer, parent.id, [(c, message_of.get(c.id, 0)) for c in subs]

        answer, parent_id, subs = self._unique_retry(open_sync, nonce)
        if parent_id is None:
            return answer
        results: list[tuple[Case, Any]] = []
        dispatcher = Dispatcher(hub, worker_name("intake"))
        for sub, message_id in subs:
            data = None
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
            self._push_partial(parent_id, results)
            return answer
        if len(results) == 1:
            final = envelope("0000", "ok", results[0][1])
        else:
            final = envelope("0000", "ok", {"sub_cases": [
                {"county_code": sub.county_code, "case_no": sub.case_no, "data": data}
                for sub, data in results]})
        with hub.transaction() as s:
            s.execute(update(Case).where(Case.id == parent_id)
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

    def _push_partial(self, parent_id: int, results: list[tuple[Case, Any]]) -> None:
        """Answering ``pending``: the counties that did answer inline go out by /results."""
        done = [(sub, data) for sub, data in results if data is not None]
        if not done:
            return
        with self.hub.transaction() as s:
            for sub, data in done:
                self.hub.enqueue(s, province_message(self.hub, sub, "results",
                                                     results_payload(sub, data)))

    # -- validation failures

    def _record_failure(self, item: Item, doc: dict[str, Any], failure: ValidationFailure,
                        nonce: PendingNonce | None = None) -> dict[str, Any]:
        hub = self.hub
        answer = envelope(failure.code, failure.message,
                          errors=[e.to_dict() for e in failure.errors])
        apply_no = doc.get("apply_no")
        if not apply_no_ok(apply_no):
            return answer
        opinion = "; ".join(f"{e.field}: {e.reason}" for e in failure.errors)[:2000]

        def work(s: Session) -> dict[str, Any]:
            parent = self._find(s, item.code, apply_no)
            if parent is not None and parent.stage != VALIDATION_FAILED:
                return self._stored(parent)  # the first answer stands; nothing is created
            now = utcnow()
            applicant = doc.get("applicant") if isinstance(doc.get("applicant"), dict) else {}
            id_no = applicant.get("id_no") if isinstance(applicant.get("id_no"), str) else None
            if parent is None:
                parent = Case(
                    case_no=f"tmp-{secrets.token_hex(8)}", item=item.code, apply_no=apply_no,
                    city_code=hub.city.code, county_code="", source="province",
                    stage=VALIDATION_FAILED, applicant_id_hash=hub.cipher.id_hash(id_no),
                    payload_enc=hub.cipher.seal_json(doc), created_at=now, updated_at=now,
                )
                s.add(parent)
                s.flush()
                parent.case_no = case_no_for(hub.city.code, parent.id, now)
            else:
                parent.payload_enc, parent.updated_at = hub.cipher.seal_json(doc), now
            parent.answer_enc = hub.cipher.seal_json(answer)
            s.add(StageEvent(case_id=parent.id, stage=VALIDATION_FAILED, at=now,
                             opinion=opinion, source="hub"))
            hub.enqueue(s, province_message(hub, parent, "status", {
                "apply_no": apply_no, "item": item.code, "county_code": None,
                "case_no": parent.case_no, "stage": VALIDATION_FAILED, "at": iso_utc(now),
                "operator": hub.config.hub_app_id, "opinion": opinion, "filing_no": None,
            }))
            call_context().case_id = parent.id
            return answer

        return self._unique_retry(work, nonce)


def results_payload(case: Case, data: Any) -> dict[str, Any]:
    """The body of ``POST {province}/results`` for one (sub-)case."""
    return {"apply_no": case.apply_no, "item": case.item, "county_code": case.county_code or None,
            "case_no": case.case_no, "data": data}
