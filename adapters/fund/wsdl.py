"""The WSDL of ``/soap/fund``, built once per hub and served as fixed bytes.

spyne's own ``?wsdl`` takes its service address from the first request's Host and
names shared field types after whichever operation its (set-ordered) walk meets
first, so two processes serve different documents. Here the document is built from
the configured public URL, then made canonical so banks can diff it:

- each derived simple type is named after the first (type, field) that uses it,
  in sorted order, and the schema's children are sorted (simple types, complex
  types, elements; each by name);
- the ``AuthToken`` header (contract 3.1) is declared: an element, a message, and a
  ``soap:header`` on the input of every operation that takes a token.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from spyne.interface.wsdl import Wsdl11

from adapters.fund.service import NS

XSD = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_HTTP = "http://schemas.xmlsoap.org/soap/http"
HEADER = "AuthToken"
#: Operations that take a token (all but Authenticate, which hands one out).
NO_TOKEN = frozenset({"Authenticate"})
TOKEN_MAX = 256
_ORDER = {f"{{{XSD}}}import": 0, f"{{{XSD}}}simpleType": 1, f"{{{XSD}}}complexType": 2,
          f"{{{XSD}}}element": 3}


def build_wsdl(application: Any, address: str) -> bytes:
    """The canonical WSDL document of ``application`` served at ``address``."""
    wsdl = Wsdl11(application.interface)
    wsdl.build_interface_document(address)
    root = etree.fromstring(wsdl.get_interface_document())
    for schema in root.iter(f"{{{XSD}}}schema"):
        _rename_derived_types(schema)
        _sort_children(schema)
    _declare_auth_header(root)
    _results_required(root)
    for binding in root.iter(f"{{{WSDL_SOAP}}}binding"):
        binding.set("transport", SOAP_HTTP)
    for port_address in root.iter(f"{{{WSDL_SOAP}}}address"):
        port_address.set("location", address)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _tns(name: str) -> str:
    return f"tns:{name}"


def _rename_derived_types(schema: Any) -> None:
    uses: dict[str, list[str]] = {}
    for owner in schema.iterchildren(f"{{{XSD}}}complexType"):
        for el in owner.iter(f"{{{XSD}}}element"):
            ref = el.get("type") or ""
            if ref.startswith("tns:"):
                uses.setdefault(ref[4:], []).append(f"{owner.get('name')}_{el.get('name')}Type")
    renames = {}
    for simple in schema.iterchildren(f"{{{XSD}}}simpleType"):
        name = simple.get("name")
        if name in uses:
            renames[name] = min(uses[name])
            simple.set("name", renames[name])
    for el in schema.iter(f"{{{XSD}}}element", f"{{{XSD}}}restriction", f"{{{XSD}}}extension"):
        for attr in ("type", "base"):
            ref = el.get(attr) or ""
            if ref.startswith("tns:") and ref[4:] in renames:
                el.set(attr, _tns(renames[ref[4:]]))


def _sort_children(schema: Any) -> None:
    children = [c for c in schema if isinstance(c.tag, str)]
    for child in list(schema):
        schema.remove(child)
    children.sort(key=lambda c: (_ORDER.get(c.tag, 9), c.get("name") or ""))
    schema.extend(children)


def _results_required(root: Any) -> None:
    """Every operation answers its ``{op}Result``: required, never nil."""
    for op in root.iterfind(f"{{{WSDL}}}portType/{{{WSDL}}}operation"):
        name = op.get("name")
        for el in root.iterfind(f"{{{WSDL}}}types/{{{XSD}}}schema/{{{XSD}}}complexType"
                                f"[@name='{name}Response']//{{{XSD}}}element[@name='{name}Result']"):
            el.attrib.pop("minOccurs", None)
            el.attrib.pop("nillable", None)


def _declare_auth_header(root: Any) -> None:
    schema = root.find(f"{{{WSDL}}}types/{{{XSD}}}schema[@targetNamespace='{NS}']")
    element = etree.SubElement(schema, f"{{{XSD}}}element", name=HEADER)
    restriction = etree.SubElement(etree.SubElement(element, f"{{{XSD}}}simpleType"),
                                   f"{{{XSD}}}restriction", base="xs:string")
    etree.SubElement(restriction, f"{{{XSD}}}maxLength", value=str(TOKEN_MAX))
    _sort_children(schema)
    messages = root.findall(f"{{{WSDL}}}message")
    message = etree.Element(f"{{{WSDL}}}message", name=HEADER)
    etree.SubElement(message, f"{{{WSDL}}}part", name=HEADER, element=_tns(HEADER))
    messages[-1].addnext(message)
    for op in root.iterfind(f"{{{WSDL}}}binding/{{{WSDL}}}operation"):
        if op.get("name") in NO_TOKEN:
            continue
        body = op.find(f"{{{WSDL}}}input/{{{WSDL_SOAP}}}body")
        body.addnext(etree.Element(f"{{{WSDL_SOAP}}}header", message=_tns(HEADER),
                                   part=HEADER, use="literal"))
