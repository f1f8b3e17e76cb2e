"""Dashboard statistics: indexed range queries and GROUP BY in SQL.

Call-log figures come from the daily rollup (``admin_call_daily``) for whole days it
holds, and from the call log itself for the rest of the range (today, partial days),
so a year of data reads at most days × interfaces × divisions rollup rows (about 59,000
for 23 interfaces and 7 counties) whatever the traffic, instead of millions of calls.
Medians are estimated from the duration histogram (linear inside a bucket).
Days are the operators' days (config ``timezone``, Asia/Shanghai by default): a call at
01:00 Beijing time counts on that Beijing day, whatever the server's clock zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, delete, func, insert, literal, or_, select
from sqlalchemy.orm import Session

from admin.perms import Principal
from mapping.names import interface_name
from mapping.workdays import day_start
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


#: The call outcomes the rollup counts apart (``CallDaily`` columns); any other outcome
#: counts in ``calls`` only.
OUTCOMES = ("ok", "error", "rejected")

#: The operators' zone when a caller passes none (the hub passes config ``timezone``).
DEFAULT_TZ = ZoneInfo("Asia/Shanghai")


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
        select(literal(day).label("day"), c.interface, c.division,
               func.count().label("calls"),
               *[func.sum(case((c.outcome == o, 1), else_=0)).label(o) for o in OUTCOMES],
               func.sum(c.duration_ms).label("total_ms"),
               func.max(c.duration_ms).label("max_ms"), *_bucket_sums(c.duration_ms))
        .where(c.started_at >= start, c.started_at < end)
        .group_by(c.interface, c.division)
    )
    cols = ["day", "interface", "division", "calls", *OUTCOMES, "total_ms", "max_ms", *HIST]
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


def _rollup_sums():  # type: ignore[no-untyped-def]
    """What the interface table sums over the rollup: calls, ok, error, rejected,
    total ms, max ms, then the histogram."""
    d = CallDaily
    return [func.sum(d.calls), *[func.sum(getattr(d, o)) for o in OUTCOMES],
            func.sum(d.total_ms), func.max(d.max_ms), *[func.sum(getattr(d, h)) for h in HIST]]


def _rollup_rows(session: Session, where):  # type: ignore[no-untyped-def]
    """The rollup summed two ways: ``("interface", interface, *_rollup_sums())`` and
    ``("day", day, calls, ok)``. PostgreSQL: one scan (GROUPING SETS); the portable twin
    (SQLite): two GROUP BY queries; tests/test_admin_stats.py checks both give the same
    rows."""
    d = CallDaily
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            select(func.grouping(d.interface), d.interface, d.day, *_rollup_sums())
            .where(where).group_by(func.grouping_sets(d.interface, d.day))).all()
        return [("interface", r[1], *r[3:]) if r[0] == 0 else ("day", r[2], r[3], r[4])
                for r in rows]
    return portable_rollup_rows(session, where)


def portable_rollup_rows(session: Session, where):  # type: ignore[no-untyped-def]
    d = CallDaily
    out = [("interface", r[0], *r[1:]) for r in session.execute(
        select(d.interface, *_rollup_sums()).where(where).group_by(d.interface)).all()]
    out += [("day", r[0], r[1], r[2]) for r in session.execute(
        select(d.day, func.sum(d.calls), func.sum(d.ok)).where(where)
        .group_by(d.day)).all()]
    return out


#: Pieces of the call log read by one statement (one CASE arm and one OR term each).
MAX_PIECES = 200


def _within_the_log(session: Session, intervals: list[tuple[datetime, datetime]]
                    ) -> list[tuple[datetime, datetime]]:
    """The intervals cut to [the first call-log row, now]: no call lies outside (the
    first row's time is one index lookup)."""
    if not intervals:
        return []
    first = session.scalar(select(func.min(CallLogEntry.started_at)))
    if first is None:
        return []
    last = utcnow() + timedelta(minutes=1)
    return [(max(a, first), min(b, last)) for a, b in intervals if b > first and a < last]


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


def _raw_rows(session: Session, principal: Principal,
              pieces: list[tuple[date, datetime, datetime]]):  # type: ignore[no-untyped-def]
    """The call log over the pieces (local days or parts of one, not rolled up) in one
    indexed scan: per piece, interface and outcome the count, total and max ms and the
    histogram; ``piece`` is the index into ``pieces``."""
    c = CallLogEntry
    piece = (case(*[(c.started_at < b, i) for i, (_, _, b) in enumerate(pieces[:-1])],
                  else_=len(pieces) - 1) if len(pieces) > 1 else literal(0))
    # grouped on the inner query's column: PostgreSQL does not match a CASE with bound
    # parameters in the select list to the same CASE in GROUP BY
    src = (select(piece.label("piece"), c.interface, c.outcome, c.duration_ms)
           .where(or_(*[and_(c.started_at >= a, c.started_at < b) for _, a, b in pieces]),
                  principal.scope(c.division)).subquery())
    return session.execute(
        select(src.c.piece, src.c.interface, src.c.outcome, func.count(),
               func.sum(src.c.duration_ms), func.max(src.c.duration_ms),
               *_bucket_sums(src.c.duration_ms))
        .group_by(src.c.piece, src.c.interface, src.c.outcome)).all()


def interface_stats(session: Session, principal: Principal, since: datetime,
                    until: datetime, tz: tzinfo = DEFAULT_TZ,
                    ) -> tuple[list[InterfaceStat], list[tuple[str, int, int]]]:
    """Per interface its calls, outcomes and durations over [since, until), and per local
    day (calls, ok, failed): the rollup for the whole days it holds, the call log for the
    rest."""
    days = _rollup_days(session, since, until, tz)
    stats: dict[str, InterfaceStat] = {}
    per_day: dict[str, list[int]] = {}

    def add(interface: str, counts: dict[str, int], calls: int, total: float, mx: float,
            hist: list[int]) -> None:
        st = stats.setdefault(interface, InterfaceStat(interface))
        st.calls += calls
        for outcome, n in counts.items():
            setattr(st, outcome, getattr(st, outcome) + n)
        st.total_ms += total or 0.0
        st.max_ms = max(st.max_ms, mx or 0.0)
        st.hist = [a + (b or 0) for a, b in zip(st.hist, hist, strict=True)]

    def add_day(day: str, calls: int, ok: int) -> None:
        slot = per_day.setdefault(day, [0, 0])
        slot[0] += ok
        slot[1] += calls - ok

    d = CallDaily
    if days:
        # rollup rows exist only for days marked done (refresh_rollup writes both in one
        # transaction): a plain range on the day index, no join on the done marks
        in_days = and_(d.day >= days[0], d.day <= days[-1], principal.scope(d.division))
        for kind, key, *r in _rollup_rows(session, in_days):
            if kind == "interface":
                n = len(OUTCOMES)
                add(key, {o: int(x or 0) for o, x in zip(OUTCOMES, r[1:1 + n], strict=True)},
                    int(r[0] or 0), float(r[1 + n] or 0), float(r[2 + n] or 0),
                    [int(x or 0) for x in r[3 + n:]])
            else:
                add_day(str(key)[:10], int(r[0] or 0), int(r[1] or 0))
    # pieces cut at local midnights (a SQL date() would cut at UTC midnight), only where
    # the call log can hold rows: a range from 1900 had made a piece of every day
    pieces = _local_pieces(_within_the_log(session, _raw_intervals(since, until, days, tz)),
                           tz)
    for n in range(0, len(pieces), MAX_PIECES):  # SQLite's expression depth is 1000
        chunk = pieces[n:n + MAX_PIECES]
        for i, interface, outcome, calls, total, mx, *hist in _raw_rows(
                session, principal, chunk):
            counts = {outcome: int(calls)} if outcome in OUTCOMES else {}
            add(interface, counts, int(calls), float(total or 0), float(mx or 0),
                [int(x or 0) for x in hist])
            add_day(chunk[int(i)][0].isoformat(), int(calls),
                    int(calls) if outcome == "ok" else 0)
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
