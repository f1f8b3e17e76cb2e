"""A case's whole journey in time order: the province's call, the split into
sub-cases, each delivery attempt with request and response, stages, pushes, materials."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from admin.casefile import Track, opinion_text, overall, track
from admin.masking import mask, mask_if, scrub, show_body
from admin.perms import Principal
from mapping.names import name as named
from store.models import (
    ArchivedMessage,
    CallLogEntry,
    Case,
    OutboxMessage,
    StageEvent,
    StoredFile,
    utcnow,
)
from store.outbox import held_condition

if TYPE_CHECKING:
    from hub import Hub


@dataclass
class Step:
    at: datetime
    kind: str  # call_in | case | sub_case | message | attempt | stage | material
    title: str
    case_no: str = ""
    status: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    body: list[tuple[str, str]] = field(default_factory=list)  # (label, pretty JSON)
    message_id: int | None = None


@dataclass
class Journey:
    case: Case
    parent: Case
    subs: list[Case]
    payload: Any
    steps: list[Step]
    messages: list[OutboxMessage | ArchivedMessage]
    tracks: list[Track] = field(default_factory=list)  # the business timeline, per sub-case
    overall: str = ""  # the parent's state (办结 when all its sub-cases are)
    held: set[int] = field(default_factory=set)  # messages held by a switched-off interface


def visible_case(s: Session, principal: Principal, case_no: str) -> Case | None:
    """The case if it exists and the principal may see it (a parent: one of its subs)."""
    case = s.scalars(select(Case).where(Case.case_no == case_no)).first()
    if case is None:
        return None
    if case.parent_id is not None or case.county_code:
        return case if principal.sees(case.county_code) else None
    if principal.divisions is None:
        return case
    sub = s.scalars(select(Case.id).where(Case.parent_id == case.id,
                                          principal.scope(Case.county_code)).limit(1)).first()
    return case if sub is not None else None


def _open(hub: Hub, sealed: bytes | None, reveal: bool) -> str:
    """A sealed call-log body as text for the page, through the one masker."""
    if sealed is None:
        return ""
    try:
        value = hub.cipher.open_json(sealed)
    except Exception:  # a body sealed under a retired key, or one too deep to load
        return "（无法解密）"
    return show_body(value, reveal)


def build(s: Session, hub: Hub, principal: Principal, case: Case, reveal: bool) -> Journey:
    parent = s.get(Case, case.parent_id) if case.parent_id else case
    assert parent is not None
    subs = [c for c in s.scalars(select(Case).where(Case.parent_id == parent.id)
                                 .order_by(Case.id)) if principal.sees(c.county_code)]
    if case.parent_id is not None:
        subs = [case]
    ids = [parent.id, *[c.id for c in subs]]
    by_id = {parent.id: parent, **{c.id: c for c in subs}}
    steps: list[Step] = []
    payload = mask_if(hub.cipher.open_json(parent.payload_enc), reveal)
    if not isinstance(payload, dict):  # masked away (too big or deep): nothing to show
        payload = {"内容": payload}

    # live rows and those archived after delivery (store/retention.py), in id order
    messages: list[OutboxMessage | ArchivedMessage] = sorted(
        [*s.scalars(select(OutboxMessage).where(OutboxMessage.case_id.in_(ids))),
         *s.scalars(select(ArchivedMessage).where(ArchivedMessage.case_id.in_(ids)))],
        key=lambda m: m.id)
    if principal.divisions is not None:
        messages = [m for m in messages if principal.sees(m.division)]
    msg_ids = [m.id for m in messages]
    calls = list(s.scalars(select(CallLogEntry).where(or_(
        CallLogEntry.case_id.in_(ids),
        CallLogEntry.message_id.in_(msg_ids) if msg_ids else CallLogEntry.id < 0,
    )).order_by(CallLogEntry.started_at, CallLogEntry.id)))
    calls = [c for c in calls if c.direction == "out" or principal.sees(c.division)
             or c.case_id == parent.id]

    for c in calls:
        if c.direction == "in":
            steps.append(Step(c.started_at, "call_in",
                              f"接收调用 {named('interfaces', c.interface)}"
                              f"（{named('partners', c.party)}）",
                              status=c.outcome, detail={"code": c.code, "ref": c.ref_id,
                                                        "ms": round(c.duration_ms)},
                              body=[("请求", _open(hub, c.request_enc, reveal)),
                                    ("应答", _open(hub, c.response_enc, reveal))]))
    steps.append(Step(parent.created_at, "case", "收件（主办件）", parent.case_no,
                      status=parent.stage, detail={"apply_no": parent.apply_no}))
    for sub in subs:
        steps.append(Step(sub.created_at, "sub_case", f"拆分子办件 → {sub.county_code}",
                          sub.case_no, status=sub.stage,
                          detail={"adapter": sub.route_adapter, "mode": sub.route_mode}))
    for m in messages:
        owner = by_id.get(m.case_id or 0)
        steps.append(Step(m.created_at, "message",
                          f"待发报文 #{m.id} {named('interfaces', m.interface)}"
                          f" → {named('partners', m.partner)}",
                          owner.case_no if owner else "", status=m.status, message_id=m.id,
                          detail={"attempts": m.attempts, "last_error": m.last_error,
                                  "resubmitted_by": m.resubmitted_by,
                                  "resubmitted_at": m.resubmitted_at}))
    for c in calls:
        if c.direction == "out":
            steps.append(Step(c.started_at, "attempt",
                              f"发送 #{c.message_id} {named('interfaces', c.interface)}"
                              f" → {named('partners', c.party)}",
                              status=c.outcome, message_id=c.message_id,
                              detail={"code": c.code, "error": c.error, "ref": c.ref_id,
                                      "ms": round(c.duration_ms)},
                              body=[("请求", _open(hub, c.request_enc, reveal)),
                                    ("应答", _open(hub, c.response_enc, reveal))]))
    events = list(s.scalars(select(StageEvent).where(StageEvent.case_id.in_(ids))
                            .order_by(StageEvent.id)))
    for ev in events:
        owner = by_id[ev.case_id]
        steps.append(Step(ev.recorded_at, "stage", f"环节：{named('stages', ev.stage)}",
                          owner.case_no,
                          status=ev.stage, detail={
                              "at": ev.at, "operator": ev.operator,
                              "opinion": opinion_text(ev), "filing_no": ev.filing_no,
                              "source": ev.source}))
    files = list(s.scalars(select(StoredFile).where(StoredFile.apply_no == parent.apply_no)))
    for f in files:
        if principal.sees(f.county_code) or f.county_code is None:
            name = f.name if reveal else scrub(f.name)
            steps.append(Step(f.created_at, "material", f"材料：{name}",
                              detail={"file_id": f.file_id, "type": f.content_type,
                                      "size": f.size}))
    if not reveal:  # free text in the details (opinions, errors) through the masker
        for st in steps:
            st.detail = mask(st.detail)
            if not isinstance(st.detail, dict):
                st.detail = {"detail": st.detail}
    steps.sort(key=lambda st: st.at)
    now = utcnow()
    tracks = [track(c, [e for e in events if e.case_id == c.id], parent.created_at, now, reveal)
              for c in (subs or [parent])]
    held = set(s.scalars(select(OutboxMessage.id).where(
        OutboxMessage.id.in_(msg_ids), OutboxMessage.status == "pending",
        held_condition()))) if msg_ids else set()
    return Journey(case, parent, subs, payload, steps, messages, tracks,
                   overall(parent, subs), held)
