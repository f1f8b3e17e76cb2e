"""The register of unified numbers and the presale project register (Hunan profile,
contracts/numbering.md): what the province issued, to which county, for which project,
permit or contract; cancellations; the acceptance a county reports; the two lists.

A number appears once (the table's unique key), is never deleted and never recorded
again after its cancellation. Reads are scoped by the caller (a county, or an
operator's divisions as a SQL condition).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mapping.numbering import (
    CONTRACT,
    PRESALE,
    ContractRequest,
    PresaleRequest,
    project_county,
)
from mapping.workdays import CalendarMissing, WorkCalendar
from store.models import utcnow
from store.numbering_models import ConstructionPermit, IssuedNumber, Project

#: The most rows a search or a list answers (and the export takes).
MAX_ROWS = 5000


class NotOwn(Exception):
    """The project, permit or number belongs to another county (1004)."""


class PermitCancelled(Exception):
    """The presale permit was cancelled while the province issued a contract number on it."""


class NumberTaken(Exception):
    """The province answered a number the register already holds (issued or cancelled)."""


class PermitOfOtherProject(Exception):
    """A construction permit of the request was registered for another project meanwhile."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {r}" for f, r in errors))
        self.errors = errors


class NumberUsed(Exception):
    """The number closes (办结) another case already: one number, one case."""


# --------------------------------------------------------------------------- before asking


def presale_conflicts(s: Session, county: str, req: PresaleRequest) -> list[tuple[str, str]]:
    """Why the request cannot be for ``county``'s project: raises ``NotOwn`` for another
    county's project or permit; returns field errors (a permit of another project)."""
    _own_project(s, county, req)
    return _permits_of_other_projects(s, req)


def _own_project(s: Session, county: str, req: PresaleRequest) -> Project | None:
    """``NotOwn`` unless the project code and every permit are ``county``'s: a project's
    county is the division in its code, never whoever asked first."""
    if any(p.no[:6] != county for p in req.construction_permits):
        raise NotOwn("a construction permit of another county")
    if project_county(req.project_code) != county:
        raise NotOwn(f"project {req.project_code}: its code names another division")
    project = s.get(Project, req.project_code)
    if project is not None and project.county_code != county:
        raise NotOwn(f"project {req.project_code} is a project of another county")
    return project


def _permits_of_other_projects(s: Session, req: PresaleRequest) -> list[tuple[str, str]]:
    errors = []
    nos = [p.no for p in req.construction_permits]
    for no, code in s.execute(
            select(ConstructionPermit.permit_no, ConstructionPermit.project_code)
            .where(ConstructionPermit.permit_no.in_(nos))):
        if code != req.project_code:
            errors.append((f"construction_permits[{nos.index(no)}].no",
                           f"a permit of project {code}, not of {req.project_code}"))
    return sorted(errors)


def live_number(s: Session, county: str, number: str, kind: str) -> IssuedNumber | None:
    """``number`` of ``kind`` issued to ``county`` and not cancelled; None if the register
    has no such live number; ``NotOwn`` if it is another county's."""
    row = s.scalars(select(IssuedNumber).where(IssuedNumber.number == number)).first()
    if row is None or row.kind != kind:
        return None
    if row.county_code != county:
        raise NotOwn(f"number {number} was issued to another county")
    return None if row.cancelled_at is not None else row


def is_registered(s: Session, county: str, number: str) -> bool:
    """The 办结 check: ``number`` is in the register, issued to ``county``, not cancelled."""
    return s.scalar(select(IssuedNumber.id).where(
        IssuedNumber.number == number, IssuedNumber.county_code == county,
        IssuedNumber.cancelled_at.is_(None)).limit(1)) is not None


def used_by_other(s: Session, number: str, case_id: int) -> bool:
    """Whether ``number`` closes a case other than ``case_id`` already (as committed)."""
    user = s.scalar(select(IssuedNumber.case_id).where(IssuedNumber.number == number))
    return user is not None and user != case_id


def claim_for_case(s: Session, number: str, case_id: int) -> None:
    """Bind ``number`` to the case its 办结 closes, in the caller's transaction; raises
    ``NumberUsed`` if another case holds it. One guarded UPDATE: on PostgreSQL a
    concurrent claim waits for the row and then finds it taken; ``case_id`` is unique,
    so a case holds one number (migration 0015_review)."""
    done = s.execute(update(IssuedNumber).where(
        IssuedNumber.number == number,
        or_(IssuedNumber.case_id.is_(None), IssuedNumber.case_id == case_id))
        .values(case_id=case_id).execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise NumberUsed(number)


# --------------------------------------------------------------------------- recording


def _add_number(s: Session, row: IssuedNumber) -> None:
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        raise NumberTaken(row.number) from None


def _insert_once(s: Session, row: Any) -> bool:
    """Insert ``row`` in a savepoint; False if a concurrent request committed its key
    first (the caller reads that row instead)."""
    try:
        with s.begin_nested():
            s.add(row)
            s.flush()
    except IntegrityError:
        return False
    return True


def record_presale(s: Session, county: str, req: PresaleRequest, number: str, chain: str,
                   today: date) -> IssuedNumber:
    """A presale permit number the province issued: the project (created or updated),
    its construction permits and the number, in the caller's transaction. Checked again
    as it is written — the project ``county``'s, every permit this project's — also
    against a concurrent request that registered them while the province answered
    (``NotOwn``, ``PermitOfOtherProject``: the caller rolls back)."""
    if s.scalar(select(IssuedNumber.id).where(IssuedNumber.number == number)) is not None:
        raise NumberTaken(number)
    now = utcnow()
    project = _own_project(s, county, req)
    if project is None:
        new = Project(project_code=req.project_code, county_code=county,
                      project_name=req.project_name, developer_name=req.developer_name,
                      created_at=now, updated_at=now)
        project = new if _insert_once(s, new) else s.get(Project, req.project_code)
        if project is None or project.county_code != county:
            raise NotOwn(req.project_code)
    project.project_name, project.developer_name = req.project_name, req.developer_name
    project.presale_since = min(filter(None, [project.presale_since, today]))
    project.updated_at = now
    conflicts = []
    for i, p in enumerate(req.construction_permits):
        permit = s.get(ConstructionPermit, p.no)
        if permit is None:
            made = ConstructionPermit(permit_no=p.no, project_code=req.project_code,
                                      planned_completion=p.planned_completion)
            permit = made if _insert_once(s, made) else s.get(ConstructionPermit, p.no)
        assert permit is not None
        if permit.project_code != req.project_code:
            conflicts.append((f"construction_permits[{i}].no",
                              f"a permit of project {permit.project_code}, "
                              f"not of {req.project_code}"))
            continue
        permit.planned_completion = p.planned_completion
    if conflicts:
        raise PermitOfOtherProject(conflicts)
    row = IssuedNumber(number=number, kind=PRESALE, county_code=county,
                       project_code=req.project_code, parent_number=None, chain_code=chain,
                       request=json.dumps(req.wire(county), ensure_ascii=False), issued_at=now)
    _add_number(s, row)
    return row


def record_contract(s: Session, county: str, permit: IssuedNumber, req: ContractRequest,
                    number: str, chain: str) -> IssuedNumber:
    """A contract filing number the province issued on ``permit``; the permit is read
    again, locked, so a cancellation that landed during the province's call wins."""
    if s.scalar(select(IssuedNumber.id).where(IssuedNumber.number == number)) is not None:
        raise NumberTaken(number)
    live = s.scalar(select(IssuedNumber.id).where(
        IssuedNumber.number == permit.number, IssuedNumber.cancelled_at.is_(None))
        .with_for_update())
    if live is None:
        raise PermitCancelled(permit.number)
    row = IssuedNumber(number=number, kind=CONTRACT, county_code=county,
                       project_code=permit.project_code, parent_number=permit.number,
                       chain_code=chain,
                       request=json.dumps(req.wire(county), ensure_ascii=False),
                       issued_at=utcnow())
    _add_number(s, row)
    return row


def cancel(s: Session, row: IssuedNumber, reason: str) -> None:
    """Mark ``row`` cancelled (kept in the register: the number is never issued again)."""
    row.cancelled_at, row.cancel_reason = utcnow(), reason


def record_acceptance(s: Session, county: str, project_code: str, kind: str,
                      day: date) -> Project | None:
    """The project's completion acceptance as the county reports it (the latest report
    stands); None when the register has no such project; ``NotOwn`` for another's."""
    project = s.get(Project, project_code)
    if project is None:
        return None
    if project.county_code != county or project_county(project_code) != county:
        raise NotOwn(project_code)
    project.acceptance_kind, project.acceptance_date = kind, day
    project.updated_at = utcnow()
    return project


def register_presale_only(s: Session, county: str, project_code: str, project_name: str,
                          developer_name: str, presale_since: date) -> Project:
    """A project that has a presale permit but no construction permit (the seed: such
    projects are entered by hand and handled as unauthorised construction)."""
    if project_county(project_code) != county:
        raise NotOwn(project_code)
    project = s.get(Project, project_code)
    if project is not None:
        if project.county_code != county:
            raise NotOwn(project_code)
        project.presale_since = min(filter(None, [project.presale_since, presale_since]))
        return project
    now = utcnow()
    project = Project(project_code=project_code, county_code=county, project_name=project_name,
                      developer_name=developer_name, presale_since=presale_since,
                      created_at=now, updated_at=now)
    s.add(project)
    return project


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class NumberRow:
    number: str
    kind: str
    county_code: str
    project_code: str
    parent_number: str | None
    issued_at: datetime
    cancelled_at: datetime | None


def search(s: Session, scope: ColumnElement[bool] | None, q: str | None = None,
           kind: str | None = None, county: str | None = None, status: str | None = None,
           limit: int = MAX_ROWS) -> list[NumberRow]:
    """Numbers in ``scope`` (a condition on the county column), newest first; ``q``
    matches a number's or a project code's beginning."""
    conds: list[Any] = []
    if scope is not None:
        conds.append(scope)
    if q:
        like = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append(or_(IssuedNumber.number.like(like, escape="\\"),
                         IssuedNumber.project_code.like(like, escape="\\")))
    if kind:
        conds.append(IssuedNumber.kind == kind)
    if county:
        conds.append(IssuedNumber.county_code == county)
    if status == "cancelled":
        conds.append(IssuedNumber.cancelled_at.is_not(None))
    elif status == "valid":
        conds.append(IssuedNumber.cancelled_at.is_(None))
    stmt = (select(IssuedNumber.number, IssuedNumber.kind, IssuedNumber.county_code,
                   IssuedNumber.project_code, IssuedNumber.parent_number,
                   IssuedNumber.issued_at, IssuedNumber.cancelled_at)
            .where(*conds).order_by(IssuedNumber.id.desc()).limit(limit))
    return [NumberRow(*r) for r in s.execute(stmt)]


def number_of(s: Session, number: str) -> IssuedNumber | None:
    return s.scalars(select(IssuedNumber).where(IssuedNumber.number == number)).first()


@dataclass(frozen=True)
class ProjectRow:
    project_code: str
    county_code: str
    project_name: str
    developer_name: str
    presale_since: date | None
    planned_completion: date | None  # the latest of its permits' (None: no permit)
    permits: int
    acceptance_kind: str | None
    acceptance_date: date | None
    #: Working days past the planned completion (None: not overdue, or uncountable).
    overdue_working_days: int | None = None


def projects(s: Session, scope: ColumnElement[bool] | None, county: str | None = None,
             limit: int = MAX_ROWS) -> list[ProjectRow]:
    """The project register: each project with its latest planned completion."""
    planned = (select(ConstructionPermit.project_code,
                      func.max(ConstructionPermit.planned_completion).label("planned"),
                      func.count().label("permits"))
               .group_by(ConstructionPermit.project_code).subquery())
    conds: list[Any] = []
    if scope is not None:
        conds.append(scope)
    if county:
        conds.append(Project.county_code == county)
    stmt = (select(Project.project_code, Project.county_code, Project.project_name,
                   Project.developer_name, Project.presale_since, planned.c.planned,
                   func.coalesce(planned.c.permits, 0), Project.acceptance_kind,
                   Project.acceptance_date)
            .outerjoin(planned, planned.c.project_code == Project.project_code)
            .where(*conds).order_by(Project.county_code, Project.project_code).limit(limit))
    return [ProjectRow(*r) for r in s.execute(stmt)]


def overdue_acceptance(rows: list[ProjectRow], today: date,
                       calendar: WorkCalendar | None) -> list[ProjectRow]:
    """逾期未竣工验收: presale projects whose (latest) planned completion has passed
    without a reported acceptance, with the working days since (mapping/workdays.py)."""
    out = []
    for r in rows:
        if r.presale_since is None or r.acceptance_date is not None:
            continue
        if r.planned_completion is None or r.planned_completion >= today:
            continue
        days: int | None = None
        if calendar is not None:
            try:
                days = calendar.count_between(r.planned_completion, today)
            except CalendarMissing:
                days = None
        out.append(ProjectRow(**{**r.__dict__, "overdue_working_days": days}))
    return out


def presale_without_permit(rows: list[ProjectRow]) -> list[ProjectRow]:
    """Projects with a presale permit but no construction permit in the register."""
    return [r for r in rows if r.presale_since is not None and r.permits == 0]


def daily_digest(s: Session, today: date, calendar: WorkCalendar | None,
                 county_names: dict[str, str]) -> list[str]:
    """The day's alerts of the two lists, one per county and list, once per Beijing day
    (kinds ``project_overdue_acceptance`` and ``presale_without_permit``, the county as
    the division); returns the refs raised."""
    from store.models import Alert

    rows = projects(s, None)
    lists = (("project_overdue_acceptance", overdue_acceptance(rows, today, calendar),
              "个预售项目已过计划竣工日期仍未验收（逾期未竣工验收）"),
             ("presale_without_permit", presale_without_permit(rows),
              "个项目已办理预售许可但未办理施工许可"))
    raised = []
    for kind, found, what in lists:
        per_county: dict[str, list[str]] = {}
        for r in found:
            per_county.setdefault(r.county_code, []).append(r.project_code)
        for county, codes in sorted(per_county.items()):
            ref = f"{kind}:{county}:{today:%Y%m%d}"
            if s.scalar(select(Alert.id).where(Alert.ref == ref).limit(1)) is not None:
                continue
            s.add(Alert(kind=kind, severity="warning", division=county, ref=ref,
                        title=f"{county_names.get(county, county)}：{len(codes)} {what}"[:200],
                        detail="工改项目编码：" + "、".join(codes[:50])
                               + ("等" if len(codes) > 50 else "")
                               + "。详见“办件时限 → 预售项目监管”页面。"))
            raised.append(ref)
    return raised
