"""The web app: health, the JSON envelope of the contracts, and the inbound call-log hook.

Every inbound endpoint is wrapped by ``inbound(...)``: it times the call, turns
``ApiError`` into the contract's envelope, turns anything unexpected into ``5000`` with
a reference id (never a stack trace), and writes the call-log row — one place for all
adapters.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import (
    Flask,
    Request,
    Response,
    current_app,
    g,
    has_request_context,
    jsonify,
    redirect,
    request,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from sqlalchemy.orm import Session

from adapters.single_flight import MONITOR_WAIT, SingleFlight
from mapping.validators import first_not_text
from store.calllog import CallRecord, sealed_body, write_call
from store.models import utcnow
from store.reads import queue_counts
from store.resilience import retry_on_disconnect
from store.row_batch import RowBatch

if TYPE_CHECKING:
    from hub import Hub

log = logging.getLogger("cityhub.web")

#: HTTP status of each contract code (province.md "Responses").
HTTP_STATUS = {
    "0000": 200, "1001": 401, "1002": 401, "1003": 401, "1004": 403,
    "1005": 429, "2001": 400, "2002": 400, "2003": 400, "2004": 400, "3001": 503,
    "4001": 404, "5000": 500,
}


@dataclass
class ApiError(Exception):
    code: str
    message: str
    errors: list[dict[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


def envelope(code: str = "0000", message: str = "ok", data: Any = None,
             errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message, "data": data or {}}
    if errors:
        body["errors"] = errors
    return body


def json_response(body: dict[str, Any], status: int | None = None) -> Response:
    resp = jsonify(body)
    resp.status_code = status or HTTP_STATUS.get(body.get("code", "5000"), 500)
    return resp


def hub_of_app() -> Hub:
    return current_app.extensions["cityhub"]


def call_context() -> CallRecord:
    """The call-log record of the current inbound request (handlers fill item, case...)."""
    return g.call_record


def log_in_transaction(session: Session, answer: dict[str, Any]) -> None:
    """Write the current inbound call's log row inside the caller's own transaction, with
    the answer it is about to give: one commit for the business write and its log (the
    decorator then only stamps the ref id on the response). For the hot paths."""
    pending = PendingCallLog.of_request()
    pending.write(session, answer)
    pending.logged()


@dataclass
class PendingCallLog:
    """The current inbound call's log row, to be written inside a transaction that may run
    on another thread (``store.group_commit``): what needs the request is taken here, in
    the request's thread; ``write`` needs none of it; ``logged`` tells the decorator."""

    record: CallRecord
    cipher: Any
    started: float

    @classmethod
    def of_request(cls) -> PendingCallLog:
        """The request is sealed here, in its own thread, not in the group's transaction
        (on SQLite, every process's writes wait while one holds it)."""
        record = call_context()
        cipher = hub_of_app().cipher
        if record.request is None and record.request_sealed is None:
            record.request_sealed = sealed_body(cipher, _request_for_log())
        return cls(record, cipher, g.call_started)

    def write(self, conn: Any, answer: dict[str, Any], batch: RowBatch | None = None) -> None:
        """Fill the record with ``answer`` and insert its row on ``conn`` (a Session or a
        Connection in its transaction), or add it to ``batch``; may run again if that
        transaction is retried."""
        record = self.record
        record.duration_ms = (time.perf_counter() - self.started) * 1000
        record.response = answer
        record.code = str(answer.get("code"))
        record.outcome = "ok" if record.code == "0000" else "rejected"
        write_call(conn, self.cipher, record, batch)

    @staticmethod
    def logged() -> None:
        """The transaction that wrote the row committed (request thread)."""
        g.call_logged = True


def unlog_in_transaction() -> None:
    """The transaction ``log_in_transaction`` wrote in rolled back: the decorator logs."""
    if has_request_context() and "call_record" in g:
        g.call_logged = False


def inbound(interface: str | Callable[..., str], party: str = "unknown"):  # type: ignore[no-untyped-def]
    """Decorate a JSON view: log the call, map errors to the contract's envelope.

    ``interface`` may be a function of the view's keyword arguments (e.g. the item).
    The view returns ``(body_dict, status)`` or a body dict or a Response.
    """

    def decorate(view):  # type: ignore[no-untyped-def]
        @functools.wraps(view)
        def wrapper(**kwargs):  # type: ignore[no-untyped-def]
            hub = hub_of_app()
            name = interface(**kwargs) if callable(interface) else interface
            record = CallRecord(interface=name, direction="in", party=party, started_at=utcnow())
            g.call_record = record
            g.call_started = started = time.perf_counter()
            g.call_logged = False
            try:
                bad = first_not_text((request.view_args or {}).items(),
                                     request.args.items(multi=True))
                if bad is not None:
                    raise ApiError("2002", f"the parameter {bad[:32]!r} holds a control "
                                   "character", [{"field": bad[:32],
                                                  "reason": "no control characters"}])
                result = view(**kwargs)
                resp = result if isinstance(result, Response) else json_response(
                    *(result if isinstance(result, tuple) else (result,)))
            except ApiError as exc:
                resp = json_response(envelope(exc.code, exc.message, errors=exc.errors))
                record.outcome = "rejected"
                record.error = exc.message
            except Exception:
                log.exception("inbound %s failed, ref %s", name, record.ref_id)
                resp = json_response(envelope(
                    "5000", f"internal error, reference {record.ref_id}",
                    data={"ref_id": record.ref_id}))
                record.outcome = "error"
                record.error = traceback.format_exc(limit=20)
            resp.headers["X-Ref-Id"] = record.ref_id
            if g.call_logged:  # its row committed in the view's own transaction
                return resp
            record.duration_ms = (time.perf_counter() - started) * 1000
            if resp.is_json:
                answer = resp.get_json(silent=True) or {}
                record.code = str(answer.get("code")) if isinstance(answer, dict) else None
                record.response = answer
            else:
                record.response = {"status": resp.status_code, "mimetype": resp.mimetype}
            if record.code and record.code != "0000" and record.outcome == "ok":
                record.outcome = "rejected"
            if record.request is None and record.request_sealed is None:
                record.request = _request_for_log()
            try:
                retry_on_disconnect(lambda: _write_call(hub, record), "call log")
            except Exception:  # never fail the caller's answer because the log is down:
                log.warning("call log for ref %s kept to write later", record.ref_id,
                            exc_info=True)
                hub.call_log_buffer.add(record)  # written once the store is back
            return resp

        return wrapper

    return decorate


def _write_call(hub: Hub, record: CallRecord) -> None:
    with hub.db.session() as s:
        write_call(s, hub.cipher, record)


def _request_for_log() -> Any:
    if request.mimetype == "application/json":
        data = request.get_data(cache=True)
        return data[: 256 * 1024].decode("utf-8", "replace")
    return {"mimetype": request.mimetype, "length": request.content_length}


class AdminOnlySessions(SecureCookieSessionInterface):
    """Cookie sessions for the admin pages only. The JSON and SOAP APIs authenticate
    every request by its signature and keep no session, so they skip the cookie work
    (Flask builds a signing serializer per request: measurable on the province intake)."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if not request.path.startswith("/admin"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def make_app(hub: Hub) -> Flask:
    app = Flask("cityhub")
    app.session_interface = AdminOnlySessions()
    app.extensions["cityhub"] = hub
    from adapters.json_body import StrictJSONProvider  # imports this module

    app.json = StrictJSONProvider(app)  # never NaN or an infinity in an answer
    app.config["MAX_CONTENT_LENGTH"] = hub.config.limits.max_material_bytes + 65536
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def probe() -> dict[str, Any]:
        with hub.db.read_session() as s:  # bounded counts: store/reads.py
            return queue_counts(s)

    # one probe at a time, and no caller waits past MONITOR_WAIT (a store that stops
    # answering must not take every server thread with the monitoring's requests)
    health = SingleFlight(lambda: retry_on_disconnect(probe, "health check"), MONITOR_WAIT,
                          "healthz")

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        store: dict[str, Any] = {"dialect": hub.db.engine.dialect.name}
        try:
            store["outbox"] = health()
            store["ok"] = True
        except Exception as exc:
            store.update(ok=False, error=type(exc).__name__)
        sched = hub.scheduler.state() if hub.scheduler is not None else {"running": False}
        workers = hub.workers.alive if hub.workers is not None else 0
        ok = store["ok"] and not hub.draining
        status = "draining" if hub.draining else "ok" if store["ok"] else "degraded"
        # call_log: rows kept in memory while the store was unreachable (store.calllog_buffer)
        body = {"status": status, "city": hub.city.code, "store": store,
                "scheduler": sched, "delivery_threads": workers,
                "call_log": hub.call_log_buffer.stats()}
        return jsonify(body), 200 if ok else 503

    @app.errorhandler(413)
    def too_large(_exc):  # type: ignore[no-untyped-def]
        return json_response(envelope("2001", "request body too large"))

    @app.errorhandler(404)
    def not_found(_exc):  # type: ignore[no-untyped-def]
        return json_response(envelope("4001", "no such endpoint"))

    @app.errorhandler(405)
    def not_allowed(_exc):  # type: ignore[no-untyped-def]
        return json_response(envelope("4001", "method not allowed for this endpoint"), 405)

    @app.get("/")
    def root():  # type: ignore[no-untyped-def]
        """A browser opening the hub's address lands on the operators' page."""
        return redirect("/admin/", code=302)

    for name in hub.config.inbound:
        hub.adapter(name).register_inbound(app)

    from adapters import metrics  # GET /metrics (Prometheus); checks config ``metrics``

    metrics.register(app, hub)
    from admin.app import register as register_admin

    register_admin(app, hub)
    return app
