"""The 一网通办 entry over real HTTP (waitress on loopback): every refusal of the
province's handover token shows the Chinese error page and creates nothing; a good one
opens a session that reaches only its own handover; submission goes through the
province intake (idempotent on (item, apply_no))."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import func, select

from adapters.sim.portal import handover_token
from store.identity_models import EntryHandover
from store.models import Case, OutboxMessage, StoredFile
from tests.county_support import secret
from tests.hostile import pdf_pages
from tests.hubserver import HubServer

SECRET = secret("province")
COUNTY = "511702"
RENTAL = {"lessee_name": "李四", "lessee_id_no": "11010519491231002X", "lessor_name": "王五",
          "lessor_id_no": "110105198001011238", "house_id": "H-1", "address": "通川区某路1号"}


@pytest.fixture
def entry(make_hub, store_url, make_peer):
    county = make_peer()
    hub = make_hub(store_url, inbound=["province", "county_smart", "entry"], partners={
        f"county_{COUNTY}": {"base_url": county.url + f"/county/{COUNTY}", "division": COUNTY}})
    server = HubServer(hub).start()
    yield hub, server.url
    server.stop()


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**over) -> dict:
    now = int(time.time())
    base = {"iss": "province", "aud": "cityhub_511700", "iat": now, "exp": now + 300,
            "jti": f"jti-{time.time_ns()}", "item": "rental_filing",
            "apply_no": "510000-20261202-E0001", "county_code": COUNTY,
            "applicant": {"name": "张三", "id_type": "1", "id_no": "11010519491231002X",
                          "uscc": None, "phone": "13800138000"}}
    base.update(over)
    return base


def _counts(hub) -> tuple[int, int, int, int]:
    with hub.db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(t))  # type: ignore[return-value]
                     for t in (Case, EntryHandover, OutboxMessage, StoredFile))


def _post(url: str, item: str, token: str, http: requests.Session | None = None):
    return (http or requests).post(f"{url}/entry/{item}", data={"token": token},
                                   allow_redirects=False, timeout=10)


def _rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048)


def _hs256_with_public_key() -> str:
    """The RS/HS confusion: HMAC keyed with a public key's PEM (joserfc would not make it)."""
    import hashlib
    import hmac

    pem = _rsa_key().as_pem(private=False)
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(_claims())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _hs256(claims: dict) -> str:
    """Signed with the province's secret as any JWT library would, but with the claims'
    JSON escaped to ASCII (joserfc itself cannot encode a lone surrogate)."""
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _hs256_text(payload: str) -> str:
    """Signed with the province's secret over a claims text written by hand (a JSON no
    encoder would make: nested 2,000 deep, a repeated key)."""
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{body}"
    mac = hmac.new(SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _with_text(extra: str) -> str:
    """Good claims with ``extra`` (JSON members) written in after the first brace."""
    return "{" + extra + "," + json.dumps(_claims())[1:]


REFUSED = {
    "bad signature": lambda: ("rental_filing", handover_token(b"not-the-province-secret-1",
                                                              "rental_filing", "A-1", COUNTY)),
    "other audience": lambda: ("rental_filing", handover_token(
        SECRET, "rental_filing", "A-1", COUNTY, audience="cityhub_440700")),
    "expired": lambda: ("rental_filing", handover_token(
        SECRET, "rental_filing", "A-1", COUNTY, now=time.time() - 400)),
    "lifetime over 300 s": lambda: ("rental_filing", handover_token(
        SECRET, "rental_filing", "A-1", COUNTY, lifetime=3600)),
    "unknown item": lambda: ("no_such_item", handover_token(SECRET, "no_such_item", "A-1",
                                                            COUNTY)),
    "item not the path's": lambda: ("presale_contract_filing", handover_token(
        SECRET, "rental_filing", "A-1", COUNTY)),
    "county of another city": lambda: ("rental_filing", handover_token(
        SECRET, "rental_filing", "A-1", "440703")),
    "alg none": lambda: ("rental_filing",
                         f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."),
    "RS256 token": lambda: ("rental_filing", jwt.encode({"alg": "RS256"}, _claims(),
                                                        _rsa_key())),
    "HS256 keyed with an RSA public key": lambda: ("rental_filing", _hs256_with_public_key()),
    "not a JWT": lambda: ("rental_filing", "not-a-token"),
    "empty": lambda: ("rental_filing", ""),
    "huge": lambda: ("rental_filing", "a." + "b" * 20000 + ".c"),
    # signed by the province, but a name no UTF-8 or store column can hold (was a 500)
    "a lone surrogate in the applicant's name": lambda: ("rental_filing", _hs256(_claims(
        applicant={**_claims()["applicant"], "name": "张\ud800"}))),
    "a NUL in the applicant's name": lambda: ("rental_filing", handover_token(
        SECRET, "rental_filing", "A-1", COUNTY,
        applicant={**_claims()["applicant"], "name": "张\x00三"})),
    # signed by the province, yet JSON past the hub's limits (nesting was a 500 from a
    # RecursionError in joserfc; a repeated iss was read as its last)
    "claims nested 2,000 deep": lambda: ("rental_filing", _hs256_text(
        _with_text('"x":' + "[" * 2000 + "]" * 2000))),
    "a repeated iss": lambda: ("rental_filing", _hs256_text(_with_text('"iss":"evil"'))),
    "not valid before an hour from now": lambda: ("rental_filing", _hs256(_claims(
        nbf=int(time.time()) + 3600))),
    # an applicant no submission could take: refused at once, not a session that fails
    "an applicant's USCC that is none": lambda: ("rental_filing", _hs256(_claims(
        applicant={**_claims()["applicant"], "uscc": "<b>u</b>'\""}))),
    "an applicant's ID in full-width digits": lambda: ("rental_filing", _hs256(_claims(
        applicant={**_claims()["applicant"], "id_no": "１１０１０５１９４９１２３１００２Ｘ"}))),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_refused_handover_shows_the_error_page_and_creates_nothing(entry, case):
    hub, url = entry
    item, token = REFUSED[case]()
    before = _counts(hub)
    resp = _post(url, item, token)
    assert resp.status_code in (403, 404), resp.text
    assert resp.headers["Content-Type"].startswith("text/html")
    assert '<p class="error" id="entry-error">' in resp.text and "请返回省政务服务网" in resp.text
    assert "cityhub_entry" not in resp.headers.get("Set-Cookie", "")
    assert _counts(hub) == before == (0, 0, 0, 0)


def test_reused_jti_is_refused_and_creates_nothing(entry):
    hub, url = entry
    token = handover_token(SECRET, "rental_filing", "510000-20261202-R1", COUNTY, jti="once")
    first = _post(url, "rental_filing", token)
    assert first.status_code == 200 and 'id="confirm-form"' in first.text
    before = _counts(hub)
    again = _post(url, "rental_filing", token)
    assert again.status_code == 403 and "已使用过" in again.text
    # the same jti in a token signed anew is the same token as far as use goes
    other = handover_token(SECRET, "rental_filing", "510000-20261202-R2", COUNTY, jti="once")
    assert _post(url, "rental_filing", other).status_code == 403
    assert _counts(hub) == before


def test_housekeeping_forgets_ended_handovers_and_keeps_the_jti_while_it_could_replay(entry):
    from datetime import timedelta

    from scheduler import housekeeping
    from store.models import utcnow

    hub, url = entry
    tokens = {jti: handover_token(SECRET, "rental_filing", f"510000-20261202-H{i}", COUNTY,
                                  jti=jti)
              for i, jti in enumerate(("ended", "just-expired", "live"))}
    for token in tokens.values():
        assert _post(url, "rental_filing", token).status_code == 200
    now = utcnow()
    with hub.transaction() as s:
        rows = {r.jti: r for r in s.scalars(select(EntryHandover))}
        for jti, exp_ago in (("ended", timedelta(minutes=31)), ("just-expired",
                                                                timedelta(minutes=29))):
            rows[jti].token_exp = now - exp_ago  # the session lifetime is 30 minutes
            rows[jti].session_expires_at = now - timedelta(minutes=1)
    assert housekeeping(hub)["entry_handovers"] == 1
    with hub.db.session() as s:
        assert sorted(s.scalars(select(EntryHandover.jti))) == ["just-expired", "live"]
    replay = _post(url, "rental_filing", tokens["live"])  # still within its validity
    assert replay.status_code == 403 and "已使用过" in replay.text
    assert housekeeping(hub)["entry_handovers"] == 0


def _session(url: str, apply_no: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    token = handover_token(SECRET, "rental_filing", apply_no, COUNTY)
    resp = http.post(f"{url}/entry/rental_filing", data={"token": token}, timeout=10)
    assert resp.status_code == 200 and 'id="confirm-form"' in resp.text
    resp = confirm(url, http, resp.text)
    assert resp.status_code == 200 and apply_no in resp.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', resp.text).group(1)
    return http, csrf


def confirm(url: str, http: requests.Session, page: str, tail: str = "002X",
            **kw) -> requests.Response:
    """The applicant confirms the handover on its confirmation page (the ID's last 4)."""
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return http.post(f"{url}/entry/s/confirm", data={"csrf_token": csrf, "id_tail": tail},
                     timeout=10, **kw)


def test_submission_goes_through_the_intake_once(entry):
    hub, url = entry
    http, csrf = _session(url, "510000-20261202-S1")
    up = http.post(f"{url}/entry/s/material", data={"csrf_token": csrf},
                   files={"file": ("合同.pdf", pdf_pages(1), "application/pdf")}, timeout=10)
    assert up.status_code == 200 and "合同.pdf" in up.text
    bad = http.post(f"{url}/entry/s/material", data={"csrf_token": csrf},
                    files={"file": ("x.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")},
                    timeout=10)
    assert bad.status_code == 400 and "文件无法接收" in bad.text
    # a required field missing: the applicant is told, nothing is recorded
    missing = http.post(f"{url}/entry/s/submit",
                        data={**RENTAL, "house_id": "", "csrf_token": csrf}, timeout=10)
    assert missing.status_code == 400 and "房屋编号：必须填写" in missing.text
    assert "：required" not in missing.text
    # a party's ID number in full-width digits: said in Chinese, with what to do
    wide_id = "１１０１０５１９８００１０１１２３８"
    wide = http.post(f"{url}/entry/s/submit",
                     data={**RENTAL, "lessor_id_no": wide_id, "csrf_token": csrf}, timeout=10)
    assert wide.status_code == 400 and "请用半角（英文输入法）数字和字母填写" in wide.text
    assert "half-width" not in wide.text
    assert _counts(hub)[0] == 0
    done = http.post(f"{url}/entry/s/submit", data={**RENTAL, "csrf_token": csrf}, timeout=10)
    assert done.status_code == 200 and "申请已提交" in done.text
    case_no = re.search(r'id="case-no">([^<]+)<', done.text).group(1)
    with hub.db.session() as s:
        parent = s.scalars(select(Case).where(Case.parent_id.is_(None))).one()
        assert (parent.case_no, parent.apply_no, parent.item) == (
            case_no, "510000-20261202-S1", "rental_filing")
        assert s.scalar(select(func.count()).select_from(Case)) == 2  # parent + 511702
    # submitting again (a second tab) creates nothing new
    http.post(f"{url}/entry/s/submit", data={**RENTAL, "csrf_token": csrf}, timeout=10)
    assert _counts(hub)[0] == 2


def test_session_reaches_only_its_own_handover_and_needs_its_csrf(entry):
    hub, url = entry
    mine, csrf = _session(url, "510000-20261202-M1")
    theirs, _ = _session(url, "510000-20261202-T1")
    page = theirs.get(f"{url}/entry/s/form", timeout=10).text
    assert "510000-20261202-T1" in page and "510000-20261202-M1" not in page
    # another session's token does not pass, nor does none
    forged = theirs.post(f"{url}/entry/s/submit", data={**RENTAL, "csrf_token": csrf},
                         timeout=10)
    assert forged.status_code == 403
    assert requests.get(f"{url}/entry/s/form", timeout=10).status_code == 403
    assert _counts(hub)[0] == 0


def test_session_expires(entry):
    hub, url = entry
    http, _ = _session(url, "510000-20261202-X1")
    with hub.transaction() as s:
        row = s.scalars(select(EntryHandover)).one()
        row.session_expires_at = row.created_at
    resp = http.get(f"{url}/entry/s/form", timeout=10)
    assert resp.status_code == 403 and "会话已过期" in resp.text


def test_a_pending_handover_takes_five_wrong_confirmations_from_any_address(entry):
    """The last four characters are guessed at one pending handover: after 5 wrong ones
    (however many addresses they came from) the handover is spent — even the right
    answer is refused, in Chinese — and nothing is created; another handover confirms."""
    hub, url = entry
    http = requests.Session()
    token = handover_token(SECRET, "rental_filing", "510000-20261202-G1", COUNTY)
    page = http.post(f"{url}/entry/rental_filing", data={"token": token}, timeout=10).text
    for guess in ("0000", "1111", "2222", "3333", "4444"):
        wrong = confirm(url, http, page, tail=guess)
        assert wrong.status_code == 400 and "后四位不正确" in wrong.text
        page = wrong.text
    spent = confirm(url, http, page, tail="002X")
    assert spent.status_code == 403 and "已作废" in spent.text
    assert "cityhub_entry=" not in spent.headers.get("Set-Cookie", "")
    assert _counts(hub)[0] == 0
    _session(url, "510000-20261202-G2")  # a new handover from the portal goes through


def test_a_filing_refused_at_once_says_so_on_the_receipt(entry):
    """An applicant listed as 失信被执行人 submits a presale contract filing: the case is
    不予受理 at once (departments.md). The receipt said 「申请已提交 您的申请已收件」; now it
    says 不予受理 and why (the list and the court's case number)."""
    from datetime import datetime

    from store import share

    hub, url = entry
    listed = "11010519491231002X"  # the applicant of these handovers, buying
    with hub.transaction() as s:
        share.save_defaulters(s, "court", [{
            "id_no": listed, "name": "张三", "case_no": "(2026)川1702执8号",
            "court": "达州市通川区人民法院", "listed_at": datetime(2026, 11, 1),
            "removed_at": None}])
    http = requests.Session()
    token = handover_token(SECRET, "presale_contract_filing", "510000-20261202-D1", COUNTY)
    page = http.post(f"{url}/entry/presale_contract_filing", data={"token": token},
                     timeout=10).text
    form = confirm(url, http, page)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    data = {"buyer_name": "张三", "buyer_id_no": listed, "seller_name": "达州某某置业有限公司",
            "seller_id_no": "91511700MA62XXXX0X", "house_id": "H-D1",
            "address": "通川区朝阳路1号", "price": "880000.00", "contract_no": "HT-D1"}
    done = http.post(f"{url}/entry/s/submit", data={**data, "csrf_token": csrf}, timeout=10)
    assert done.status_code == 200, done.text[-1500:]
    assert "申请不予受理" in done.text and "已收件" not in done.text
    refused = re.search(r'id="refused">([^<]+)<', done.text).group(1)
    assert "失信被执行人" in refused and "(2026)川1702执8号" in refused
