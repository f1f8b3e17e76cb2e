"""The 一网通办 handover is bound to the applicant's browser (contracts/identity.md: "The
applicant's session ... reaches only their own handover"), over real HTTP:

- login CSRF: an attacker's good token posted from another site to a victim's browser
  gives a confirmation page, never a session — the visitor's own session stays theirs;
  the session opens only on a confirmation posted by this site's page (its CSRF token,
  bound to the pending cookie) with the last 4 characters of the applicant's ID number;
- the cookies are HttpOnly and SameSite=Strict;
- refused handover posts are throttled per source address, as the operators' sign-in.
"""

from __future__ import annotations

import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from adapters.sim.portal import handover_token
from store.identity_models import EntryHandover, EntryRefusal
from tests.county_support import secret
from tests.hubserver import HubServer
from tests.test_entry import confirm

SECRET = secret("province")
COUNTY = "511702"
ATTACKER = {"name": "李四", "id_type": "1", "id_no": "110105198001011238", "uscc": None,
            "phone": "13900139000"}
EVIL = {"Origin": "https://evil.example", "Referer": "https://evil.example/x"}


@pytest.fixture
def entry(make_hub, store_url, make_peer):
    county = make_peer()
    hub = make_hub(store_url, inbound=["province", "county_smart", "entry"], partners={
        f"county_{COUNTY}": {"base_url": county.url + f"/county/{COUNTY}", "division": COUNTY}},
        admin={"address_failure_limit": 3, "trusted_proxies": ["127.0.0.1"]})
    server = HubServer(hub).start()
    yield hub, server.url
    server.stop()


def _open_session(url: str, http: requests.Session, apply_no: str) -> None:
    page = http.post(f"{url}/entry/rental_filing",
                     data={"token": handover_token(SECRET, "rental_filing", apply_no, COUNTY)},
                     timeout=10)
    assert confirm(url, http, page.text).status_code == 200


def _apply_no_shown(url: str, http: requests.Session) -> str | None:
    page = http.get(f"{url}/entry/s/form", allow_redirects=False, timeout=10)
    found = re.search(r'id="apply-no">([^<]+)<', page.text)
    return found.group(1) if page.status_code == 200 and found else None


def test_an_attackers_token_posted_from_another_site_opens_no_session(entry):
    hub, url = entry
    victim = requests.Session()
    _open_session(url, victim, "510000-20261202-V1")
    assert _apply_no_shown(url, victim) == "510000-20261202-V1"
    # the attacker's page auto-submits the attacker's own good token in the victim's browser
    token = handover_token(SECRET, "rental_filing", "510000-20261202-EVIL", COUNTY,
                           applicant=ATTACKER)
    landed = victim.post(f"{url}/entry/rental_filing", data={"token": token}, headers=EVIL,
                         allow_redirects=False, timeout=10)
    assert landed.status_code == 200 and 'id="confirm-form"' in landed.text
    assert "确认本人办理" in landed.text and "110105198001011238" not in landed.text
    set_cookie = landed.headers.get("Set-Cookie", "")
    assert "cityhub_entry=" not in set_cookie and "cityhub_entry_pending=" in set_cookie
    assert _apply_no_shown(url, victim) == "510000-20261202-V1"  # still the victim's own
    # the attacker's auto-submitted confirmation: no CSRF token of this browser's page
    forged = victim.post(f"{url}/entry/s/confirm", data={"id_tail": "1238"}, headers=EVIL,
                         allow_redirects=False, timeout=10)
    assert forged.status_code == 403
    # the victim does not know the attacker's ID number: a wrong tail opens nothing
    wrong = confirm(url, victim, landed.text, tail="002X", allow_redirects=False)
    assert wrong.status_code == 400 and "证件号码后四位不正确" in wrong.text
    assert "cityhub_entry=" not in wrong.headers.get("Set-Cookie", "")
    assert _apply_no_shown(url, victim) == "510000-20261202-V1"
    # a browser holding only the pending cookie has no session
    only_pending = requests.Session()
    only_pending.post(f"{url}/entry/rental_filing", timeout=10, data={
        "token": handover_token(SECRET, "rental_filing", "510000-20261202-P1", COUNTY)})
    assert only_pending.get(f"{url}/entry/s/form", allow_redirects=False,
                            timeout=10).status_code == 403
    with hub.db.session() as s:
        rows = {r.apply_no: r.confirmed_at for r in s.scalars(select(EntryHandover))}
    assert rows["510000-20261202-EVIL"] is None and rows["510000-20261202-P1"] is None
    assert rows["510000-20261202-V1"] is not None


def test_confirmation_opens_the_session_once_with_strict_cookies(entry):
    hub, url = entry
    http = requests.Session()
    page = http.post(f"{url}/entry/rental_filing", timeout=10, data={
        "token": handover_token(SECRET, "rental_filing", "510000-20261202-C1", COUNTY)})
    pending = page.headers["Set-Cookie"]
    assert "HttpOnly" in pending and "SameSite=Strict" in pending
    opened = confirm(url, http, page.text, tail="002x", allow_redirects=False)  # x or X
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/entry/s/form")
    cookie = opened.headers["Set-Cookie"]
    assert "cityhub_entry=" in cookie and "SameSite=Strict" in cookie and "HttpOnly" in cookie
    assert _apply_no_shown(url, http) == "510000-20261202-C1"
    # the same confirmation again (a second tab, or a replay): nothing more opens
    again = confirm(url, requests.Session(), page.text, allow_redirects=False)
    assert again.status_code == 403


def test_refused_handover_posts_are_throttled_per_address(entry):
    hub, url = entry
    here, there = {"X-Forwarded-For": "203.0.113.5"}, {"X-Forwarded-For": "203.0.113.6"}
    for _ in range(3):
        r = requests.post(f"{url}/entry/rental_filing", data={"token": "not-a-token"},
                          headers=here, timeout=10)
        assert r.status_code == 403
    good = handover_token(SECRET, "rental_filing", "510000-20261202-T1", COUNTY)
    throttled = requests.post(f"{url}/entry/rental_filing", data={"token": good},
                              headers=here, timeout=10)
    assert throttled.status_code == 429 and "无效办理请求过多" in throttled.text
    with hub.db.session() as s:
        assert s.scalar(select(func.count()).select_from(EntryHandover)) == 0
        assert s.scalar(select(func.count()).select_from(EntryRefusal).where(
            EntryRefusal.remote_addr == "203.0.113.5")) == 3
    # another address is not held back; its good token is still unused
    other = requests.post(f"{url}/entry/rental_filing", data={"token": good}, headers=there,
                          timeout=10)
    assert other.status_code == 200 and 'id="confirm-form"' in other.text


def test_a_burst_of_wrong_confirmations_gets_no_more_tries_than_the_limit(entry):
    """Twelve guesses of the ID number's last characters at the same moment, from one
    address: each is counted before it is checked, under a lock on the address, so only
    the limit's worth (3) are checked; the others are throttled (429), and the right
    answer from there afterwards too."""
    hub, url = entry
    here = {"X-Forwarded-For": "203.0.113.40"}
    http = requests.Session()
    page = http.post(f"{url}/entry/rental_filing", headers=here, timeout=10, data={
        "token": handover_token(SECRET, "rental_filing", "510000-20261202-G1", COUNTY)}).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    burst = 12
    barrier = threading.Barrier(burst)

    def guess(n: int) -> int:
        barrier.wait(timeout=30)
        return http.post(f"{url}/entry/s/confirm", headers=here, timeout=10,
                         data={"csrf_token": csrf, "id_tail": f"{n:04d}"}).status_code

    with ThreadPoolExecutor(burst) as pool:
        codes = list(pool.map(guess, range(burst)))
    assert sorted(codes) == [400] * 3 + [429] * 9, codes
    with hub.db.session() as s:
        assert s.scalar(select(func.count()).select_from(EntryRefusal).where(
            EntryRefusal.remote_addr == "203.0.113.40")) == 3
    assert confirm(url, http, page, headers=here).status_code == 429
