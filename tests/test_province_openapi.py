"""The OpenAPI document matches the code: it is served, lists every item of the
catalogue, and schemathesis (with each request signed) finds no request that makes
the server answer 5xx or break the contract's envelope."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from adapters.signing import signed_headers
from mapping.items import province_items
from tests.hubserver import PROVINCE_SECRET, province_env


class SignAll(requests.auth.AuthBase):
    """Signs every prepared request as the province does (the body is final by now)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        path = unquote(urlsplit(r.url).path)
        r.headers.update(signed_headers("province", PROVINCE_SECRET, r.method, path, body))
        return r


@pytest.fixture
def env(make_hub, sqlite_url):
    e = province_env(make_hub, sqlite_url)
    yield e
    e.close()


def test_document_is_served_and_covers_every_item(env):
    doc = requests.get(env.server.url + "/api/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    for item in province_items():
        op = doc["paths"][f"/api/province/v1/{item.code}"]["post"]
        schema = op["requestBody"]["content"]["application/json"]["schema"]
        assert schema["properties"]["city_code"]["enum"] == ["511700"]
        required = [f.name for f in item.fields if f.required]
        assert schema["properties"]["data"].get("required", []) == required
    assert {"/api/province/v1/materials", "/api/province/v1/materials/{file_id}"} <= paths


@pytest.mark.parametrize("mode, examples", [(GenerationMode.POSITIVE, 25),
                                            (GenerationMode.NEGATIVE, 10)])
def test_schemathesis_finds_no_server_error(env, mode, examples):
    doc = requests.get(env.server.url + "/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(doc)
    session = requests.Session()
    session.auth = SignAll()
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]
    seen: dict[str, int] = {}

    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):  # type: ignore[no-untyped-def]
            response = case.call(base_url=env.server.url, session=session, timeout=30)
            seen[str(response.status_code)] = seen.get(str(response.status_code), 0) + 1
            case.validate_response(response, checks=checks)

        run()
    assert not any(code.startswith("5") for code in seen), seen
    if mode is GenerationMode.POSITIVE:
        assert seen.get("200"), seen  # the generator does reach accepted requests
