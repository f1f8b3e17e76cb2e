"""Dashboard statistics: indexed range queries and GROUP BY in SQL.

Call-log figures come from the daily rollup (``admin_call_daily``) for whole days it
holds, and from the call log itself for the rest of the range (today, partial days),
so a year of data reads a few hundred thousand rollup rows instead of millions of
calls. Medians are estimated from the duration histogram (linear inside a bucket).
Days are the operators' days (config ``timezone``, Asia/Shanghai by default): a call at
01:00 Beijing time counts on that Beijing day, whatever the server's clock zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, tuple_
from sqlalchemy.orm import Session

from admin.perms import Principal
from mapping.names import interface_name
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


#: The operators' zone when a caller passes none (the hub passes config ``timezone``).
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


def day_start(day: date, tz: tzinfo) -> datetime:
    """The first instant of the local ``day`` as naive UTC (the store's times)."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def local_day(value: datetime, tz: tzinfo) -> date:
    """The local day of a stored naive-UTC time."""
    return value.replace(tzinfo=UTC).astimezone(tz).date()


# --------------------------------------------------------------------------- rollup


def refresh_rollup(session: Session, day: date, tz: tzinfo = DEFAULT_TZ) -> int:
    """(Re)build one local day of the rollup from the call log; returns its rollup rows."""
    start, end = day_start(day, tz), day_start(day + timedelta(days=1), tz)
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


def refresh_pending(session: Session, today: date | None = None, max_days: int = 800,
                    tz: tzinfo = DEFAULT_TZ) -> list[date]:
    """Roll up every past day not yet done, and yesterday again (late calls).

    The scheduler job for the lead: run this a few minutes after midnight (and at
    start-up); each day is one indexed range scan of the call log.
    """
    today = today or local_day(utcnow(), tz)
    first = session.scalar(select(func.min(CallLogEntry.started_at)))
    if first is None:
        return []
    done = set(session.scalars(select(CallDailyDone.day)))
    day = max(local_day(first, tz), today - timedelta(days=max_days))
    refreshed = []
    while day < today:
        if day not in done or day == today - timedelta(days=1):
            refresh_rollup(session, day, tz)
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


def _rollup_days(session: Session, since: datetime, until: datetime,
                 tz: tzinfo) -> list[date]:
    """Whole local days inside [since, until) that the rollup holds."""
    first = local_day(since, tz)
    if day_start(first, tz) < since:
        first += timedelta(days=1)
    last = local_day(until, tz)  # exclusive: the day holding ``until`` is partial or after
    return list(session.scalars(select(CallDailyDone.day).where(
        CallDailyDone.day >= first, CallDailyDone.day < last).order_by(CallDailyDone.day)))


def _raw_intervals(since: datetime, until: datetime, days: list[date],
                   tz: tzinfo) -> list[tuple[datetime, datetime]]:
    """The parts of [since, until) not covered by the rolled-up days."""
    out: list[tuple[datetime, datetime]] = []
    cursor = since
    for day in days:
        start = day_start(day, tz)
        if start > cursor:
            out.append((cursor, start))
        cursor = max(cursor, day_start(day + timedelta(days=1), tz))
    if cursor < until:
        out.append((cursor, until))
    return out


def _rollup_rows(session: Session, where, sums):  # type: ignore[no-untyped-def]
    """The rollup summed two ways — by (interface, outcome) and by (day, outcome) — as
    ``(kind, interface or day, outcome, *sums)``. PostgreSQL: one scan (GROUPING SETS);
    the portable twin (SQLite): two GROUP BY queries; tests/test_admin_stats.py checks
    both give the same rows."""
    d = CallDaily
    if session.get_bind().dialect.name == "postgresql":
        # outcome is grouped on by itself in both sets (PostgreSQL will not match two
        # ``outcome = $n`` expressions with different parameters to GROUP BY)
        by_iface = func.grouping(d.interface)
        rows = session.execute(
            select(by_iface, d.interface, d.day, d.outcome, *sums).where(where)
            .group_by(func.grouping_sets(tuple_(d.interface, d.outcome),
                                         tuple_(d.day, d.outcome)))).all()
        return [("interface", r[1], r[3], *r[4:]) if r[0] == 0 else ("day", r[2], r[3], *r[4:])
                for r in rows]
    return portable_rollup_rows(session, where, sums)


def portable_rollup_rows(session: Session, where, sums):  # type: ignore[no-untyped-def]
    d = CallDaily
    out = [("interface", r[0], r[1], *r[2:]) for r in session.execute(
        select(d.interface, d.outcome, *sums).where(where)
        .group_by(d.interface, d.outcome)).all()]
    out += [("day", r[0], r[1], r[2], None, None) for r in session.execute(
        select(d.day, d.outcome, func.sum(d.calls)).where(where)
        .group_by(d.day, d.outcome)).all()]
    return out


def _local_pieces(intervals: list[tuple[datetime, datetime]],
                  tz: tzinfo) -> list[tuple[date, datetime, datetime]]:
    """The intervals cut at local midnights: (local day, start, end) in naive UTC."""
    out = []
    for a, b in intervals:
        while a < b:
            day = local_day(a, tz)
            end = min(b, day_start(day + timedelta(days=1), tz))
            out.append((day, a, end))
            a = end
    return out


def interface_stats(session: Session, principal: Principal, since: datetime,
                    until: datetime, tz: tzinfo = DEFAULT_TZ,
                    ) -> tuple[list[InterfaceStat], list[tuple[str, int, int]]]:
    days = _rollup_days(session, since, until, tz)
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
        # rollup rows exist only for days marked done (refresh_rollup writes both in one
        # transaction): a plain range on the day index, no join on the done marks
        in_days = and_(d.day >= days[0], d.day <= days[-1], principal.scope(d.division))
        sums = [func.sum(d.calls), func.sum(d.total_ms), func.max(d.max_ms),
                *[func.sum(getattr(d, h)) for h in HIST]]
        for kind, key, outcome, *r in _rollup_rows(session, in_days, sums):
            if kind == "interface":
                add(key, outcome, int(r[0]), float(r[1] or 0), float(r[2] or 0),
                    [int(x or 0) for x in r[3:]])
            else:
                slot = per_day.setdefault(str(key)[:10], [0, 0])
                slot[0 if outcome == "ok" else 1] += int(r[0])
    c = CallLogEntry
    intervals = _raw_intervals(since, until, days, tz)
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
        # one indexed range count per local day (a SQL date() would cut at UTC midnight)
        for day, a, b in _local_pieces(intervals, tz):
            for outcome, calls in session.execute(
                    select(c.outcome, func.count())
                    .where(c.started_at >= a, c.started_at < b, principal.scope(c.division))
                    .group_by(c.outcome)).all():
                slot = per_day.setdefault(day.isoformat(), [0, 0])
                slot[0 if outcome == "ok" else 1] += int(calls)
    series = [(k, v[0], v[1]) for k, v in sorted(per_day.items())]
    return sorted(stats.values(), key=lambda s: s.interface), series


def case_counts(session: Session, principal: Principal, since: datetime,
                until: datetime) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Sub-cases (one per county) created in the range: by item, by county, by stage."""
    base = and_(Case.created_at >= since, Case.created_at < until, Case.county_code != "",
                principal.scope(Case.county_code))

    by_item: dict[str, int] = {}
    by_county: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    # one scan grouped by all three (at most items x counties x stages rows), summed here
    for item, county, stage, n in session.execute(
            select(Case.item, Case.county_code, Case.stage, func.count()).where(base)
            .group_by(Case.item, Case.county_code, Case.stage)).all():
        for table, key in ((by_item, item), (by_county, county), (by_stage, stage)):
            table[str(key)] = table.get(str(key), 0) + int(n)

    def ordered(table: dict[str, int]) -> dict[str, int]:
        return dict(sorted(table.items(), key=lambda kv: -kv[1]))

    return ordered(by_item), ordered(by_county), ordered(by_stage)


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
              until: datetime, tz: tzinfo = DEFAULT_TZ) -> Dashboard:
    import time as _time

    timings: dict[str, float] = {}
    t0 = _time.perf_counter()
    by_item, by_div, by_stage = case_counts(session, principal, since, until)
    t1 = _time.perf_counter()
    outcomes = message_outcomes(session, principal, since, until)
    t2 = _time.perf_counter()
    interfaces, series = interface_stats(session, principal, since, until, tz)
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
        rows.append(["接口", st.interface, interface_name(st.interface), st.calls,
                     round(st.success_rate, 4),
                     round(st.avg_ms, 1), round(st.median_ms, 1), round(st.max_ms, 1)])
    return rows
