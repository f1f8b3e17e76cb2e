"""The OpenAPI 3 document of the province's inbound API, generated from the catalogue.

Built from ``mapping.items`` and ``mapping.province_in`` constants, and from the hub's
own city and counties, so it cannot drift from what the intake accepts. Served at
``/api/openapi.json``. The schema states shape (types, lengths, patterns, code tables);
check digits and cross-field rules (shares summing to 100, unit code vs county) are
only in the validator and answered 2002 with the field's path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mapping.items import CO_OWNERSHIP, DEFAULT_STR_MAX, ID_NO_MAX, FieldSpec, Item, province_items
from mapping.province_in import ID_TYPES, MAX_CO_OWNERS, MAX_COUNTIES, MAX_LIST_ITEMS, MAX_MATERIALS

if TYPE_CHECKING:
    from hub import Hub

CODES = {
    "0000": "accepted / answered", "1001": "unknown app id or wrong signature",
    "1002": "timestamp outside the window", "1003": "nonce replayed",
    "1004": "this app may not call this item", "2001": "body not JSON / not an object / too large",
    "2002": "a field is missing or invalid (see errors)", "2003": "city_code is not this city",
    "2004": "a county code is not a county of this city", "3001": "interface disabled",
    "4001": "unknown item", "5000": "internal error (reference id, no stack trace)",
}
_STATUS_CODES: dict[str, tuple[str, ...]] = {
    "200": ("0000",), "400": ("2001", "2002", "2003", "2004"),
    "401": ("1001", "1002", "1003"), "403": ("1004",), "404": ("4001",),
    "500": ("5000",), "503": ("3001",),
}
_SIGNED = [{"appId": [], "timestamp": [], "nonce": [], "signature": []}]
_APPLY_NO = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "minLength": 1, "maxLength": 64}
_USCC = {"type": "string", "pattern": "^[0-9A-HJ-NPQRTUWXY]{18}$"}


def _text(max_len: int | None = None) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_len or DEFAULT_STR_MAX,
            "pattern": r"\S"}


def _co_owner() -> dict[str, Any]:
    return {"type": "object", "required": ["name", "id_type", "id_no"], "properties": {
        "name": _text(), "id_type": {"type": "string", "enum": list(ID_TYPES)},
        "id_no": _text(ID_NO_MAX),
        "share": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
                  "description": "percent; required and summing to 100 when co_ownership is 2"},
    }}


def field_schema(spec: FieldSpec) -> dict[str, Any]:
    kind = spec.kind
    if kind == "str":
        if spec.choices:
            return {"type": "string", "enum": list(spec.choices),
                    "description": ", ".join(f"{k} {v}" for k, v in CO_OWNERSHIP.items())
                    if spec.name == "co_ownership" else ""}
        return _text(spec.max_len)
    if kind == "id_no":
        return {**_text(spec.max_len or ID_NO_MAX),
                "description": "checked by the GB 11643 check digit when it is an 18-digit ID"}
    if kind == "uscc":
        return {**_USCC, "description": "checked by the GB 32100 check character"}
    if kind == "decimal":
        return {"type": "string", "pattern": r"^[0-9]{1,15}(\.[0-9]{1,2})?$",
                "description": "yuan, at most 2 decimals (a string; floats are refused)"}
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "list_str":
        return {"type": "array", "minItems": 1, "maxItems": MAX_LIST_ITEMS, "uniqueItems": True,
                "items": _text(spec.max_len)}
    if kind == "co_owners":
        return {"type": "array", "maxItems": MAX_CO_OWNERS, "items": _co_owner()}
    if kind == "unit_code":
        return {"type": "string", "pattern": "^[0-9A-Z]{28}$",
                "description": "不动产单元代码; its first six characters are the county's code"}
    raise ValueError(f"no schema for field kind {kind!r}")


def data_schema(item: Item) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: field_schema(f) for f in item.fields},
        "required": [f.name for f in item.fields if f.required],
    }
    if not schema["required"]:
        del schema["required"]
    if item.one_of:
        schema["anyOf"] = [{"required": [name]} for name in item.one_of]
    return schema


def request_schema(item: Item, city: str, counties: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apply_no", "city_code", "county_codes", "applicant", "submitted_at"],
        "properties": {
            "apply_no": _APPLY_NO,
            "city_code": {"type": "string", "enum": [city]},
            "county_codes": {"type": "array", "minItems": 1, "maxItems": MAX_COUNTIES,
                             "uniqueItems": True, "items": {"type": "string", "enum": counties}},
            "applicant": {
                "type": "object", "required": ["name", "id_type", "id_no"],
                "properties": {
                    "name": _text(), "id_type": {"type": "string", "enum": list(ID_TYPES)},
                    "id_no": {**_text(ID_NO_MAX), "description":
                              "type 1: GB 11643 check digit; type 7: GB 32100 check character"},
                    "uscc": {**_USCC, "nullable": True},
                    "phone": {"type": "string", "pattern": "^[0-9-]{7,20}$",
                              "nullable": True},
                },
            },
            "submitted_at": {"type": "string", "format": "date-time",
                             "description": "ISO 8601 with its UTC offset"},
            "data": data_schema(item),
            "materials": {"type": "array", "maxItems": MAX_MATERIALS, "items": {
                "type": "object", "required": ["file_id", "name"],
                "properties": {"file_id": _text(), "name": _text()}}},
        },
    }


def _responses(ok_description: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, codes in _STATUS_CODES.items():
        description = ok_description if status == "200" else "; ".join(
            f"{c} {CODES[c]}" for c in codes)
        out[status] = {"description": description, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Envelope"}}}}
    return out


def _material_rules(limits: Any) -> str:
    return (f"The file is decoded: at most {limits.max_material_bytes} bytes; an image of at "
            f"most {limits.max_image_pixels} pixels, whole, with nothing after its end; a PDF "
            f"of at most {limits.max_pdf_pages} pages, each at most "
            f"{limits.max_pdf_page_points} points a side; not also another kind of file; the "
            f"name's extension and the part's Content-Type, where given, agree with the "
            f"content. Otherwise 2002 with the reason.")


def document(hub: Hub) -> dict[str, Any]:
    """The whole OpenAPI 3.0 document for this hub (its city and counties)."""
    city = hub.city
    counties = sorted(city.counties)
    paths: dict[str, Any] = {}
    for item in province_items():
        paths[f"/api/province/v1/{item.code}"] = {"post": {
            "operationId": item.code, "summary": f"{item.name_zh} ({item.kind.value})",
            "security": _SIGNED,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": request_schema(item, city.code, counties)}}},
            "responses": _responses("accepted, or the query's answer, or status pending"),
        }}
    paths["/api/province/v1/materials"] = {"post": {
        "operationId": "upload_material", "summary": "申请材料上传 (PDF, JPEG, PNG by content)",
        "description": _material_rules(hub.config.limits),
        "security": _SIGNED,
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["apply_no", "county_code", "file"],
            "properties": {"apply_no": _APPLY_NO,
                           "county_code": {"type": "string", "enum": counties},
                           "file": {"type": "string", "format": "binary"}}}}}},
        "responses": _responses("stored: file_id and url"),
    }}
    material = _responses("the file")
    material["200"] = {"description": "the file", "content": {
        t: {"schema": {"type": "string", "format": "binary"}}
        for t in ("application/pdf", "image/jpeg", "image/png")}}
    paths["/api/province/v1/materials/{file_id}"] = {"get": {
        "operationId": "get_material", "summary": "an uploaded material (signed callers only)",
        "security": _SIGNED,
        "parameters": [{"name": "file_id", "in": "path", "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64}}],
        "responses": material,
    }}
    header = {"type": "apiKey", "in": "header"}
    return {
        "openapi": "3.0.3",
        "info": {"title": f"cityhub {city.name} — provincial platform API", "version": "1",
                 "description": "Signed as contracts/province.md says: HMAC-SHA256 over "
                                "METHOD, PATH, TIMESTAMP, NONCE and SHA256(BODY)."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "appId": {**header, "name": "X-App-Id"},
                "timestamp": {**header, "name": "X-Timestamp"},
                "nonce": {**header, "name": "X-Nonce"},
                "signature": {**header, "name": "X-Signature"},
            },
            "schemas": {"Envelope": {
                "type": "object", "required": ["code", "message", "data"],
                "properties": {
                    "code": {"type": "string", "enum": list(CODES)},
                    "message": {"type": "string"},
                    "data": {"type": "object"},
                    "errors": {"type": "array", "items": {
                        "type": "object", "required": ["field", "reason"],
                        "properties": {"field": {"type": "string"},
                                       "reason": {"type": "string"}}}},
                },
            }},
        },
    }
