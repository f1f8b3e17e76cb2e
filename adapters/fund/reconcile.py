"""Reconciliation: the bank's figures for an account and a day against the hub's ledger,
and the movements that explain any difference."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from adapters.fund.ledger import alert, balance_fen
from mapping.fund import MOVEMENTS, fen_to_yuan, local_date
from store.fund_models import FundEvent, LedgerEntry, Reconciliation

FIGURES = ("opening_balance", "total_in", "total_out", "closing_balance")


def hub_figures(s: Session, account_no: str, day: date) -> dict[str, int]:
    before_in, before_out = balance_fen(s, account_no, before=day)
    day_in, day_out = balance_fen(s, account_no, on=day)
    opening = before_in - before_out
    return {"opening_balance": opening, "total_in": day_in, "total_out": day_out,
            "closing_balance": opening + day_in - day_out}


def _movement(e: LedgerEntry) -> dict[str, Any]:
    return {"serial_no": e.serial_no, "kind": e.kind, "direction": e.direction,
            "amount": str(fen_to_yuan(e.amount_fen)), "book_date": e.book_date.isoformat(),
            "occurred_at": e.occurred_at.isoformat() + "Z"}


def explain(s: Session, account_no: str, day: date, direction: str, diff: int) -> dict[str, Any]:
    """Why the day's ``direction`` total differs by ``diff`` (bank minus hub, in fen)."""
    amount = abs(diff)
    day_moves = list(s.scalars(select(LedgerEntry).where(
        LedgerEntry.account_no == account_no, LedgerEntry.book_date == day,
        LedgerEntry.direction == direction).order_by(LedgerEntry.occurred_at)))
    found: list[dict[str, Any]] = []
    if diff < 0:  # the hub has more: a movement the bank does not count that day
        found = [_movement(e) | {"why": "in the hub's ledger, not in the bank's total"}
                 for e in day_moves if e.amount_fen == amount]
    else:  # the bank has more: held at the hub, booked on another day, or never notified
        ops = [op for op, (_, d) in MOVEMENTS.items() if d == direction]
        for ev in s.scalars(select(FundEvent).where(
                FundEvent.account_no == account_no, FundEvent.status == "held",
                FundEvent.operation.in_(ops), FundEvent.amount_fen == amount)):
            if ev.occurred_at is None or local_date(ev.occurred_at) == day:
                found.append({"serial_no": ev.serial_no, "operation": ev.operation,
                              "amount": str(fen_to_yuan(amount)),
                              "why": f"held at the hub: {ev.reason}"})
        for e in s.scalars(select(LedgerEntry).where(
                LedgerEntry.account_no == account_no, LedgerEntry.direction == direction,
                LedgerEntry.amount_fen == amount,
                LedgerEntry.book_date.in_((day - timedelta(days=1), day + timedelta(days=1))))):
            found.append(_movement(e) | {"why": "booked by the hub on another day"})
    return {
        "figure": "total_in" if direction == "in" else "total_out",
        "difference": str(fen_to_yuan(diff)),
        "explained_by": found,
        "unexplained": None if found else (
            f"{'no notice received for' if diff > 0 else 'not counted by the bank:'} "
            f"{fen_to_yuan(amount)} {'in' if direction == 'in' else 'out'}"),
        "hub_movements_that_day": [_movement(e) for e in day_moves],
    }


def compare(s: Session, account_no: str, day: date, instruction_no: str,
            bank: dict[str, int], division: str | None = None) -> Reconciliation:
    """Record the comparison; an alert names every difference and what explains it."""
    ours = hub_figures(s, account_no, day)
    differences: dict[str, str] = {}
    for name in FIGURES:
        if bank[name] != ours[name]:
            differences[name] = str(fen_to_yuan(bank[name] - ours[name]))
    explanations = []
    for name, direction in (("total_in", "in"), ("total_out", "out")):
        if name in differences:
            explanations.append(explain(s, account_no, day, direction,
                                        bank[name] - ours[name]))
    detail = {"differences": differences, "explanations": explanations,
              "bank": {k: str(fen_to_yuan(v)) for k, v in bank.items()},
              "hub": {k: str(fen_to_yuan(v)) for k, v in ours.items()}}
    row = Reconciliation(
        account_no=account_no, for_date=day, instruction_no=instruction_no,
        bank_opening_fen=bank["opening_balance"], bank_in_fen=bank["total_in"],
        bank_out_fen=bank["total_out"], bank_closing_fen=bank["closing_balance"],
        hub_opening_fen=ours["opening_balance"], hub_in_fen=ours["total_in"],
        hub_out_fen=ours["total_out"], hub_closing_fen=ours["closing_balance"],
        matched=not differences,
        differences=json.dumps(detail, ensure_ascii=False) if differences else None,
    )
    s.add(row)
    s.flush()
    if differences:
        alert(s, "fund_recon_diff", "warning",
              f"对账不一致 {account_no} {day}："
              + ", ".join(f"{k} {v}" for k, v in differences.items()),
              detail, division=division, ref=f"fund_reconciliation:{row.id}")
    return row
