"""Manual fallback for counties without an API: cases wait for operators (Excel)."""

from __future__ import annotations

from adapters.base import Adapter


class ManualExcelAdapter(Adapter):
    """A manual route makes no call: its sub-cases wait in the operators' work queue."""

    alias = "manual_excel"
    delivers = False
