"""The simulated province's 一网通办 portal page: a button per item that hands a demo
applicant over to the city's sub-site (``POST {hub}/entry/{item}``, field ``token``: a
JWT signed HS256 with the province's shared secret, contracts/identity.md)."""

from __future__ import annotations

import html
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey

CST = timezone(timedelta(hours=8))
DEMO_APPLICANT = {"name": "张三", "id_type": "1", "id_no": "11010519491231002X",
                  "uscc": None, "phone": "13800138000"}
PORTAL_ITEMS = {"rental_filing": "房屋租赁备案",
                "presale_contract_filing": "商品房预售合同备案",
                "resale_contract_filing": "存量房网签备案",
                "survey_review": "房屋产权面积测绘成果审核",
                "presale_contract_cancel": "注销商品房预售合同备案",
                "presale_permit_application": "商品房预售许可申请"}


def handover_token(secret: bytes, item: str, apply_no: str, county_code: str, *,
                   audience: str = "cityhub_511700", issuer: str = "province",
                   applicant: dict[str, Any] | None = None, lifetime: int = 300,
                   now: float | None = None, jti: str | None = None,
                   header: dict[str, Any] | None = None) -> str:
    """A handover token as the province signs it."""
    at = int(time.time() if now is None else now)
    claims = {"iss": issuer, "aud": audience, "iat": at, "exp": at + lifetime,
              "jti": jti or secrets.token_hex(16), "item": item, "apply_no": apply_no,
              "county_code": county_code, "applicant": applicant or DEMO_APPLICANT}
    return jwt.encode(header or {"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(secret))


def new_apply_no() -> str:
    return f"510000-{datetime.now(CST):%Y%m%d}-W{secrets.token_hex(4).upper()}"


def portal_page(secret: bytes, hub_url: str, audience: str, county_code: str) -> str:
    """The portal's page: one form per item, each with a fresh token."""
    rows = []
    for code, label in PORTAL_ITEMS.items():
        token = handover_token(secret, code, new_apply_no(), county_code, audience=audience)
        rows.append(
            f'<form method="post" action="{html.escape(hub_url.rstrip("/"))}/entry/{code}">'
            f'<input type="hidden" name="token" value="{html.escape(token)}">'
            f'<button type="submit" id="go-{code}">{html.escape(label)} · 在线办理</button>'
            "</form>")
    return ("<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>四川政务服务网（模拟）</title><style>body{font-family:sans-serif;"
            "margin:1rem}button{margin:.3rem 0;padding:.6rem;font-size:16px;width:100%}"
            "</style></head><body><h1>四川政务服务网 · 住房交易（模拟）</h1>"
            f"<p>申请人：{html.escape(DEMO_APPLICANT['name'])}</p>{''.join(rows)}</body></html>")
