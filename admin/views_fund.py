"""资金监管: supervised accounts with their balances, an account's ledger (personal data
masked unless revealed, and a reveal audited as on the case page), its instructions and
reconciliations, and the events held for an operator."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, g, request
from sqlalchemy import and_, case, false, func, select, true
from sqlalchemy.orm import Session

from admin.auth import requires
from admin.masking import mask_if
from admin.web import audit, bp, hub, me, render
from mapping.fund import ABNORMAL, MOVEMENTS, fen_to_yuan, reported_late
from mapping.names import known
from store.fund_models import (
    FundConflict,
    FundEvent,
    FundInstruction,
    LedgerEntry,
    Reconciliation,
    SupervisedAccount,
)
from store.models import utcnow

KINDS = {"deposit": "入账", "withdrawal": "支取", "pos_payment": "POS缴款", "frozen": "冻结",
         "unfrozen": "解冻", "judicial_deduction": "司法扣划"}
DIRECTIONS = {"in": "收入", "out": "支出", "none": "—"}
ACCOUNT_STATUS = known("fund_account_statuses")
INSTRUCTION_STATUS = {"answered": "已答复", "waiting": "等待结果", "overdue": "已超期",
                      "failed": "发送失败"}
FIGURE_NAMES = {"opening_balance": "期初余额", "total_in": "收入合计", "total_out": "支出合计",
                "closing_balance": "期末余额"}
#: The ledger detail fields shown per movement (personal ones are masked by key).
DETAIL_FIELDS = ("payer_name", "buyer_name", "payer_account", "payee_name", "payee_account")


#: Ledger kinds of the abnormal events (freeze, unfreeze, judicial deduction).
ABNORMAL_KINDS = frozenset(MOVEMENTS[op][0] for op in ABNORMAL)


def yuan(fen: int | None) -> str:
    """Integer fen as yuan with two decimals."""
    return "" if fen is None else f"{fen_to_yuan(fen):,}"


_SIGNED = case((LedgerEntry.direction == "in", LedgerEntry.amount_fen),
               (LedgerEntry.direction == "out", -LedgerEntry.amount_fen), else_=0)


def _account_or_404(s: Session, account_no: str) -> SupervisedAccount:
    account = s.scalars(select(SupervisedAccount).where(
        SupervisedAccount.account_no == account_no)).first()
    if account is None or not me().sees(account.division):
        abort(404)
    return account


def _held_events(s: Session) -> list[dict[str, Any]]:
    """Unresolved held events in the principal's divisions (by the event's division, or
    its account's); events of no division (an unknown account) only for city-wide users."""
    division = func.coalesce(FundEvent.division, SupervisedAccount.division)
    if me().divisions is None:
        where: Any = FundEvent.status == "held"
    elif not me().divisions:
        where = false()
    else:
        where = and_(FundEvent.status == "held", division.in_(sorted(me().divisions)))
    rows = s.execute(
        select(FundEvent, division.label("div"))
        .outerjoin(SupervisedAccount, SupervisedAccount.account_no == FundEvent.account_no)
        .where(where, FundEvent.resolved_at.is_(None))
        .order_by(FundEvent.id.desc()).limit(200)).all()
    held = [{"e": e, "division": div, "amount": yuan(e.amount_fen)} for e, div in rows]
    held += _conflicts(s)
    return sorted(held, key=lambda x: x["e"].created_at, reverse=True)


def _conflicts(s: Session) -> list[dict[str, Any]]:
    """Unresolved notices refused with 2005 (a serial_no reused with other content), in
    the principal's divisions as held events are."""
    division = func.coalesce(FundConflict.division, SupervisedAccount.division)
    if me().divisions is not None and not me().divisions:
        return []
    where: Any = true() if me().divisions is None else division.in_(sorted(me().divisions))
    rows = s.execute(
        select(FundConflict, division.label("div"))
        .outerjoin(SupervisedAccount, SupervisedAccount.account_no == FundConflict.account_no)
        .where(where, FundConflict.resolved_at.is_(None))
        .order_by(FundConflict.id.desc()).limit(200)).all()
    return [{"e": c, "division": div, "amount": yuan(c.amount_fen)} for c, div in rows]


@bp.get("/fund")
@requires("view")
def fund():  # type: ignore[no-untyped-def]
    args = {k: request.args.get(k, "").strip() for k in ("bank", "division")}
    scope = [] if me().divisions is None else [me().scope(SupervisedAccount.division)]
    conds = list(scope)
    if args["bank"]:
        conds.append(SupervisedAccount.bank_code == args["bank"])
    if args["division"]:
        conds.append(SupervisedAccount.division == args["division"])
    balance = (select(func.coalesce(func.sum(_SIGNED), 0))
               .where(LedgerEntry.account_no == SupervisedAccount.account_no)
               .scalar_subquery())
    unlinked = (select(func.count(LedgerEntry.id))
                .where(LedgerEntry.account_no == SupervisedAccount.account_no,
                       LedgerEntry.unlinked.is_(True))
                .scalar_subquery())
    with hub().db.read_session() as s:
        rows = [{"a": a, "balance": yuan(int(bal or 0)), "unlinked": int(n or 0)}
                for a, bal, n in s.execute(
                    select(SupervisedAccount, balance, unlinked).where(and_(true(), *conds))
                    .order_by(SupervisedAccount.division, SupervisedAccount.account_no)).all()]
        banks = sorted(set(s.scalars(select(SupervisedAccount.bank_code).distinct()
                                     .where(and_(true(), *scope)))))
        held = _held_events(s)
    return render("fund.html", rows=rows, args=args, banks=banks, held=held,
                  counties=me().visible_counties(hub().city.counties),
                  ACCOUNT_STATUS=ACCOUNT_STATUS)


def _account_page(account_no: str, reveal: bool) -> str:
    h = hub()
    with h.transaction() as s:
        account = _account_or_404(s, account_no)
        entries = []
        total = 0
        for e in s.scalars(select(LedgerEntry).where(LedgerEntry.account_no == account_no)
                           .order_by(LedgerEntry.occurred_at, LedgerEntry.id)):
            total += {"in": e.amount_fen, "out": -e.amount_fen}.get(e.direction, 0)
            detail = h.cipher.open_json(e.detail_enc) or {}
            detail = {k: detail.get(k) for k in DETAIL_FIELDS if detail.get(k)}
            late = reported_late(e.occurred_at, e.created_at) if e.kind in ABNORMAL_KINDS \
                else None
            entries.append({"e": e, "amount": yuan(e.amount_fen), "balance": yuan(total),
                            "detail": mask_if(detail, reveal), "late": late})
        now = utcnow()
        instructions = []
        for ins in s.scalars(select(FundInstruction).where(
                FundInstruction.account_no == account_no).order_by(FundInstruction.id.desc())
                .limit(100)):
            if ins.status == "answered":
                state = "answered"
            elif ins.status == "failed":
                state = "failed"
            elif ins.overdue or ins.deadline_at < now:
                state = "overdue"
            else:
                state = "waiting"
            instructions.append({"i": ins, "state": state})
        recons = []
        for r in s.scalars(select(Reconciliation).where(
                Reconciliation.account_no == account_no)
                .order_by(Reconciliation.for_date.desc(), Reconciliation.id.desc()).limit(30)):
            detail = json.loads(r.differences) if r.differences else {}
            recons.append({"r": r, "differences": detail.get("differences", {}),
                           "explanations": detail.get("explanations", []),
                           "bank": [yuan(v) for v in (r.bank_opening_fen, r.bank_in_fen,
                                                      r.bank_out_fen, r.bank_closing_fen)],
                           "hub": [yuan(v) for v in (r.hub_opening_fen, r.hub_in_fen,
                                                     r.hub_out_fen, r.hub_closing_fen)]})
        held = [x for x in _held_events(s) if x["e"].account_no == account_no]
        if reveal:
            audit(s, "view_personal_data", f"fund:{account_no}",
                  {"reason": request.form.get("reason", "")[:200]})
    return render("fund_account.html", a=account, entries=entries, balance=yuan(total),
                  unlinked=sum(1 for x in entries if x["e"].unlinked),
                  instructions=instructions, recons=recons, held=held, reveal=reveal,
                  KINDS=KINDS, DIRECTIONS=DIRECTIONS, ACCOUNT_STATUS=ACCOUNT_STATUS,
                  INSTRUCTION_STATUS=INSTRUCTION_STATUS, FIGURE_NAMES=FIGURE_NAMES)


@bp.get("/fund/<account_no>")
@requires("view")
def fund_account(account_no: str):  # type: ignore[no-untyped-def]
    return _account_page(account_no, reveal=False)


@bp.post("/fund/<account_no>/reveal")
@requires("view_personal_data")
def fund_reveal(account_no: str):  # type: ignore[no-untyped-def]
    g.reveal = True
    return _account_page(account_no, reveal=True)
