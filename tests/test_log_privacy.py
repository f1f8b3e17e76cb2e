"""Logs carry no personal data: SQL errors never hold the row's values (engines and the
driver path hide parameters), and the hub's log formatter writes an exception's type and
frames, not its text (the text stays in the sealed call log)."""

from __future__ import annotations

import io
import logging

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from logsafe import SafeFormatter
from store.admin_models import AdminRole
from store.driver import DriverStatement
from store.models import Nonce, utcnow

MARKER = "日志隐私标记-51170219770707313"


def test_an_integrity_error_holds_no_row_values(make_hub, store_url):
    hub = make_hub(store_url, inbound=[])
    with hub.transaction() as s:
        s.add(AdminRole(name=MARKER))
    with pytest.raises(IntegrityError) as orm_err, hub.transaction() as s:
        s.add(AdminRole(name=MARKER))  # the ORM path: unique name
    stmt = DriverStatement(insert(Nonce.__table__), ("app_id", "nonce", "seen_at"))
    row = {"app_id": "county_511702", "nonce": MARKER[:60], "seen_at": utcnow()}
    with hub.transaction() as s:
        stmt.executemany(s, [row])
    with pytest.raises(IntegrityError) as driver_err, hub.transaction() as s:
        stmt.executemany(s, [row])  # the driver path (store/driver.py)
    for err in (orm_err.value, driver_err.value):
        assert "[SQL parameters hidden" in str(err) and "[parameters:" not in str(err)
        if not hub.db.postgres:  # PostgreSQL's own DETAIL names the key: see the log below
            assert MARKER not in str(err) and MARKER[:20] not in str(err)
        logged = safely_logged(err)
        assert "IntegrityError" in logged and MARKER[:6] not in logged


def safely_logged(err: BaseException) -> str:
    """What the hub's log handler (hub.py: logsafe) writes for ``log.exception``."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("cityhub.test-log-privacy")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise err
        except type(err):
            log.exception("inbound %s failed, ref %s", "province.rental_filing", "abc123")
    finally:
        log.removeHandler(handler)
    return out.getvalue()


def test_the_log_formatter_writes_no_exception_text():
    try:
        try:
            raise KeyError(MARKER)
        except KeyError as exc:
            raise ValueError(f"bad applicant {MARKER}") from exc
    except ValueError as exc:
        text = safely_logged(exc)
    assert MARKER not in text and MARKER[:6] not in text
    assert "inbound province.rental_filing failed, ref abc123" in text
    assert "builtins.KeyError" in text and "builtins.ValueError" in text
    assert "test_the_log_formatter_writes_no_exception_text" in text  # frames are kept
