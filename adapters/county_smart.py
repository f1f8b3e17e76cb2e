"""County smart platform (智慧平台): sub-cases out as signed JSON, stage callbacks in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.http import HttpJsonAdapter

if TYPE_CHECKING:
    from flask import Flask


class CountySmartAdapter(HttpJsonAdapter):
    """Delivers each sub-case to ``POST {county_base}/{item}`` (contracts/county.md)."""

    alias = "county_smart"

    def register_inbound(self, app: Flask) -> None:
        from adapters.county_callbacks import register

        register(app, self.hub)
