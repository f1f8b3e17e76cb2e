"""The one canonical message used inside the hub.

An application from the province becomes a ``CanonicalCase``; every party format is
mapped from and to it at the edges. ``to_dict`` is JSON-safe (datetimes as ISO 8601,
Decimals as strings) and ``from_dict`` restores the typed values from the item catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from mapping.items import ITEMS


@dataclass(frozen=True)
class FieldError:
    """One invalid field: ``field`` is a dotted path such as ``data.co_owners[1].share``."""

    field: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass
class Applicant:
    name: str
    id_type: str
    id_no: str
    uscc: str | None = None
    phone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # field by field: dataclasses.asdict deep-copies and costs ~10x (every request)
        return {"name": self.name, "id_type": self.id_type, "id_no": self.id_no,
                "uscc": self.uscc, "phone": self.phone}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Applicant:
        return cls(
            name=d["name"],
            id_type=str(d["id_type"]),
            id_no=d["id_no"],
            uscc=d.get("uscc"),
            phone=d.get("phone"),
        )


@dataclass
class Material:
    file_id: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"file_id": self.file_id, "name": self.name}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Material:
        return cls(file_id=d["file_id"], name=d["name"])


def json_safe(value: Any) -> Any:
    """Recursively turn Decimals into strings and datetimes into ISO 8601 strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _restore_data(item_code: str, data: dict[str, Any]) -> dict[str, Any]:
    """Turn the decimal fields of an item's ``data`` back into ``Decimal``."""
    item = ITEMS.get(item_code)
    if item is None:
        return dict(data)
    out = dict(data)
    for spec in item.fields:
        value = out.get(spec.name)
        if value is None:
            continue
        if spec.kind == "decimal":
            out[spec.name] = Decimal(str(value))
        elif spec.kind == "co_owners" and isinstance(value, list):
            out[spec.name] = [
                {**o, "share": Decimal(str(o["share"]))}
                if isinstance(o, dict) and o.get("share") is not None
                else o
                for o in value
            ]
    return out


@dataclass
class CanonicalCase:
    item: str
    apply_no: str
    city_code: str
    county_codes: list[str]
    applicant: Applicant
    submitted_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    materials: list[Material] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "apply_no": self.apply_no,
            "city_code": self.city_code,
            "county_codes": list(self.county_codes),
            "applicant": self.applicant.to_dict(),
            "submitted_at": self.submitted_at.isoformat(),
            "data": json_safe(self.data),
            "materials": [m.to_dict() for m in self.materials],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CanonicalCase:
        return cls(
            item=d["item"],
            apply_no=d["apply_no"],
            city_code=d["city_code"],
            county_codes=list(d["county_codes"]),
            applicant=Applicant.from_dict(d["applicant"]),
            submitted_at=datetime.fromisoformat(d["submitted_at"]),
            data=_restore_data(d["item"], d.get("data") or {}),
            materials=[Material.from_dict(m) for m in d.get("materials") or []],
        )

    def for_county(self, county_code: str, case_no: str) -> dict[str, Any]:
        """The body sent to a county smart platform (county.md), JSON-safe.

        The province's envelope with ``case_no`` (the hub's sub-case id) added and
        ``county_codes`` replaced by ``county_code``; the item is in the URL, not the body.
        """
        if county_code not in self.county_codes:
            raise ValueError(f"county {county_code!r} is not one of this case's counties")
        return {
            "apply_no": self.apply_no,
            "case_no": case_no,
            "city_code": self.city_code,
            "county_code": county_code,
            "applicant": self.applicant.to_dict(),
            "submitted_at": self.submitted_at.isoformat(),
            "data": json_safe(self.data),
            "materials": [m.to_dict() for m in self.materials],
        }
