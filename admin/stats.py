"""Dashboard statistics: indexed range queries and GROUP BY in SQL.

Call-log figures come from the daily rollup (``admin_call_daily``) for whole days it
holds, and from the call log itself for the rest of the range (today, partial days),
so a year of data reads a few hundred thousand rollup rows instead of millions of
calls. Medians are estimated from the duration histogram (linear inside a bucket).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from admin.perms import Principal
from store.admin_models import CallDaily, CallDailyDone
from store.models import ArchivedMessage, CallLogEntry, Case, OutboxMessage, utcnow
from store.outbox import held_condition

#: Upper bounds (ms) of histogram buckets h0..h10; h11 is everything slower.
BUCKET_BOUNDS: tuple[float, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000)
NBUCKETS = len(BUCKET_BOUNDS) + 1
HIST = [f"h{i}" for i in range(NBUCKETS)]


def _bucket_sums(duration):  # type: ignore[no-untyped-def]
    cols = []
    lower: float | None = None
    for i in range(NBUCKETS):
        upper = BUCKET_BOUNDS[i] if i < len(BUCKET_BOUNDS) else None
        conds = []
        if lower is not None:
            conds.append(duration >= lower)
        if upper is not None:
            conds.append(duration < upper)
        cols.append(func.sum(case((and_(*conds), 1), else_=0)).label(HIST[i]))
        lower = upper
    return cols


# --------------------------------------------------------------------------- rollup


def refresh_rollup(session: Session, day: date) -> int:
    """(Re)build one day of the rollup from the call log; returns its rollup rows."""
    start = datetime.combine(day, time())
    end = start + timedelta(days=1)
    c = CallLogEntry
    session.execute(delete(CallDaily).where(CallDaily.day == day))
    src = (
        select(literal(day).label("day"), c.interface, c.division, c.outcome,
               func.count().label("calls"), func.sum(c.duration_ms).label("total_ms"),
               func.max(c.duration_ms).label("max_ms"), *_bucket_sums(c.duration_ms))
        .where(c.started_at >= start, c.started_at < end)
        .group_by(c.interface, c.division, c.outcome)
    )
    cols = ["day", "interface", "division", "outcome", "calls", "total_ms", "max_ms", *HIST]
    result = session.execute(insert(CallDaily).from_select(cols, src))
    rows = max(result.rowcount or 0, 0)
    done = session.get(CallDailyDone, day)
    if done is None:
        session.add(CallDailyDone(day=day, rows=rows, refreshed_at=utcnow()))
    else:
        done.rows, done.refreshed_at = rows, utcnow()
    return rows


def refresh_pending(session: Session, today: date | None = None, max_days: int = 800) -> list[date]:
    """Roll up every past day not yet done, and yesterday again (late calls).

    The scheduler job for the lead: run this a few minutes after midnight (and at
    start-up); each day is one indexed range scan of the call log.
    """
    today = today or utcnow().date()
    first = session.scalar(select(func.min(CallLogEntry.started_at)))
    if first is None:
        return []
    done = set(session.scalars(select(CallDailyDone.day)))
    day = max(first.date(), today - timedelta(days=max_days))
    refreshed = []
    while day < today:
        if day not in done or day == today - timedelta(days=1):
            refresh_rollup(session, day)
            refreshed.append(day)
        day += timedelta(days=1)
    return refreshed


# --------------------------------------------------------------------------- dashboard


@dataclass
class InterfaceStat:
    interface: str
    calls: int = 0
    ok: int = 0
    error: int = 0
    rejected: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0
    hist: list[int] = field(default_factory=lambda: [0] * NBUCKETS)

    @property
    def success_rate(self) -> float:
        return self.ok / self.calls if self.calls else 0.0

    @property
    def avg_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def median_ms(self) -> float:
        return hist_quantile(self.hist, 0.5, self.max_ms)

    @property
    def p95_ms(self) -> float:
        return hist_quantile(self.hist, 0.95, self.max_ms)


def hist_quantile(hist: list[int], q: float, max_ms: float) -> float:
    """Estimate a quantile from bucket counts, interpolating linearly inside a bucket."""
    total = sum(hist)
    if not total:
        return 0.0
    target = q * total
    seen = 0
    lower = 0.0
    for i, n in enumerate(hist):
        upper = BUCKET_BOUNDS[i] if i < len(BUCKET_BOUNDS) else max(max_ms, lower)
        upper = min(upper, max_ms) if max_ms >= lower else upper
        if n and seen + n >= target:
            return lower + (upper - lower) * (target - seen) / n
        seen += n
        lower = BUCKET_BOUNDS[i] if i < len(BUCKET_BOUNDS) else lower
    return max_ms


@dataclass
class Dashboard:
    since: datetime
    until: datetime
    cases_by_item: dict[str, int]
    cases_by_division: dict[str, int]
    cases_by_stage: dict[str, int]
    messages_by_outcome: dict[str, int]
    interfaces: list[InterfaceStat]
    calls_by_day: list[tuple[str, int, int]]  # day, ok, failed
    timings: dict[str, float] = field(default_factory=dict)


def _rollup_days(session: Session, since: datetime, until: datetime) -> list[date]:
    """Whole days inside [since, until) that the rollup holds."""
    first = since.date() if since.time() == time() else since.date() + timedelta(days=1)
    last = until.date()  # exclusive
    return list(session.scalars(select(CallDailyDone.day).where(
        CallDailyDone.day >= first, CallDailyDone.day < last).order_by(CallDailyDone.day)))


def _raw_intervals(since: datetime, until: datetime,
                   days: list[date]) -> list[tuple[datetime, datetime]]:
    """The parts of [since, until) not covered by the rolled-up days."""
    out: list[tuple[datetime, datetime]] = []
    cursor = since
    for day in days:
        start = datetime.combine(day, time())
        if start > cursor:
            out.append((cursor, start))
        cursor = max(cursor, start + timedelta(days=1))
    if cursor < until:
        out.append((cursor, until))
    return out


def interface_stats(session: Session, principal: Principal, since: datetime,
                    until: datetime) -> tuple[list[InterfaceStat], list[tuple[str, int, int]]]:
    days = _rollup_days(session, since, until)
    stats: dict[str, InterfaceStat] = {}
    per_day: dict[str, list[int]] = {}

    def add(interface: str, outcome: str, calls: int, total: float, mx: float,
            hist: list[int]) -> None:
        st = stats.setdefault(interface, InterfaceStat(interface))
        st.calls += calls
        if outcome in ("ok", "error", "rejected"):
            setattr(st, outcome, getattr(st, outcome) + calls)
        st.total_ms += total or 0.0
        st.max_ms = max(st.max_ms, mx or 0.0)
        st.hist = [a + (b or 0) for a, b in zip(st.hist, hist, strict=True)]

    d = CallDaily
    if days:
        in_days = and_(d.day >= days[0], d.day <= days[-1],
                       d.day.in_(select(CallDailyDone.day).where(
                           CallDailyDone.day >= days[0], CallDailyDone.day <= days[-1])))
        rows = session.execute(
            select(d.interface, d.outcome, func.sum(d.calls), func.sum(d.total_ms),
                   func.max(d.max_ms), *[func.sum(getattr(d, h)) for h in HIST])
            .where(in_days, principal.scope(d.division))
            .group_by(d.interface, d.outcome)).all()
        for r in rows:
            add(r[0], r[1], int(r[2]), float(r[3] or 0), float(r[4] or 0),
                [int(x or 0) for x in r[5:]])
        # group by the outcome itself: PostgreSQL will not match two ``outcome = $n``
        # expressions (their parameters differ) between SELECT and GROUP BY
        for day, outcome, calls in session.execute(
                select(d.day, d.outcome, func.sum(d.calls))
                .where(in_days, principal.scope(d.division))
                .group_by(d.day, d.outcome)).all():
            slot = per_day.setdefault(str(day), [0, 0])
            slot[0 if outcome == "ok" else 1] += int(calls)
    c = CallLogEntry
    intervals = _raw_intervals(since, until, days)
    if intervals:
        in_raw = or_(*[and_(c.started_at >= a, c.started_at < b) for a, b in intervals])
        rows = session.execute(
            select(c.interface, c.outcome, func.count(), func.sum(c.duration_ms),
                   func.max(c.duration_ms), *_bucket_sums(c.duration_ms))
            .where(in_raw, principal.scope(c.division))
            .group_by(c.interface, c.outcome)).all()
        for r in rows:
            add(r[0], r[1], int(r[2]), float(r[3] or 0), float(r[4] or 0),
                [int(x or 0) for x in r[5:]])
        day_col = func.date(c.started_at)
        for day, outcome, calls in session.execute(
                select(day_col, c.outcome, func.count())
                .where(in_raw, principal.scope(c.division))
                .group_by(day_col, c.outcome)).all():
            slot = per_day.setdefault(str(day)[:10], [0, 0])
            slot[0 if outcome == "ok" else 1] += int(calls)
    series = [(k, v[0], v[1]) for k, v in sorted(per_day.items())]
    return sorted(stats.values(), key=lambda s: s.interface), series


def case_counts(session: Session, principal: Principal, since: datetime,
                until: datetime) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Sub-cases (one per county) created in the range: by item, by county, by stage."""
    base = and_(Case.created_at >= since, Case.created_at < until, Case.county_code != "",
                principal.scope(Case.county_code))

    def by(col) -> dict[str, int]:  # type: ignore[no-untyped-def]
        rows = session.execute(select(col, func.count()).where(base).group_by(col)).all()
        return {str(k): int(n) for k, n in sorted(rows, key=lambda r: -r[1])}

    return by(Case.item), by(Case.county_code), by(Case.stage)


def message_outcomes(session: Session, principal: Principal, since: datetime,
                     until: datetime) -> dict[str, int]:
    """Outgoing messages created in the range: succeeded, retrying, queued, held, dead."""
    m = OutboxMessage
    base = and_(m.created_at >= since, m.created_at < until, principal.scope(m.division))
    label = case(
        (m.status == "done", "succeeded"),
        (m.status == "dead", "dead"),
        (held_condition(), "held"),
        (m.attempts > 0, "retrying"),
        else_="queued",
    )
    rows = session.execute(select(label, func.count()).where(base).group_by(label)).all()
    out = {k: 0 for k in ("succeeded", "retrying", "queued", "held", "dead")}
    out.update({str(k): int(n) for k, n in rows})
    a = ArchivedMessage  # delivered rows moved out of the queue (store/retention.py)
    out["succeeded"] += session.scalar(select(func.count()).select_from(a).where(
        a.created_at >= since, a.created_at < until, principal.scope(a.division))) or 0
    return out


def dashboard(session: Session, principal: Principal, since: datetime,
              until: datetime) -> Dashboard:
    import time as _time

    timings: dict[str, float] = {}
    t0 = _time.perf_counter()
    by_item, by_div, by_stage = case_counts(session, principal, since, until)
    t1 = _time.perf_counter()
    outcomes = message_outcomes(session, principal, since, until)
    t2 = _time.perf_counter()
    interfaces, series = interface_stats(session, principal, since, until)
    t3 = _time.perf_counter()
    timings.update(cases_ms=(t1 - t0) * 1000, messages_ms=(t2 - t1) * 1000,
                   calls_ms=(t3 - t2) * 1000)
    return Dashboard(since, until, by_item, by_div, by_stage, outcomes, interfaces, series,
                     timings)


def stats_rows(dash: Dashboard, names: dict[str, Any]) -> list[list[Any]]:
    """The dashboard's numbers as rows (section, key, label, values...) for CSV/Excel."""
    rows: list[list[Any]] = [["分类", "代码", "名称", "数量", "成功率", "平均耗时ms",
                              "中位耗时ms", "最长耗时ms"]]
    for section, data, table in (("事项", dash.cases_by_item, names["items"]),
                                 ("区县", dash.cases_by_division, names["counties"]),
                                 ("环节", dash.cases_by_stage, names["stages"]),
                                 ("报文结果", dash.messages_by_outcome, names["outcomes"])):
        for key, n in data.items():
            rows.append([section, key, table.get(key, key), n, "", "", "", ""])
    for st in dash.interfaces:
        rows.append(["接口", st.interface, "", st.calls, round(st.success_rate, 4),
                     round(st.avg_ms, 1), round(st.median_ms, 1), round(st.max_ms, 1)])
    return rows
