"""Dashboard statistics: the daily rollup plus the raw call log give the same numbers
as the raw call log alone; scoped by division; medians from the histogram."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from admin import stats
from admin.perms import Principal
from store.models import CallLogEntry
from tests.test_admin_fixtures import ALL_FUNCTIONS

CITY = Principal(1, "root", "root", frozenset(ALL_FUNCTIONS), None)
COUNTY = Principal(2, "op", "op", frozenset(ALL_FUNCTIONS), frozenset({"511702"}))


def _fill(hub, now: datetime, n: int = 3000) -> list[CallLogEntry]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        rows.append(CallLogEntry(
            ref_id=f"r{i}", interface=rng.choice(["county.rental_filing", "province.status"]),
            direction="out", party="p", division=rng.choice(["511702", "511703", None]),
            item="rental_filing", started_at=now - timedelta(minutes=rng.randrange(0, 60 * 24 * 9)),
            duration_ms=rng.expovariate(1 / 80),
            outcome=rng.choice(["ok", "ok", "ok", "error", "rejected"])))
    with hub.transaction() as s:
        s.add_all(rows)
    return rows


def _as_tuples(items):
    return [(st.interface, st.calls, st.ok, st.error, st.rejected, round(st.total_ms, 3),
             round(st.max_ms, 3), st.hist) for st in items]


def test_rollup_and_raw_agree(make_hub, store_url):
    hub = make_hub(store_url, inbound=[])
    now = datetime(2026, 11, 20, 15, 30)
    rows = _fill(hub, now)
    since, until = now - timedelta(days=7, hours=5), now + timedelta(minutes=1)
    with hub.transaction() as s:
        raw_only, raw_days = stats.interface_stats(s, CITY, since, until)
        raw_county, _ = stats.interface_stats(s, COUNTY, since, until)
    with hub.transaction() as s:
        refreshed = stats.refresh_pending(s, today=now.date())
    assert len(refreshed) == 9  # every past day with calls
    with hub.transaction() as s:
        mixed, mixed_days = stats.interface_stats(s, CITY, since, until)
        mixed_county, _ = stats.interface_stats(s, COUNTY, since, until)
    assert _as_tuples(mixed) == _as_tuples(raw_only)
    assert _as_tuples(mixed_county) == _as_tuples(raw_county)
    assert mixed_days == raw_days
    expected = sum(1 for r in rows if since <= r.started_at < until)
    assert sum(st.calls for st in mixed) == expected
    county_expected = sum(1 for r in rows if since <= r.started_at < until
                          and r.division == "511702")
    assert sum(st.calls for st in mixed_county) == county_expected
    # the estimated median is within its histogram bucket of the true one
    durations = sorted(r.duration_ms for r in rows if since <= r.started_at < until
                       and r.interface == "province.status")
    true_median = durations[len(durations) // 2]
    est = next(st for st in mixed if st.interface == "province.status").median_ms
    assert abs(est - true_median) < 25, (est, true_median)


def test_hist_quantile():
    hist = [0] * stats.NBUCKETS
    hist[3] = 10  # ten calls between 50 and 100 ms
    assert 50 <= stats.hist_quantile(hist, 0.5, 99.0) <= 100
    assert stats.hist_quantile([0] * stats.NBUCKETS, 0.5, 0) == 0
    hist = [0] * stats.NBUCKETS
    hist[-1] = 2  # beyond the last bound: up to the maximum
    assert 30000 <= stats.hist_quantile(hist, 0.5, 45000.0) <= 45000


def test_grouping_sets_match_portable_twin(make_hub, store_url):
    """The rollup read two ways at once (PostgreSQL GROUPING SETS) gives the rows of the
    two plain GROUP BY queries (on SQLite both sides are the portable twin)."""
    hub = make_hub(store_url, inbound=[])
    now = datetime(2026, 11, 20, 15, 30)
    _fill(hub, now)
    with hub.transaction() as s:
        stats.refresh_pending(s, today=now.date())
    d = stats.CallDaily
    for who in (CITY, COUNTY):
        where = stats.and_(d.day >= datetime(2026, 11, 11).date(),
                           d.day <= datetime(2026, 11, 19).date(), who.scope(d.division))
        with hub.transaction() as s:
            fast = stats._rollup_rows(s, where)
            twin = stats.portable_rollup_rows(s, where)

        def norm(rows):
            return sorted((kind, str(key), *[round(float(x), 3) if x is not None else None
                                             for x in r]) for kind, key, *r in rows)

        assert norm(fast) == norm(twin)
        assert {k for k, *_ in fast} == {"interface", "day"}
