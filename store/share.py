"""The shared record and everything the gateway stores: filings at 办结 and their
cancellations, the department queries, the pushes in (mortgages, defaulters, seizures),
the sharing audit and the per-minute rate windows. Everything runs in the caller's
transaction; queries compare blind indexes and never open a case payload.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mapping.departments import FILING_KINDS, Scope, contract_view, norm_id
from mapping.validators import resident_id_forms
from store.driver import DriverStatement
from store.models import InterfaceSwitch, utcnow
from store.sealed import BlindIndex, cipher_of
from store.share_models import (
    ShareAccess,
    ShareDefaulter,
    SharedFiling,
    SharedParty,
    ShareMortgage,
    ShareRateWindow,
    ShareSeizure,
)

if TYPE_CHECKING:
    from store.models import Case

MAX_RETURNED = 200
#: Items the defaulter rule applies to (departments.md "What the hub does with them").
RULE_ITEMS = ("presale_contract_filing", "resale_contract_filing")
RULE_KIND = "rule"
LOCAL = timedelta(hours=8)


def iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds") + "+00:00"


# --------------------------------------------------------------------------- the record


def parties_of(item: str, data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(role, name, id_no)`` of a filing's data (the buying side with its co-owners)."""
    def pair(name: Any, id_no: Any) -> tuple[str, str] | None:
        if isinstance(name, str) and isinstance(id_no, str) and id_no.strip():
            return name, norm_id(id_no)
        return None

    out: list[tuple[str, str, str]] = []
    if item == "rental_filing":
        roles = (("lessee", "lessee_name", "lessee_id_no"),
                 ("lessor", "lessor_name", "lessor_id_no"))
    else:
        roles = (("buyer", "buyer_name", "buyer_id_no"), ("seller", "seller_name", "seller_id_no"))
    for role, n, i in roles:
        if (p := pair(data.get(n), data.get(i))) is not None:
            out.append((role, *p))
    for owner in data.get("co_owners") or []:
        p = pair(owner.get("name"), owner.get("id_no")) if isinstance(owner, dict) else None
        if p is not None and ("buyer", *p) not in out:
            out.append(("buyer", *p))
    return out


def buyer_ids(item: str, data: dict[str, Any]) -> list[str]:
    return sorted({i for role, _, i in parties_of(item, data) if role == "buyer"})


def record_filing(session: Session, case: Case, data: dict[str, Any], filing_no: str,
                  at: datetime) -> SharedFiling | None:
    """The shared record of a filing reaching 办结; None if that number is kept already."""
    found = session.scalar(select(SharedFiling.id).where(SharedFiling.filing_no == filing_no))
    if found is not None:
        return None
    price = data.get("price")
    filing = SharedFiling(
        filing_no=filing_no, kind=FILING_KINDS[case.item], item=case.item, case_id=case.id,
        county_code=case.county_code, house_id=str(data.get("house_id") or "")[:200],
        address=data.get("address") if isinstance(data.get("address"), str) else None,
        price=None if price is None else str(price)[:32], filed_at=at, status="filed")
    session.add(filing)
    session.flush()
    session.add_all([SharedParty(filing_id=filing.id, role=role, name=name, id_no=id_no,
                                 id_hash=id_no)
                     for role, name, id_no in parties_of(case.item, data)])
    return filing


def cancel_filing(session: Session, contract_no: str, county_code: str,
                  at: datetime) -> SharedFiling | None:
    """A presale contract's filing cancelled (注销) at 办结 of its cancellation — only a
    filing of the county whose case cancels it: a county never cancels another's."""
    filing = session.scalars(select(SharedFiling).where(
        SharedFiling.filing_no == contract_no, SharedFiling.kind == "presale",
        SharedFiling.county_code == county_code, SharedFiling.status == "filed")).first()
    if filing is not None:
        filing.status, filing.cancelled_at = "cancelled", at
    return filing


def filings_view(session: Session, filings: list[SharedFiling],
                 with_mortgages: bool = False) -> list[dict[str, Any]]:
    """The contract's ``contracts`` entries (all fields; cut to a scope by the caller)."""
    if not filings:
        return []
    ids = [f.id for f in filings]
    parties: dict[int, list[dict[str, str]]] = {i: [] for i in ids}
    for p in session.scalars(select(SharedParty).where(SharedParty.filing_id.in_(ids))
                             .order_by(SharedParty.id)):
        parties[p.filing_id].append({"role": p.role, "name": p.name, "id_no": p.id_no})
    mortgages: dict[str, list[dict[str, Any]]] = {}
    if with_mortgages:
        houses = sorted({f.house_id for f in filings})
        for m in session.scalars(select(ShareMortgage).where(ShareMortgage.house_id.in_(houses))
                                 .order_by(ShareMortgage.id)):
            mortgages.setdefault(m.house_id, []).append({
                "mortgage_no": m.mortgage_no, "filing_no": m.filing_no,
                "mortgagor": {"name": m.mortgagor_name, "id_no": m.mortgagor_id_no},
                "mortgagee": m.mortgagee, "amount": m.amount, "signed_at": m.signed_at})
    out = []
    for f in filings:
        view: dict[str, Any] = {
            "filing_no": f.filing_no, "kind": f.kind, "house_id": f.house_id,
            "address": f.address, "parties": parties[f.id], "price": f.price,
            "filed_at": iso(f.filed_at), "county_code": f.county_code, "status": f.status}
        if with_mortgages:
            view["mortgages"] = mortgages.get(f.house_id, [])
        out.append(view)
    return out


# --------------------------------------------------------------------------- queries


_F, _P = SharedFiling.__table__.c, SharedParty.__table__.c
_Q = SharedParty.__table__.alias("q")
_OWN = SharedParty.__table__.alias("p")
def _by_person(kinds: int) -> DriverStatement:
    """A person's filings of ``kinds`` kinds (binds ``kind0``...), at most
    ``MAX_RETURNED`` + 1 of them (one more says the answer is cut), with all their
    parties: one statement on the driver's cursor. The kinds are chosen before the
    limit: a person's 401 rental filings had used up the limit of a bank, which sees
    none of them, and its answer of the one sale contract came back empty."""
    found = _BY_PERSON.get(kinds)
    if found is None:
        mine = (select(_Q.c.filing_id).distinct()
                .select_from(_Q.join(SharedFiling.__table__, _F.id == _Q.c.filing_id))
                .where(_Q.c.id_hash == bindparam("id_hash", type_=BlindIndex()),
                       _F.kind.in_([bindparam(f"kind{i}") for i in range(kinds)]))
                .order_by(_Q.c.filing_id).limit(MAX_RETURNED + 1).subquery("mine"))
        found = _BY_PERSON[kinds] = DriverStatement(
            select(_F.id, _F.filing_no, _F.kind, _F.house_id, _F.address, _F.price,
                   _F.filed_at, _F.county_code, _F.status, _OWN.c.role, _OWN.c.name,
                   _OWN.c.id_no)
            .select_from(mine.join(SharedFiling.__table__, _F.id == mine.c.filing_id)
                         .join(_OWN, _OWN.c.filing_id == _F.id))
            .order_by(_F.id, _OWN.c.id))
    return found


_BY_PERSON: dict[int, DriverStatement] = {}
_HOMES = DriverStatement(
    select(_F.filing_no).select_from(SharedParty.__table__.join(
        SharedFiling.__table__, _F.id == _P.filing_id))
    .where(_P.id_hash == bindparam("id_hash", type_=BlindIndex()), _P.role == "buyer",
           or_(_F.kind == "presale", _F.kind == "resale"), _F.status == "filed").distinct())


def contracts_of_person(session: Session, scope: Scope, id_no: str
                        ) -> tuple[list[dict[str, Any]], bool]:
    """``contracts`` by ID number — one indexed statement, sealed values opened here —
    and whether there were more than ``MAX_RETURNED``."""
    cipher = cipher_of(session.get_bind().dialect)
    kinds = sorted(scope.kinds)
    views: dict[int, dict[str, Any]] = {}
    cut = False
    for (fid, number, kind, house, address, price, filed_at, county, status, role, name,
         id_enc) in _by_person(len(kinds)).execute(
            session, {"id_hash": id_no, **{f"kind{i}": k for i, k in enumerate(kinds)}}):
        view = views.get(fid)
        if view is None:
            if len(views) >= MAX_RETURNED:
                cut = True
                break
            view = views[fid] = {
                "filing_no": number, "kind": kind, "house_id": house,
                "address": None if address is None else cipher.open(bytes(address)).decode(),
                "parties": [], "price": price,
                "filed_at": iso(filed_at if isinstance(filed_at, datetime)
                                else datetime.fromisoformat(filed_at)),
                "county_code": county, "status": status}
        view["parties"].append({"role": role, "name": cipher.open(bytes(name)).decode(),
                                "id_no": cipher.open(bytes(id_enc)).decode()})
    return [v for v in (contract_view(v, scope) for v in views.values()) if v is not None], cut


def contracts(session: Session, scope: Scope, asked: dict[str, str]
              ) -> tuple[list[dict[str, Any]], bool]:
    """The ``contracts`` answer for ``asked`` (an ``id_no`` or a ``house_id``), at most
    ``MAX_RETURNED``, oldest first, and whether more were left out."""
    if "id_no" in asked:
        return contracts_of_person(session, scope, asked["id_no"])
    stmt = select(SharedFiling).where(SharedFiling.kind.in_(sorted(scope.kinds)),
                                      SharedFiling.house_id == asked["house_id"])
    filings = list(session.scalars(stmt.order_by(SharedFiling.id).limit(MAX_RETURNED + 1)))
    cut = len(filings) > MAX_RETURNED
    views = filings_view(session, filings[:MAX_RETURNED], with_mortgages=True)
    return [v for v in (contract_view(v, scope) for v in views) if v is not None], cut


def housing_count(session: Session, id_no: str) -> list[str]:
    """The filing numbers of the homes held as buyer (filed, not cancelled, sale)."""
    return [number for number, in _HOMES.execute(session, {"id_hash": id_no})]


def seizures(session: Session, house_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(ShareSeizure).where(ShareSeizure.house_id == house_id)
                           .order_by(ShareSeizure.id).limit(MAX_RETURNED))
    return [{"seizure_no": r.seizure_no, "court": r.court, "document_no": r.document_no,
             "from": r.from_date, "to": r.to_date, "released_at": r.released_at} for r in rows]


def active_seizures(session: Session, house_id: str | None) -> list[ShareSeizure]:
    """Seizures of ``house_id`` not released and not past their end date (Beijing)."""
    if not house_id:
        return []
    today = (datetime.now(UTC) + LOCAL).date().isoformat()
    rows = session.scalars(select(ShareSeizure).where(ShareSeizure.house_id == house_id,
                                                      ShareSeizure.released_at.is_(None)))
    return [r for r in rows if not r.to_date or r.to_date[:10] >= today]


def seizure_warnings(session: Session, house_id: str | None) -> list[dict[str, str]]:
    return [{"kind": "seizure", "seizure_no": r.seizure_no, "court": r.court,
             "document_no": r.document_no} for r in active_seizures(session, house_id)]


# --------------------------------------------------------------------------- pushes in


def save_mortgage(session: Session, app_id: str, m: dict[str, Any]) -> bool:
    """True when new; a repeat of ``(app id, mortgage_no)`` changes nothing."""
    found = session.scalar(select(ShareMortgage.id).where(
        ShareMortgage.app_id == app_id, ShareMortgage.mortgage_no == m["mortgage_no"]))
    if found is not None:
        return False
    who = m["mortgagor"]
    session.add(ShareMortgage(
        app_id=app_id, mortgage_no=m["mortgage_no"], house_id=m["house_id"],
        filing_no=m.get("filing_no"), mortgagor_name=who["name"], mortgagor_id_no=who["id_no"],
        mortgagor_hash=who["id_no"], mortgagee=m["mortgagee"], amount=m["amount"],
        signed_at=m["signed_at"]))
    session.flush()
    return True


class NotOwnRecord(Exception):
    """A push names a record another department reported (its defaulter entry or its
    seizure): a department acts only for itself (1004), and nothing is changed.
    ``fields`` are the pushed entries at fault; ``owners`` the app ids that hold them."""

    def __init__(self, fields: list[str], owners: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields, self.owners = fields, sorted(set(owners))


def save_defaulters(session: Session, app_id: str, entries: list[dict[str, Any]]) -> int:
    """Changes to the list, idempotent on ``(id_no, case_no)``; the number changed.

    An entry whose ``(id_no, case_no)`` another department reported raises
    ``NotOwnRecord`` before anything is written (the whole push is refused). The owner
    (``app_id``) of a row is set once, at its insert, and never changes; two courts
    inserting the same key at once meet the unique key and the loser, run again, is
    refused here."""
    rows: list[ShareDefaulter | None] = []
    fields: list[str] = []
    owners: list[str] = []
    for i, e in enumerate(entries):
        row = session.scalars(select(ShareDefaulter).where(
            ShareDefaulter.id_hash == e["id_no"], ShareDefaulter.case_no == e["case_no"])).first()
        if row is not None and row.app_id != app_id:
            fields.append(f"entries[{i}]")
            owners.append(row.app_id)
        rows.append(row)
    if fields:
        raise NotOwnRecord(fields, owners)
    changed = 0
    added: dict[tuple[str, str], ShareDefaulter] = {}  # an entry repeated in the push
    for e, row in zip(entries, rows, strict=True):
        # Never read the store again here: under READ COMMITTED a second read can see
        # another court's row committed since the check above, and would change it.
        row = row or added.get((e["id_no"], e["case_no"]))
        if row is None:
            row = ShareDefaulter(id_hash=e["id_no"], id_no=e["id_no"], name=e["name"],
                                 case_no=e["case_no"], court=e["court"],
                                 listed_at=e["listed_at"], removed_at=e["removed_at"],
                                 app_id=app_id)
            session.add(row)
            session.flush()  # a concurrent first push of the key meets the unique key
            added[(e["id_no"], e["case_no"])] = row
            changed += 1
        elif (row.removed_at, row.listed_at, row.court) != (e["removed_at"], e["listed_at"],
                                                            e["court"]):
            row.removed_at, row.listed_at, row.court = e["removed_at"], e["listed_at"], e["court"]
            row.name, row.updated_at = e["name"], utcnow()
            changed += 1
    return changed


def save_seizure(session: Session, app_id: str, z: dict[str, Any]) -> bool:
    """A seizure or its release, idempotent on ``seizure_no``; True when anything changed.
    A ``seizure_no`` another department reported raises ``NotOwnRecord`` (1004)."""
    row = session.scalars(select(ShareSeizure).where(ShareSeizure.seizure_no == z["seizure_no"])
                          ).first()
    values = {"house_id": z["house_id"], "court": z["court"], "document_no": z["document_no"],
              "from_date": z["from"], "to_date": z["to"], "released_at": z["released_at"]}
    if row is None:
        session.add(ShareSeizure(seizure_no=z["seizure_no"], app_id=app_id, **values))
        session.flush()
        return True
    if row.app_id != app_id:
        raise NotOwnRecord(["seizure_no"], [row.app_id])
    if all(getattr(row, k) == v for k, v in values.items()):
        return False
    for k, v in values.items():
        setattr(row, k, v)
    row.updated_at = utcnow()
    return True


def alert_not_own(session: Session, app_id: str, push: str, refused: NotOwnRecord) -> None:
    """Operators see a department's attempt on another's records (kind ``share_not_own``):
    one open alert per department and push (its repeats are in the sharing audit)."""
    from store.models import Alert

    ref = f"share:{app_id}:{push}"[:128]
    if session.scalar(select(Alert.id).where(Alert.ref == ref, Alert.kind == "share_not_own",
                                             Alert.acknowledged_at.is_(None)).limit(1)):
        return
    what = "失信被执行人名单" if push == "defaulters" else "查封记录"
    session.add(Alert(
        kind="share_not_own", severity="critical", ref=ref,
        title=f"共享部门 {app_id} 试图修改其他部门报送的{what}（已拒绝）"[:200],
        detail=f"报送该记录的部门：{'、'.join(refused.owners)}；涉及 {len(refused.fields)} "
               "条，均未修改。请核实该部门的对接程序或账号是否被冒用。"))


# --------------------------------------------------------------------------- the rule


@dataclass(frozen=True)
class Listing:
    court: str
    case_no: str


def listed(session: Session, ids: Iterable[str]) -> Listing | None:
    """The first entry of the 失信被执行人 list, not removed, for any of ``ids``, each
    in both its forms (``resident_id_forms``: 15 and 18 characters)."""
    ids = sorted({form for i in ids if i for form in resident_id_forms(norm_id(i))})
    if not ids:
        return None
    row = session.execute(select(ShareDefaulter.court, ShareDefaulter.case_no).where(
        ShareDefaulter.id_hash.in_(ids), ShareDefaulter.removed_at.is_(None))
        .order_by(ShareDefaulter.id).limit(1)).first()
    return None if row is None else Listing(row.court, row.case_no)


def rule_name(item: str) -> str:
    return f"defaulter_refusal.{item}"


def rule_enabled(session: Session, item: str) -> bool:
    """The operators' switch of the defaulter rule for ``item`` (on unless switched off)."""
    value = session.scalar(select(InterfaceSwitch.enabled).where(
        InterfaceSwitch.kind == RULE_KIND, InterfaceSwitch.name == rule_name(item)))
    return value is None or bool(value)


def set_rule(session: Session, item: str, enabled: bool, who: str) -> None:
    row = session.get(InterfaceSwitch, (RULE_KIND, rule_name(item)))
    if row is None:
        session.add(InterfaceSwitch(kind=RULE_KIND, name=rule_name(item), enabled=enabled,
                                    changed_by=who[:64], changed_at=utcnow()))
    else:
        row.enabled, row.changed_by, row.changed_at = enabled, who[:64], utcnow()


# --------------------------------------------------------------------------- audit, rate


def bump_rate(session: Session, app_id: str, now: datetime | None = None) -> int:
    """Count one call of ``app_id`` in the current minute; the minute's count so far
    (atomic on both stores: one upsert)."""
    now = now or utcnow()
    minute = now.replace(second=0, microsecond=0)
    table = ShareRateWindow.__table__
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = make(table).values(app_id=app_id, minute=minute, calls=1)
    stmt = stmt.on_conflict_do_update(index_elements=["app_id", "minute"],
                                      set_={"calls": table.c.calls + 1}).returning(table.c.calls)
    return int(session.execute(stmt).scalar_one())


def prune_rate(session: Session, before: datetime) -> int:
    """Forget the rate windows of minutes before ``before`` (scheduler housekeeping)."""
    table = ShareRateWindow.__table__
    return session.execute(table.delete().where(table.c.minute < before)).rowcount


def write_access(session: Session, *, app_id: str, department: str, direction: str,
                 action: str, code: str, operator: str | None = None,
                 purpose: str | None = None, asked: str | None = None,
                 asked_id: str | None = None, returned: Iterable[str] = (),
                 count: int | None = None, division: str | None = None,
                 ref_id: str | None = None) -> None:
    numbers = list(returned)
    session.add(ShareAccess(
        at=utcnow(), app_id=app_id, department=department, direction=direction, action=action,
        operator=operator, operator_hash=operator, purpose=purpose,
        asked=None if asked is None else asked[:240], asked_hash=asked_id,
        returned=",".join(numbers) or None, count=len(numbers) if count is None else count,
        code=code, division=division, ref_id=ref_id))


def monthly_summary(session: Session, since: datetime, until: datetime,
                    where: Any = None) -> list[dict[str, Any]]:
    """Per department and month (Beijing): queries, records returned, refusals."""
    a = ShareAccess
    rows = session.execute(select(a.app_id, a.at, a.action, a.code, a.count)
                           .where(a.at >= since, a.at < until,
                                  *(() if where is None else (where,))))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for app_id, at, action, code, count in rows:
        month = (at + LOCAL).strftime("%Y-%m")
        entry = out.setdefault((month, app_id), {"month": month, "app_id": app_id,
                                                 "queries": 0, "records": 0, "refusals": 0,
                                                 "pushes": 0})
        if code != "0000":
            entry["refusals"] += 1
        elif action.startswith("query."):
            entry["queries"] += 1
            entry["records"] += int(count or 0)
        else:
            entry["pushes"] += 1
    return [out[k] for k in sorted(out)]
