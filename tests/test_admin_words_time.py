"""Operators' pages in Chinese and in the operators' time zone (issue 13), through the
real server: the case page's business timeline and labelled application, no raw code
outside the technical section, the dashboard's alerts by type with bulk acknowledgement
and a dead message's alert closing itself once the message is delivered, the search's
partial numbers and Chinese errors, and Beijing day boundaries with the process in UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import lxml.html
import pytest
import requests
import yaml
from sqlalchemy import select, update

from adapters.manual_excel import mark_stage
from admin import stats
from hub import ConfigError, Hub, load_config
from mapping import names
from store.models import Alert, CallLogEntry, Case, OutboxMessage
from tests.support import start_hub_process, stop_process, wait_until
from tests.test_admin_fixtures import (  # noqa: F401  (fixtures)
    ALL_FUNCTIONS,
    COUNTY_FUNCTIONS,
    Client,
    add_operator,
    client,
    county_peer,
    new_case,
    served,
)

BEIJING = ZoneInfo("Asia/Shanghai")


def visible_text(html: str) -> str:
    """What an operator reads: no folded (closed) technical section, tooltip or hidden
    value; an open ``<details>`` (the dashboard's alert groups) is read like the page."""
    doc = lxml.html.fromstring(html)
    for el in doc.xpath("//details[not(@open)] | //script | //style | //head"
                        " | //*[local-name()='title']"
                        " | //*[contains(concat(' ', @class, ' '), ' code ')]"
                        " | //*[contains(concat(' ', @class, ' '), ' tech ')]"):
        el.getparent().remove(el)
    return " ".join(doc.text_content().split())


def raw_codes(text: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Catalogue codes that appear as words in ``text`` (``extra``: more catalogue kinds)."""
    codes = set()
    for kind in ("message_statuses", "alert_kinds", "interfaces", "items", "stages",
                 "partners", "adapters", *extra):
        codes |= set(names.known(kind))
    codes |= {"county.rental_filing", "county_511702", "province.status", "dead_message"}
    return sorted(c for c in codes
                  if re.search(rf"(?<![\w.]){re.escape(c)}(?![\w.])", text))


def _signed_in(served, username="root", functions=ALL_FUNCTIONS, divisions=None):  # noqa: F811
    add_operator(served.hub, username, functions, divisions)
    c = Client(served.url)
    assert c.login(username).status_code == 200
    return c


def _dead(served, county_peer, apply_no):  # noqa: F811
    """A case whose county delivery died (the county answers 503 until told otherwise)."""
    county_peer.state.mode = "fail"
    case = new_case(served.hub, ["511702"], apply_no)
    served.hub.start_workers(threads=1)

    def dead():
        with served.hub.transaction() as s:
            return s.scalars(select(OutboxMessage).where(
                OutboxMessage.status == "dead",
                OutboxMessage.case_id == case["sub_ids"]["511702"])).first()
    msg = wait_until(dead, timeout=30, interval=0.3, what="a dead message")
    return case, msg.id


def test_case_page_timeline_form_and_no_raw_code(served, county_peer):  # noqa: F811
    root = _signed_in(served)
    case, mid = _dead(served, county_peer, "WORDS-1")
    sub = case["subs"]["511702"]
    mark_stage(served.hub, sub, "accepted", "李受理", opinion="材料齐全")
    mark_stage(served.hub, sub, "completed", "王办结", opinion="准予备案", filing_no="BA-2026-9")
    page = root.get(f"/admin/cases/{sub}")
    assert page.status_code == 200
    doc = lxml.html.fromstring(page.text)
    timeline = doc.get_element_by_id("timeline").text_content()
    # 申请 → 受理 → 审批 → 办结, in that order, with handler (masked), opinion, filing no
    stages = [td.text_content().strip() for td in doc.xpath(
        "//table[@class='milestones']//tr/td[1]")]
    assert stages == ["申请", "受理", "审批", "办结"], stages
    assert "BA-2026-9" in timeline and "尚未办理" in timeline  # 审批 never recorded
    assert "王办结" not in timeline and "王*" in timeline  # masked for this view
    # the sub-case is finished: the overall state says 办结
    assert "办结" in doc.get_element_by_id("overall-state").text_content()
    # the application as a labelled form, not JSON, outside the technical section
    form = doc.get_element_by_id("application").text_content()
    for label in ("承租人姓名", "出租人证件号码", "房屋坐落", "证件种类", "居民身份证", "通川区"):
        assert label in form, label
    assert "lessee_name" not in form and "{" not in form
    assert re.search(r"提交时间\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s", form), form  # local time
    # the dead message is offered for resubmission, with the one-line explanations
    attention = doc.get_element_by_id("needs-action").text_content()
    assert "房屋租赁备案 · 推送区县" in attention and "重新提交" in attention
    assert "重新处理：" in page.text and "重新提交：" in page.text
    # the technical log is folded under it, codes there for technical staff
    technical = doc.get_element_by_id("technical")
    assert technical.tag == "details" and technical.get("open") is None
    codes = " ".join(technical.xpath(".//span[contains(@class, 'code')]/text()"))
    assert "county.rental_filing" in raw_codes(codes)  # the check sees codes
    assert raw_codes(visible_text(page.text)) == []
    # opened by a clerk, the technical log names its statuses too (codes in grey spans)
    opened = page.text.replace('id="technical">', 'id="technical" open>')
    assert opened != page.text and raw_codes(visible_text(opened)) == []

    # the parent: 办理中 while a sub-case is open, 办结 when all are
    two = new_case(served.hub, ["511702", "511703"], "WORDS-2")
    mark_stage(served.hub, two["subs"]["511702"], "accepted", "甲")
    mark_stage(served.hub, two["subs"]["511702"], "completed", "甲", filing_no="B1")
    state = lambda: lxml.html.fromstring(root.get(f"/admin/cases/{two['parent']}").text) \
        .get_element_by_id("overall-state").text_content()  # noqa: E731
    assert "办理中（1/2" in state()
    mark_stage(served.hub, two["subs"]["511703"], "accepted", "乙")
    mark_stage(served.hub, two["subs"]["511703"], "completed", "乙", filing_no="B2")
    assert state().strip() == "办结"


def test_dead_message_alert_closes_itself_when_delivered(served, county_peer):  # noqa: F811
    root = _signed_in(served)
    case, mid = _dead(served, county_peer, "AUTO-1")
    with served.hub.transaction() as s:
        alert = s.scalars(select(Alert).where(Alert.ref == f"message:{mid}")).one()
        assert alert.acknowledged_at is None
        alert_id = alert.id
    dash = root.get("/admin/")
    doc = lxml.html.fromstring(dash.text)
    row = doc.get_element_by_id(f"alert-{alert_id}")
    # grouped under its Chinese type, linking to the case (the message's row)
    assert "消息发送失败（已停止重试）" in doc.get_element_by_id("alerts").text_content()
    link = row.xpath(".//a[@class='alert-link']")[0].get("href")
    assert link == f"/admin/cases/{case['subs']['511702']}#message-{mid}"
    assert "通川区智慧平台" in row.text_content() and "county_511702" not in row.text_content()
    assert raw_codes(visible_text(dash.text)) == []
    # the county is back; the operator resubmits, the message is delivered
    county_peer.state.mode = "ok"
    root.get(f"/admin/cases/{case['subs']['511702']}")
    done = root.post("/admin/messages/resubmit", {"id": mid, "status": "dead",
                                                  "division": "511702"})
    assert "已重新提交 1 条报文" in done.text

    def closed():
        with served.hub.transaction() as s:
            return s.get(Alert, alert_id).acknowledged_at is not None
    wait_until(closed, timeout=20, interval=0.3, what="the alert closing itself")
    with served.hub.transaction() as s:
        assert s.get(OutboxMessage, mid).status == "done"
        assert s.get(Alert, alert_id).acknowledged_by == "系统（报文已送达）"
    assert f'id="alert-{alert_id}"' not in root.get("/admin/").text


def test_alerts_bulk_acknowledged_by_type_within_scope(served):  # noqa: F811
    with served.hub.transaction() as s:
        mine = [Alert(kind="dead_message", title=f"t{i}", division="511702",
                      ref=f"message:{900 + i}") for i in range(3)]
        other = Alert(kind="dead_message", title="other", division="511703", ref="message:999")
        overdue = Alert(kind="case_overdue", title="逾期", division="511702",
                        ref="deadlines:511702:20261201")
        s.add_all([*mine, other, overdue])
        s.flush()
        ids = [a.id for a in mine]
        other_id, overdue_id = other.id, overdue.id
    op = _signed_in(served, "op702", COUNTY_FUNCTIONS, ("511702",))
    dash = op.get("/admin/")
    assert f'id="alert-{other_id}"' not in dash.text  # another county's alert
    assert "办件逾期" in dash.text and 'href="/admin/deadlines"' in dash.text
    # without the CSRF token nothing changes
    assert op.post("/admin/alerts/ack", {"kind": "dead_message"}, csrf=False).status_code == 400
    # ticked ones (and a foreign id, ignored); then the whole type
    resp = op.post("/admin/alerts/ack", {"id": [str(ids[0]), str(other_id), "x" * 20]})
    assert "已确认 1 条告警" in resp.text
    resp = op.post("/admin/alerts/ack", {"kind": "dead_message"})
    assert "已确认 2 条告警" in resp.text
    with served.hub.transaction() as s:
        assert all(s.get(Alert, i).acknowledged_by == "op702" for i in ids)
        assert s.get(Alert, other_id).acknowledged_at is None
        assert s.get(Alert, overdue_id).acknowledged_at is None
    assert "请先勾选" in op.post("/admin/alerts/ack", {}).text


def test_search_partial_numbers_and_bad_dates(served):  # noqa: F811
    root = _signed_in(served)
    first = new_case(served.hub, ["511702"], "PART-ABC-001")
    new_case(served.hub, ["511702"], "PART-XYZ-002")
    before = root.get("/admin/cases")
    assert "没有结果" not in before.text and 'id="case-results"' not in before.text
    found = root.get("/admin/cases", params={"apply_no": "ABC", "all": "1"})
    results = lxml.html.fromstring(found.text).get_element_by_id("case-results").text_content()
    assert "PART-ABC-001" in results and "PART-XYZ-002" not in results
    sub = first["subs"]["511702"]
    found = root.get("/admin/cases", params={"case_no": sub[-6:], "all": "1"})
    assert sub in found.text
    # LIKE wildcards are text, not patterns
    none = root.get("/admin/cases", params={"apply_no": "%", "all": "1"})
    assert "没有结果" in none.text
    for bad in ("2026-13-45", "yesterday"):
        resp = root.get("/admin/cases", params={"since": bad, "all": "1"})
        assert resp.status_code == 200
        err = lxml.html.fromstring(resp.text).get_element_by_id("search-error").text_content()
        assert "开始日期" in err and "不是有效日期" in err and 'id="case-results"' not in resp.text
    resp = root.get("/admin/cases", params={"since": "2026-12-02", "until": "2026-12-01"})
    assert "开始日期晚于结束日期" in resp.text
    assert "最多 64 个字符" in root.get("/admin/cases", params={"apply_no": "A" * 65}).text
    # the dashboard and the messages page say so too
    assert "不是有效日期" in root.get("/admin/", params={"until": "2026-02-30"}).text
    assert "不是有效日期" in root.get("/admin/messages", params={"since": "x"}).text


def test_error_pages_speak_chinese(served):  # noqa: F811
    """A clerk who follows an old bookmark to a form's address read 「Method Not Allowed」;
    an internal error read 「Internal Server Error」."""
    root = _signed_in(served)
    resp = root.get("/admin/alerts/ack")
    assert resp.status_code == 405 and "不支持这种访问方式" in resp.text
    assert "Method Not Allowed" not in resp.text


def test_dates_at_the_edges_of_the_calendar_and_long_ranges_are_refused(served):  # noqa: F811
    """``until=9999-12-31`` overflowed in the conversion to UTC: HTTP 500 on every page
    with a date filter. A dashboard from 1900 made one SQL piece per day not rolled up:
    500 on SQLite (its expression depth), minutes of one worker on either store."""
    root = _signed_in(served)
    for page in ("/admin/", "/admin/cases", "/admin/messages", "/admin/calls",
                 "/admin/audit", "/admin/stats.csv"):
        for params in ({"until": "9999-12-31"}, {"since": "0001-01-01"},
                       {"until": "9999-12-31T23:59:59-10:00"}):
            resp = root.get(page, params=params)
            assert resp.status_code in (200, 400), (page, params, resp.status_code)
            assert "超出可查询的年份（2000–2099 年）" in resp.text, (page, params)
    long = root.get("/admin/", params={"since": "2000-01-01"})
    assert "查询的时间范围最长 3660 天" in long.text
    new_case(served.hub, ["511702"], "EDGE-1")  # a call-log row to read around
    with served.hub.transaction() as s:
        s.add(CallLogEntry(ref_id="edge-1", interface="county.rental_filing", direction="out",
                           party="county_511702", division="511702", item="rental_filing",
                           started_at=datetime.now(UTC).replace(tzinfo=None), duration_ms=5.0,
                           outcome="ok"))
    resp = root.get("/admin/", params={"since": "2017-01-01"})  # 3,600 days, none rolled up
    assert resp.status_code == 200, resp.text[:300]
    row = resp.text.split('title="county.rental_filing"')[1].split("</tr>")[0]
    assert '<td class="num">1</td><td class="num">1</td>' in row  # the one call, counted


def test_beijing_day_boundaries_with_the_process_in_utc(served, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TZ", "UTC")
    root = _signed_in(served)
    today = datetime.now(BEIJING).date()
    one_am = datetime.combine(today, datetime.min.time(), BEIJING) + timedelta(hours=1)
    one_am_utc = one_am.astimezone(UTC).replace(tzinfo=None)  # 17:00 UTC the day before
    late_yesterday = one_am_utc - timedelta(hours=2)  # 23:00 Beijing the day before
    early = new_case(served.hub, ["511702"], "BJ-0100")
    late = new_case(served.hub, ["511702"], "BJ-2300")
    with served.hub.transaction() as s:
        for case, at in ((early, one_am_utc), (late, late_yesterday)):
            s.execute(update(Case).where(Case.case_no.in_([case["parent"], *case["subs"].values()]))
                      .values(created_at=at))
        s.add_all([CallLogEntry(ref_id=f"bj{i}", interface="county.rental_filing",
                                direction="out", party="county_511702", division="511702",
                                item="rental_filing", started_at=at, duration_ms=5.0,
                                outcome="ok") for i, at in enumerate((one_am_utc,
                                                                       late_yesterday))])
    assert one_am_utc.date() != today  # the UTC date is the day before
    dash = lxml.html.fromstring(root.get("/admin/").text)
    assert dash.get_element_by_id("today-applications").text_content() == "1"
    assert dash.get_element_by_id("today-sub-cases").text_content() == "1"
    day = today.isoformat()
    one = dash.xpath(f"//*[local-name()='title'][starts-with(text(), '{day} ')]")
    assert [t.text for t in one] == [f"{day} 成功 1 次，失败 0 次"]
    # the same with the rollup built for the past (Beijing) days
    with served.hub.transaction() as s:
        stats.refresh_pending(s, today=today, tz=BEIJING)
    week = lxml.html.fromstring(root.get("/admin/", params={
        "since": (today - timedelta(days=1)).isoformat(), "until": day}).text)
    titles = [t.text for t in week.xpath("//*[local-name()='title']") if "成功" in (t.text or "")]
    assert f"{day} 成功 1 次，失败 0 次" in titles
    assert f"{(today - timedelta(days=1)).isoformat()} 成功 1 次，失败 0 次" in titles
    # the case search's date range is Beijing days
    found = root.get("/admin/cases", params={"since": day, "until": day}).text
    assert "BJ-0100" in found and "BJ-2300" not in found
    shown = root.get(f"/admin/cases/{early['parent']}").text
    assert one_am.strftime("%Y-%m-%d 01:00:00") in shown


def test_timezone_setting_is_validated(make_config, sqlite_url):
    path = make_config(sqlite_url, timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match=r"timezone: not a known time zone"):
        load_config(path)
    assert load_config(make_config(sqlite_url)).timezone == "Asia/Shanghai"
    assert load_config(make_config(sqlite_url, timezone="UTC")).timezone == "UTC"


def test_beijing_day_in_a_served_hub_whose_clock_is_new_york(make_config, sqlite_url,
                                                             tmp_path):
    """``hub.py serve`` in TZ=America/New_York still counts 01:00 Beijing on that day."""
    config = make_config(sqlite_url, inbound=[])
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    hub = Hub(load_config(config))
    add_operator(hub, "root", ALL_FUNCTIONS)
    today = datetime.now(BEIJING).date()
    one_am_utc = (datetime.combine(today, datetime.min.time(), BEIJING)
                  + timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None)
    case = new_case(hub, ["511702"], "NY-0100")
    with hub.transaction() as s:
        s.execute(update(Case).where(Case.case_no.in_([case["parent"], *case["subs"].values()]))
                  .values(created_at=one_am_utc))
    proc = start_hub_process(config, "serve", "--no-workers", "--no-scheduler",
                             env={"TZ": "America/New_York"}, log=tmp_path / "serve.log")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(base + "/healthz"), timeout=30, what="the served hub")
        c = Client(base)
        assert c.login("root").status_code == 200
        dash = lxml.html.fromstring(c.get("/admin/").text)
        assert dash.get_element_by_id("today-applications").text_content() == "1"
        found = c.get("/admin/cases", params={"since": today.isoformat(),
                                              "until": today.isoformat()}).text
        assert "NY-0100" in found
        yesterday = (today - timedelta(days=1)).isoformat()
        assert "NY-0100" not in c.get("/admin/cases", params={
            "since": yesterday, "until": yesterday}).text
    finally:
        stop_process(proc)
        hub.close()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


def test_case_numbers_carry_the_beijing_day():
    from store.cases import case_no_for

    assert case_no_for("511702", 7, datetime(2026, 12, 1, 17, 0)) == "5117022026120200000007"
    assert case_no_for("511702", 7, datetime(2026, 12, 1, 15, 59)) == "5117022026120100000007"
