"""Provincial platform (省厅平台): applications in, stages and results pushed back."""

from __future__ import annotations

from adapters.http import HttpJsonAdapter


class ProvinceAdapter(HttpJsonAdapter):
    """Pushes ``/status``, ``/results`` and ``/review-link`` to the province (province.md)."""

    alias = "province"
