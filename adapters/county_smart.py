"""County smart platform (智慧平台): sub-cases out as signed JSON, stage callbacks in."""

from __future__ import annotations

from adapters.http import HttpJsonAdapter


class CountySmartAdapter(HttpJsonAdapter):
    """Delivers each sub-case to ``POST {county_base}/{item}`` (contracts/county.md)."""

    alias = "county_smart"
