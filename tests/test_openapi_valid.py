"""``/api/openapi.json`` as `hub.py serve` answers it is valid OpenAPI for a real validator
(openapi-spec-validator, the one code generators' users run): nullable fields are
``nullable: true`` (3.0.3), never ``oneOf`` with ``{"type": "null"}``."""

from __future__ import annotations

import json

import pytest
import urllib3
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.support import start_hub_process, stop_process, wait_until

HTTP = urllib3.PoolManager(retries=False)


def _fetch(url: str) -> dict | None:
    try:
        resp = HTTP.request("GET", url, timeout=5)
    except urllib3.exceptions.HTTPError:
        return None
    return json.loads(resp.data) if resp.status == 200 else None


def test_served_openapi_document_is_valid(make_config, store_url, tmp_path):
    config = make_config(store_url, inbound=["province"])
    port = yaml.safe_load(config.read_text())["listen"]["port"]
    proc = start_hub_process(config, "serve", "--no-workers", "--no-scheduler",
                             log=tmp_path / "serve.log")
    try:
        doc = wait_until(lambda: _fetch(f"http://127.0.0.1:{port}/api/openapi.json"),
                         timeout=60, what="the hub to serve /api/openapi.json")
    finally:
        stop_process(proc)
    assert doc["openapi"] == "3.0.3"
    validate(doc)  # raises on any violation of the OpenAPI 3.0 schema
    text = json.dumps(doc)
    assert '"type": "null"' not in text
    applicant = doc["paths"]["/api/province/v1/rental_filing"]["post"]["requestBody"][
        "content"]["application/json"]["schema"]["properties"]["applicant"]["properties"]
    assert applicant["uscc"]["nullable"] is True and applicant["phone"]["nullable"] is True


def test_the_validator_refuses_what_the_hub_served_before():
    """The validator is no rubber stamp: the old ``oneOf`` null form is refused."""
    doc = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {"/x": {
        "post": {"requestBody": {"content": {"application/json": {"schema": {
            "type": "object", "properties": {"phone": {"oneOf": [
                {"type": "string"}, {"type": "null"}]}}}}}},
            "responses": {"200": {"description": "ok"}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(doc)
