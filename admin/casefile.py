"""What an operator reads on a case page before the technical log: the business
timeline of each sub-case (申请 → 受理 → 审批 → 办结, or 不予受理) with its handler,
opinion, filing number and time limit, the parent's overall state, and the application
(申请内容) as a labelled form instead of JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from admin.masking import mask
from mapping.items import FINAL_STAGES, STAGES
from mapping.names import name as catalogue_name
from mapping.reasons import failure_opinion
from store.models import Case, StageEvent

#: The stages a sub-case goes through, by how it went.
PATHS = {
    "normal": ("received", "accepted", "approved", "completed"),
    "apply_and_accept": ("received", "apply_and_accept", "approved", "completed"),
    "rejected": ("received", "rejected"),
    "validation_failed": ("received", "validation_failed"),
}


@dataclass
class Milestone:
    stage: str
    name: str
    reached: bool
    at: datetime | None = None
    operator: str = ""
    opinion: str = ""
    filing_no: str = ""
    on_time: bool | None = None
    times: int = 0  # how many times it was recorded (审批 may repeat)


@dataclass
class Track:
    """One sub-case's business timeline."""

    case: Case
    milestones: list[Milestone]
    promised_days: int | None
    due_at: datetime | None
    state: str  # the stage's Chinese name
    #: True on time, False late (or overdue while open), None when there is no limit.
    on_time: bool | None
    finished: bool


def _path(events: list[StageEvent]) -> tuple[str, ...]:
    stages = {e.stage for e in events}
    for kind in ("validation_failed", "rejected", "apply_and_accept"):
        if kind in stages:
            return PATHS[kind]
    return PATHS["normal"]


def opinion_text(event: StageEvent) -> str:
    """An event's opinion as a clerk reads it: a failed validation's in Chinese."""
    if event.stage == "validation_failed" and event.opinion:
        return failure_opinion(event.opinion, lambda field: catalogue_name("fields", field))
    return event.opinion or ""


def track(case: Case, events: list[StageEvent], received_at: datetime, now: datetime,
          reveal: bool) -> Track:
    """The timeline of ``case`` from its stage events (in recorded order)."""
    last: dict[str, StageEvent] = {}
    times: dict[str, int] = {}
    for e in events:
        last[e.stage] = e
        times[e.stage] = times.get(e.stage, 0) + 1
    milestones = []
    for stage in _path(events):
        e = last.get(stage)
        m = Milestone(stage, STAGES.get(stage, stage), e is not None or stage == "received",
                      times=times.get(stage, 0))
        if stage == "received" and e is None:
            m.at, m.operator = received_at, "省厅平台（网上申请）"
        if e is not None:
            shown = {"operator": e.operator or "", "opinion": opinion_text(e)}
            if not reveal:  # fail-closed: the one masker (admin/masking.py)
                shown = mask(shown)
                if not isinstance(shown, dict):
                    shown = {"operator": "", "opinion": str(shown)}
            m.at, m.operator, m.opinion = e.at, shown["operator"], shown["opinion"]
            m.filing_no, m.on_time = e.filing_no or "", e.on_time
        milestones.append(m)
    finished = case.stage in FINAL_STAGES
    on_time: bool | None = None
    if case.due_at is not None:
        decided = [m for m in milestones if m.reached and m.stage in (
            "completed", "rejected") and m.on_time is not None]
        if decided:
            on_time = decided[-1].on_time
        elif not finished:
            on_time = now <= case.due_at
    return Track(case, milestones, case.promised_days, case.due_at,
                 STAGES.get(case.stage, case.stage), on_time, finished)


def overall(parent: Case, subs: list[Case]) -> str:
    """The parent case's state: 办结 when every sub-case is, else how far it is."""
    if not subs:
        return STAGES.get(parent.stage, parent.stage)
    stages = [s.stage for s in subs]
    if all(s == "completed" for s in stages):
        return "办结"
    if all(s == "rejected" for s in stages):
        return "不予受理"
    if all(s in FINAL_STAGES for s in stages):
        return "已全部办理完毕（部分不予受理）"
    done = sum(1 for s in stages if s in FINAL_STAGES)
    return f"办理中（{done}/{len(stages)} 个子办件已办理完毕）"


# --------------------------------------------------------------------------- the form

#: How deep the form goes; deeper values are summarised.
MAX_DEPTH = 4
#: Columns of a table made of a list of records, and its rows.
MAX_COLUMNS, MAX_ROWS = 16, 200


@dataclass
class Field:
    key: str
    label: str  # the Chinese label, or "" when the catalogue has none (the key is shown)
    value: str = ""
    children: list[Field] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)  # (key, label)
    rows: list[list[str]] = field(default_factory=list)


def label(key: str) -> str:
    found = catalogue_name("fields", key)
    return "" if found == key else found


def _scalar(key: str, value: Any, named: Callable[[str, str], str]) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    text = str(value)
    kinds = {"id_type": "id_types", "co_ownership": "co_ownerships", "item": "items",
             "county_code": "counties", "county_codes": "counties", "city_code": "cities",
             "supervision_bank": "banks"}
    if key in kinds:
        return named(kinds[key], text)
    if key.endswith("_at") or key == "at":
        return named("time", text)
    return text


def _flat(key: str, value: Any, named: Callable[[str, str], str]) -> str:
    """A value in one table cell."""
    if isinstance(value, dict):
        return "；".join(f"{label(str(k)) or k}：{_flat(str(k), v, named)}"
                        for k, v in list(value.items())[:MAX_COLUMNS])
    if isinstance(value, list | tuple):
        return "、".join(_flat(key, v, named) for v in value[:MAX_ROWS])
    return _scalar(key, value, named)


def form(value: Any, named: Callable[[str, str], str], key: str = "",
         depth: int = 0) -> list[Field]:
    """The (already masked) application as labelled fields: a record as nested fields,
    a list of records as a table, a list of values joined."""
    if not isinstance(value, dict):
        return [Field(key or "content", label(key) or "内容", _flat(key, value, named))]
    out = []
    for k, v in value.items():
        k = str(k)
        f = Field(k, label(k))
        if isinstance(v, dict) and depth < MAX_DEPTH:
            f.children = form(v, named, k, depth + 1)
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            keys: list[str] = []
            for row in v[:MAX_ROWS]:
                keys += [str(c) for c in row if str(c) not in keys]
            keys = keys[:MAX_COLUMNS]
            f.headers = [(c, label(c)) for c in keys]
            f.rows = [[_flat(c, row.get(c), named) for c in keys] for row in v[:MAX_ROWS]]
        else:
            f.value = _flat(k, v, named)
        out.append(f)
    return out
