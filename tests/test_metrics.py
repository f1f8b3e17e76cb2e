"""GET /metrics through the real server: the figures move with real traffic (an
application from the simulated province, its delivery, a dead message), nothing
personal is shown, and only allowed addresses or the bearer token may scrape."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.sim.province import ProvinceClient
from hub import ConfigError
from routes.policy import RetryPolicy
from store.outbox import NewMessage
from tests.county_support import secret, served
from tests.hubserver import HubServer, application
from tests.support import wait_until

COUNTY = "511702"
PARTNER = f"county_{COUNTY}"
TOKEN = "metrics-token-0123456789abcdef"


def scrape(url: str, token: str | None = None) -> dict[tuple[str, tuple], float]:
    """Every sample of ``/metrics`` as {(name, sorted labels): value}."""
    req = urllib.request.Request(url + "/metrics")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    samples[("__text__", ())] = text  # type: ignore[assignment]
    return samples


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def status_of(url: str, token: str | None = None) -> int:
    req = urllib.request.Request(url + "/metrics")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def world(make_hub, store_url, peer):
    hub = make_hub(store_url, inbound=["province", "county_smart"],
                   partners={PARTNER: {"base_url": peer.url, "division": COUNTY}})
    hub.start_workers(2)
    with served(hub) as url:
        yield hub, url, ProvinceClient(url, secret("province"))


def test_metrics_follow_traffic(world, peer):
    hub, url, client = world
    iface = "province.in.rental_filing"
    before = scrape(url)
    answer = client.submit("rental_filing", application("rental_filing",
                                                        apply_no="510000-20261202-000001"))
    assert answer.status == 200 and answer.body["code"] == "0000", answer.body
    wait_until(lambda: len(peer.state.received) == 1 or None, what="delivery to the county")

    def delivered(samples) -> float:
        return sum(v for (name, labels), v in samples.items()
                   if name == "cityhub_calls_total" and ("direction", "out") in labels
                   and ("outcome", "ok") in labels)

    ok = dict(interface=iface, direction="in", outcome="ok")

    def counted(samples) -> bool:  # each call shows once settled (CallCounters, 2 s);
        # the counters are the process's: another test's calls may settle meanwhile
        return (delivered(samples) > delivered(before)
                and value(samples, "cityhub_calls_total", **ok)
                > value(before, "cityhub_calls_total", **ok))

    wait_until(lambda: counted(scrape(url)) or None, what="the application and delivery counted")
    after = scrape(url)
    assert value(after, "cityhub_calls_total", **ok) == value(before, "cityhub_calls_total",
                                                               **ok) + 1
    count = dict(interface=iface, direction="in")
    assert value(after, "cityhub_call_duration_seconds_count", **count) == \
        value(before, "cityhub_call_duration_seconds_count", **count) + 1
    assert value(after, "cityhub_call_duration_seconds_bucket", le="+Inf", **count) == \
        value(after, "cityhub_call_duration_seconds_count", **count)
    assert value(after, "cityhub_call_duration_seconds_sum", **count) > 0
    assert value(after, "cityhub_store_up") == 1
    # the application's commit: one more transaction of the intake, holding one unit
    assert value(after, "cityhub_intake_commits_total") == \
        value(before, "cityhub_intake_commits_total") + 1
    assert value(after, "cityhub_intake_commit_units_total") == \
        value(before, "cityhub_intake_commit_units_total") + 1
    assert value(after, "cityhub_intake_write_busy_seconds_total") > \
        value(before, "cityhub_intake_write_busy_seconds_total")
    assert value(after, "cityhub_outbox_dead_messages") == 0
    # the scheduler (if started) or none; the gauge is there either way
    assert ("cityhub_scheduler_leader", ()) in after

    # a dead message: the county refuses permanently
    peer.state.mode = "reject"
    answer = client.submit("rental_filing", application("rental_filing",
                                                        apply_no="510000-20261202-000002"))
    assert answer.body["code"] == "0000", answer.body
    wait_until(lambda: value(scrape(url), "cityhub_outbox_dead_messages") == 1 or None,
               what="the dead message shown")
    def refused(samples) -> float:  # a call shows once settled (CallCounters, 2 s)
        return sum(v for (name, labels), v in samples.items()
                   if name == "cityhub_calls_total" and ("direction", "out") in labels
                   and ("outcome", "ok") not in labels)

    wait_until(lambda: refused(scrape(url)) >= 1 or None, what="the refusal counted")
    final = scrape(url)
    assert value(final, "cityhub_outbox_messages", status="dead", partner=PARTNER) == 1
    # nothing personal: names, ID numbers, addresses of the applications
    text = final[("__text__", ())]
    for secret_value in ("李四", "王五", "11010519491231002X", "110105198001011238",
                         "朝阳路", "510000-20261202"):
        assert secret_value not in text


def test_oldest_due_and_depth(make_hub, store_url, peer):
    """No delivery threads: an enqueued message waits, and its age shows."""
    hub = make_hub(store_url, partners={PARTNER: {"base_url": peer.url, "division": COUNTY}})
    with served(hub) as url:
        assert value(scrape(url), "cityhub_outbox_oldest_due_seconds") == 0
        with hub.transaction() as s:
            hub.enqueue(s, NewMessage(interface="county.rental_filing", adapter="county_smart",
                                      partner=PARTNER, operation="rental_filing",
                                      payload={"x": 1}, policy=RetryPolicy(), timeout=5.0,
                                      division=COUNTY, item="rental_filing"))
        first = scrape(url)
        assert value(first, "cityhub_outbox_messages", status="pending", partner=PARTNER) == 1
        wait_until(lambda: value(scrape(url), "cityhub_outbox_oldest_due_seconds") > 0.2
                   or None, what="the waiting message ages")


def test_access_by_address_or_token(make_hub, store_url, monkeypatch):
    monkeypatch.setenv("HUB_SECRET_METRICS", TOKEN)
    hub = make_hub(store_url, metrics={"allow": ["10.1.2.0/24"], "token": True})
    with served(hub) as url:
        assert status_of(url) == 403  # 127.0.0.1 is not allowed here
        assert status_of(url, "wrong-token-0123456789abcdef") == 403
        assert status_of(url, TOKEN + "x") == 403
        assert status_of(url, TOKEN) == 200
        assert value(scrape(url, TOKEN), "cityhub_store_up") == 1
    open_hub = make_hub(store_url)  # default: loopback only, no token needed
    with served(open_hub) as url:
        assert status_of(url) == 200


@pytest.mark.parametrize("metrics, key", [
    ({"allow": ["not-an-address"]}, "metrics.allow"),
    ({"allow": "127.0.0.1"}, "metrics.allow"),
    ({"token": "yes"}, "metrics.token"),
    ({"token": True}, "metrics.token"),  # no secret given
    ({"tokn": True}, "metrics.tokn"),
])
def test_bad_config_refused_at_start(make_hub, sqlite_url, monkeypatch, metrics, key):
    monkeypatch.delenv("HUB_SECRET_METRICS", raising=False)
    hub = make_hub(sqlite_url, metrics=metrics)
    with pytest.raises(ConfigError, match=key):
        HubServer(hub)


def test_counters_bounded_and_once_per_call():
    """Labels cannot be steered: odd names and names past the cap count as ``other``; a
    call whose row is built twice (a retried transaction) counts once, once settled."""
    from datetime import datetime

    from adapters.metrics import MAX_INTERFACES, CallCounters
    from store.calllog import CallRecord

    now = [100.0]
    counters = CallCounters(settle=2.0, clock=lambda: now[0])

    def rec(interface, ref):
        return CallRecord(interface=interface, direction="in", party="p",
                          started_at=datetime(2026, 12, 2), duration_ms=12.0, ref_id=ref)

    counters.observe(rec("province.in.rental_filing", "a"))
    counters.observe(rec("province.in.rental_filing", "a"))  # the same call again
    counters.observe(rec('x"} 1\nevil{', "b"))
    counters.observe(rec("张三", "c"))
    for i in range(MAX_INTERFACES + 10):
        counters.observe(rec(f"iface.{i}", f"n{i}"))
    assert counters.snapshot() == ({}, {})  # not settled yet: nothing shown
    now[0] += 2.0
    calls, hist = counters.snapshot()
    assert calls[("province.in.rental_filing", "in", "ok")] == 1
    assert calls[("other", "in", "ok")] == 2 + 11  # 2 odd names, 11 past the cap
    assert len({k[0] for k in calls}) == MAX_INTERFACES + 1
    counts, total = hist[("province.in.rental_filing", "in")]
    assert sum(counts) == 1 and counts[1] == 1 and abs(total - 0.012) < 1e-9  # 10-20 ms
    # built again with another outcome (a retried unit's 2002 answered 0000 after all):
    # counted once, as its last row says, duration and all
    first = rec("province.in.rental_filing", "r")
    first.outcome = "rejected"
    counters.observe(first)
    now[0] += 0.3
    retried = rec("province.in.rental_filing", "r")
    retried.duration_ms = 600.0
    counters.observe(retried)
    now[0] += 2.0
    calls, hist = counters.snapshot()
    assert calls[("province.in.rental_filing", "in", "ok")] == 2
    assert calls.get(("province.in.rental_filing", "in", "rejected"), 0) == 0
    counts, total = hist[("province.in.rental_filing", "in")]
    assert sum(counts) == 2 and counts[1] == 1 and counts[6] == 1  # 10-20 ms, 0.5-1 s
    assert abs(total - 0.612) < 1e-9


def test_a_scrape_never_sees_a_counter_fall_nor_misses_a_call():
    """A scrape between a call's first row (2002) and its retry (0000) within the settle
    time does not show the call yet; once settled it counts as ok and no series fell.
    A row built again later with the same outcome (a delivery's row rebuilt while the
    store was away, a minute on) is not a second call; with another outcome (a COMMIT
    lost in an outage, answered 5000 after the driver's time-outs) it corrects the
    count: the one case a series falls by one."""
    from datetime import datetime

    from adapters.metrics import CallCounters
    from store.calllog import CallRecord

    now = [0.0]
    counters = CallCounters(settle=2.0, clock=lambda: now[0])
    iface = "province.in.rental_filing"

    def rec(ref, outcome="ok", ms=12.0):
        r = CallRecord(interface=iface, direction="in", party="p",
                       started_at=datetime(2026, 12, 2), duration_ms=ms, ref_id=ref)
        r.outcome = outcome
        return r

    seen: list[dict] = []

    def scrape() -> dict:
        calls, _ = counters.snapshot()
        for earlier in seen:  # no series fell
            assert all(calls.get(k, 0) >= n for k, n in earlier.items()), (earlier, calls)
        seen.append(calls)
        return calls

    counters.observe(rec("r", "rejected", 600.0))
    now[0] += 0.5
    assert scrape().get((iface, "in", "rejected"), 0) == 0  # not settled: not shown
    counters.observe(rec("r"))  # the retry answers 0000, in 12 ms
    now[0] += 2.0
    calls = scrape()
    assert (calls.get((iface, "in", "rejected"), 0), calls[(iface, "in", "ok")]) == (0, 1)
    _, hist = counters.snapshot()
    counts, total = hist[(iface, "in")]
    assert counts[1] == 1 and counts[6] == 0 and abs(total - 0.012) < 1e-9
    now[0] += 60.0
    counters.observe(rec("r"))  # rebuilt a minute later, the same: not a second call
    counters.observe(rec("s", "rejected"))  # a real rejection
    now[0] += 2.0
    calls = scrape()
    assert (calls[(iface, "in", "rejected")], calls[(iface, "in", "ok")]) == (1, 1)
    # the call's final row, late and otherwise: it moves (ok falls by one, error rises)
    counters.observe(rec("r", "error", 25_000.0))
    calls, hist = counters.snapshot()
    assert (calls[(iface, "in", "ok")], calls[(iface, "in", "error")]) == (0, 1)
    counts, total = hist[(iface, "in")]
    assert sum(counts) == 2 and counts[1] == 1 and abs(total - 25.012) < 1e-9
