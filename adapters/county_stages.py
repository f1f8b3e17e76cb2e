"""One way to apply a county stage, whoever reports it: a smart platform's callback, an
operator's mark on the admin page, or a row of an imported Excel workbook.

``check_stage`` validates what is reported (without touching the store) and
``apply_stage`` records it through ``store.cases.record_stage`` — which enforces
forward-only stages and queues the ``/status`` push — and, for an item whose answer is a
result (async result, or a sync query answered later), also queues ``/results``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from mapping.items import FINAL_STAGES, ITEMS, ItemKind, can_follow
from mapping.validators import parse_iso_datetime
from store.cases import StageOutcome, find_case, last_event, province_message, record_stage
from store.models import Case

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
    return aware.astimezone(UTC).replace(tzinfo=None)


def check_stage(item: str, report: StageReport) -> list[tuple[str, str]]:
    """Field errors ``(field, reason)`` of a stage report for ``item``; empty when valid."""
    errors: list[tuple[str, str]] = []
    if report.stage not in COUNTY_STAGES:
        errors.append(("stage", f"must be one of {', '.join(COUNTY_STAGES)}"))
    for name, limit in (("operator", MAX_SHORT), ("filing_no", MAX_SHORT), ("opinion", MAX_TEXT)):
        value = getattr(report, name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.append((name, f"must be a string of at most {limit} characters"))
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


def would_apply(session: Session, case: Case, report: StageReport) -> str | None:
    """Why ``report`` would not be recorded on ``case`` (None when it would be).

    A dry run of ``record_stage``'s rule, for validating a whole workbook first.
    """
    last = last_event(session, case)
    if last is not None and last.stage == report.stage and report.stage != "approved":
        return "duplicate"
    previous = case.stage if case.stage != "received" else None
    if not can_follow(previous, report.stage):
        if case.stage in FINAL_STAGES:
            return f"the case is already {case.stage}"
        return f"stage {report.stage} cannot follow {case.stage}"
    return None


def apply_stage(session: Session, hub: Hub, case: Case, report: StageReport,
                source: str) -> StageOutcome:
    """Record ``report`` on the sub-case and queue its pushes to the province."""
    outcome = record_stage(
        session, hub, case, report.stage, at=report.at, operator=report.operator,
        opinion=report.opinion, filing_no=report.filing_no, result=report.result, source=source,
    )
    if outcome.recorded and report.stage == "completed" and report.result is not None:
        from adapters.intake import results_payload  # the one /results format

        hub.enqueue(session, province_message(hub, case, "results",
                                              results_payload(case, report.result)))
    return outcome


def find_sub_case(session: Session, case_no: Any) -> Case | None:
    """A county's (sub-)case by number; parents (no county) are not a county's to move."""
    if not isinstance(case_no, str) or not case_no or len(case_no) > 40:
        return None
    case = find_case(session, case_no)
    return case if case is not None and case.county_code else None
