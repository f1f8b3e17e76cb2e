"""One way to apply a county stage, whoever reports it: a smart platform's callback, an
operator's mark on the admin page, or a row of an imported Excel workbook.

``check_stage`` validates what is reported (without touching the store) and
``apply_stage`` records it through ``store.cases.record_stage`` — which enforces
forward-only stages and queues the ``/status`` push — and, for an item whose answer is a
result (async result, or a sync query answered later), also queues ``/results``.

For many stages at once (an imported workbook) ``plan_stages`` decides every report
against the stored state — the same rules as ``record_stage``, without writing — and
``write_stages`` then records the planned ones with a few bulk statements: the same
``StageEvent`` rows, case stages and outbox messages as ``apply_stage`` one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from adapters.signing import DEFAULT_WINDOW
from mapping.items import ITEMS, ItemKind
from mapping.validators import parse_iso_datetime, text_ok
from store.cases import (
    Seen,
    StageOutcome,
    advance_stages,
    decide_stage,
    find_case,
    lock_stages,
    on_time,
    province_message,
    record_stage,
    status_payload,
)
from store.models import Case, StageEvent, utcnow
from store.outbox import NewMessage

if TYPE_CHECKING:
    from hub import Hub

#: Stages a county (or an operator for it) may report; apply_and_accept opens a case.
COUNTY_STAGES: tuple[str, ...] = ("accepted", "approved", "completed", "rejected")
#: Items whose 办结 must carry the filing number (备案号).
FILING_ITEMS = frozenset({"rental_filing", "presale_contract_filing", "resale_contract_filing"})
#: Items whose 办结 carries a result that goes to the province's ``/results``.
RESULT_ITEMS = frozenset(
    code for code, item in ITEMS.items()
    if item.kind in (ItemKind.ASYNC_RESULT, ItemKind.SYNC_QUERY)
)
MAX_TEXT = 2000
MAX_SHORT = 64
#: A stage may be reported at most this far ahead of the hub's clock: the contracts'
#: tolerance for a caller's clock (a signature's timestamp). Later is a typing error (a
#: workbook's 2062 for 2026, a county's 9999-12-31) that would stand in every deadline,
#: statistic and journey as the case's latest stage.
AT_AHEAD = timedelta(seconds=DEFAULT_WINDOW)


@dataclass(frozen=True)
class StageReport:
    """A stage as reported for one sub-case (times are naive UTC, as stored)."""

    stage: str
    at: datetime | None = None
    operator: str | None = None
    opinion: str | None = None
    filing_no: str | None = None
    result: Any = None


def parse_at(value: Any) -> datetime:
    """An ISO 8601 time with offset (or an aware datetime) → naive UTC."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    else:
        aware = parse_iso_datetime(value)
    try:
        return aware.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:  # year 1 or 9999 moved across midnight by the offset
        raise ValueError("the date-time is out of the range the hub can hold") from None


def check_stage(item: str, report: StageReport) -> list[tuple[str, str]]:
    """Field errors ``(field, reason)`` of a stage report for ``item``; empty when valid."""
    errors: list[tuple[str, str]] = []
    if (ahead := ahead_of_clock(report.at)) is not None:
        errors.append(("at", ahead))
    if report.stage not in COUNTY_STAGES:
        errors.append(("stage", f"must be one of {', '.join(COUNTY_STAGES)}"))
    for name, limit in (("operator", MAX_SHORT), ("filing_no", MAX_SHORT), ("opinion", MAX_TEXT)):
        value = getattr(report, name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.append((name, f"must be a string of at most {limit} characters"))
        elif value is not None and not text_ok(value, lines=name == "opinion"):
            errors.append((name, "must hold no control characters"
                           + (" but line breaks and tabs" if name == "opinion" else "")))
    if report.stage == "completed":
        if item in FILING_ITEMS and not (report.filing_no or "").strip():
            errors.append(("filing_no", "required on completed for a filing item"))
        if item in RESULT_ITEMS and report.result is None:
            errors.append(("result", "required on completed for a query item"))
    if report.result is not None:
        if not isinstance(report.result, dict):
            errors.append(("result", "must be an object"))
        elif report.stage != "completed":
            errors.append(("result", "only a completed stage carries a result"))
    return errors


def ahead_of_clock(at: datetime | None, now: datetime | None = None) -> str | None:
    """Why a stage time (naive UTC) cannot be taken — later than ``AT_AHEAD`` past the
    hub's clock — or None."""
    if at is not None and at > (now or utcnow()) + AT_AHEAD:
        return (f"must not be later than {int(AT_AHEAD.total_seconds())} s ahead of the "
                "hub's clock (a stage is reported once it happened)")
    return None


class StageRefused(ValueError):
    """A stage report is invalid (``errors`` lists ``(field, reason)``)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


def store_errors(session: Session, hub: Hub, case: Case,
                 report: StageReport) -> list[tuple[str, str]]:
    """Field errors only the store can tell (``check_stage`` cannot): a stage before the
    case began (``before_the_case``); under the numbering profile a 办结's filing
    number must be the register's (contracts/numbering.md)."""
    from adapters.numbering import filing_no_errors

    errors = []
    if (early := before_the_case(hub, case, report.at)) is not None:
        errors.append(("at", early))
    return errors + filing_no_errors(hub, session, case.item, case.county_code,
                                     report.stage, report.filing_no, case.id)


def before_the_case(hub: Hub, case: Case, at: datetime | None) -> str | None:
    """Why a stage time (naive UTC) cannot be taken — earlier, by more than ``AT_AHEAD``,
    than the case began: its application's submission or the hub's receipt, whichever
    came first (a province's clock may be off; the hub's receipt bounds it) — or None.
    A 1900 or a 0001 (a typing error) stood as an on-time 受理 in every statistic."""
    if at is None:
        return None
    began = case.created_at
    submitted = (hub.cipher.open_json(case.payload_enc) or {}).get("submitted_at")
    try:  # as CanonicalCase.to_dict wrote it: with an offset, or naive UTC (a county's)
        when = datetime.fromisoformat(submitted) if isinstance(submitted, str) else None
        if when is not None and when.tzinfo is not None:
            when = when.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        when = None
    if when is not None and when < began:
        began = when
    if at < began - AT_AHEAD:
        local = began.replace(tzinfo=UTC).astimezone(hub.overrides.tz)
        return (f"must not be earlier than the case began ({local:%Y-%m-%d %H:%M:%S} "
                "Beijing time, its submission or the hub's receipt)")
    return None


def claim_number(session: Session, hub: Hub, case: Case, report: StageReport) -> None:
    """A recorded 办结 takes its unified number for the case (one number, one case);
    ``StageRefused`` if another case took it first — the caller's transaction, which
    holds the stage just recorded, must then roll back (every caller raises through)."""
    from adapters.numbering import claim_errors

    errors = claim_errors(hub, session, case.item, case.id, report.stage, report.filing_no)
    if errors:
        raise StageRefused(errors)


def apply_stage(session: Session, hub: Hub, case: Case, report: StageReport,
                source: str) -> StageOutcome:
    """Record ``report`` on the sub-case and queue its pushes to the province.

    Raises ``StageRefused`` (nothing recorded) for a report ``store_errors`` refuses."""
    errors = store_errors(session, hub, case, report)
    if errors:
        raise StageRefused(errors)
    outcome = record_stage(
        session, hub, case, report.stage, at=report.at, operator=report.operator,
        opinion=report.opinion, filing_no=report.filing_no, result=report.result, source=source,
    )
    if outcome.recorded:
        claim_number(session, hub, case, report)
    if outcome.recorded and outcome.event is not None:  # 办结 → the shared record, pushes
        hub.sharing.on_stage(session, case, report.stage, report.filing_no, outcome.event.at)
    if outcome.recorded and report.stage == "completed" and report.result is not None:
        from adapters.intake import results_payload  # the one /results format

        hub.enqueue(session, province_message(hub, case, "results",
                                              results_payload(case, report.result)))
    return outcome


def find_sub_case(session: Session, case_no: Any) -> Case | None:
    """A county's (sub-)case by number; parents (no county) are not a county's to move."""
    if not isinstance(case_no, str) or not case_no or len(case_no) > 40 or not text_ok(case_no):
        return None
    case = find_case(session, case_no)
    return case if case is not None and case.county_code else None


# --------------------------------------------------------------------------- many at once

_BATCH = 500


@dataclass
class _Known:
    """What the store holds about a case, updated as a batch is planned."""

    stage: str
    events: set[Seen] = field(default_factory=set)  # every event: stage, at, operator
    stages: set[str] = field(default_factory=set)  # every stage it has an event for


@dataclass(frozen=True)
class PlannedStage:
    """The decision on one report: recorded, or why not.

    ``duplicate`` as in ``StageOutcome``; ``seen_before`` when the case already has an
    event of this stage (stored, or planned earlier in the batch) — a report sent again.
    """

    case: Case
    report: StageReport
    at: datetime
    recorded: bool
    duplicate: bool = False
    reason: str = ""
    seen_before: bool = False


def _known_states(session: Session, cases: Iterable[Case]) -> dict[int, _Known]:
    """Each case's stage (its row locked: ``lock_stages``), events and recorded stages,
    loaded in a few statements."""
    by_id = {case.id: case for case in cases}
    locked = lock_stages(session, by_id)
    for case_id, case in by_id.items():  # as committed, not as loaded before the lock
        set_committed_value(case, "stage", locked[case_id])
    known = {case_id: _Known(stage) for case_id, stage in locked.items()}
    ids = sorted(known)
    for i in range(0, len(ids), _BATCH):
        rows = session.execute(
            select(StageEvent.case_id, StageEvent.stage, StageEvent.at, StageEvent.operator)
            .where(StageEvent.case_id.in_(ids[i:i + _BATCH])).order_by(StageEvent.id))
        for case_id, stage, at, operator in rows:
            state = known[case_id]
            state.events.add((stage, at, operator))
            state.stages.add(stage)
    return known


def plan_stages(session: Session, reports: Sequence[tuple[Case, StageReport]]
                ) -> list[PlannedStage]:
    """Decide each ``(case, report)`` in order, as ``record_stage`` would — without writing.

    The cases' rows are locked for the caller's transaction (``lock_stages``) so what is
    decided here still holds when ``write_stages`` writes it. A case may appear more
    than once (a further stage): each report is decided against the state the earlier
    ones leave, by ``record_stage``'s own rule (``store.cases.decide_stage``).
    """
    known = _known_states(session, {c.id: c for c, _ in reports}.values())
    planned: list[PlannedStage] = []
    for case, report in reports:
        state = known[case.id]
        stage, at = report.stage, report.at or utcnow()
        seen = stage in state.stages
        decided = decide_stage(state.stage, state.events, stage, at, report.operator)
        if not decided.recorded:
            planned.append(PlannedStage(case, report, at, False, decided.duplicate,
                                        decided.reason, seen))
            continue
        state.stage = stage
        state.events.add((stage, at, report.operator))
        state.stages.add(stage)
        planned.append(PlannedStage(case, report, at, True, seen_before=seen))
    return planned


def write_stages(session: Session, hub: Hub, planned: Sequence[PlannedStage],
                 source: str) -> int:
    """Record the planned stages in the caller's transaction; the number recorded.

    What ``apply_stage`` does one report at a time, in bulk: a ``StageEvent`` per stage
    (in order), each case's stage and ``updated_at``, and the ``/status`` (and, with a
    result, ``/results``) pushes to the province in the outbox.
    """
    from adapters.intake import results_payload  # the one /results format

    recorded = [p for p in planned if p.recorded]
    if not recorded:
        return 0
    for p in recorded:  # first: a number another case took raises before anything is written
        claim_number(session, hub, p.case, p.report)
    now = utcnow()
    events: list[dict[str, Any]] = []
    messages: list[NewMessage] = []
    final: dict[int, tuple[Case, str]] = {}
    for p in recorded:
        case, report = p.case, p.report
        events.append({
            "case_id": case.id, "stage": report.stage, "at": p.at, "operator": report.operator,
            "opinion": report.opinion, "filing_no": report.filing_no, "source": source,
            "result_enc": None if report.result is None else hub.cipher.seal_json(report.result),
            "recorded_at": now, "on_time": on_time(case, report.stage, p.at),
        })
        final[case.id] = (case, report.stage)
        messages.append(province_message(hub, case, "status",
                                         status_payload(case, report.stage, p.at, report.operator,
                                                        report.opinion, report.filing_no)))
        if report.stage == "completed" and report.result is not None:
            messages.append(province_message(hub, case, "results",
                                             results_payload(case, report.result)))
    # each case from the stage plan_stages found (and locked) to its last planned one
    advance_stages(session, [(cid, case.stage, stage) for cid, (case, stage) in final.items()],
                   now)
    session.connection().execute(insert(StageEvent.__table__), events)
    for case, stage in final.values():  # the loaded objects as stored, nothing to flush
        set_committed_value(case, "stage", stage)
        set_committed_value(case, "updated_at", now)
    hub.enqueue_many(session, messages)
    for p in recorded:  # 办结 of a filing → the shared record and its pushes out
        hub.sharing.on_stage(session, p.case, p.report.stage, p.report.filing_no, p.at)
    return len(recorded)
