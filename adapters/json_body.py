"""JSON bodies of the signed endpoints (province intake, county callbacks) and the
JSON the web app answers with: ``mapping.json_limits`` on both sides."""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

from adapters.web import ApiError
from mapping.json_limits import JsonRejected, loads

BAD_BODY = "2001"


def parse_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object within the limits, else 2001 (nothing is stored)."""
    try:
        doc = loads(body)
    except JsonRejected as exc:
        raise ApiError(BAD_BODY, f"the body is not accepted as JSON: {exc.reason}") from None
    if not isinstance(doc, dict):
        raise ApiError(BAD_BODY, "the body must be a JSON object")
    return doc


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, without NaN or an infinity in any answer (``allow_nan=False``)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        kwargs["allow_nan"] = False
        return super().dumps(obj, **kwargs)
