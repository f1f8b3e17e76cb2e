"""Administrative division codes (GB/T 2260) of the cities this hub can serve.

The table lives in ``mapping/data/divisions.yaml``; a city is one entry there, so a
second city is a matter of data, not code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_DIVISIONS_FILE = Path(__file__).parent / "data" / "divisions.yaml"


@dataclass(frozen=True)
class City:
    code: str
    name: str
    province: str
    counties: dict[str, str] = field(default_factory=dict)
    #: Whether an operator has retired (停用) a county: it stays a county (its cases,
    #: routes and pages remain) but takes no new applications. The hub answers it from
    #: the admin settings (``routes.overrides``); None: no county is retired.
    retired: Callable[[str], bool] | None = field(default=None, compare=False, repr=False)

    def is_county(self, code: str) -> bool:
        return code in self.counties

    def in_service(self, code: str) -> bool:
        """A county of this city that takes new applications."""
        return code in self.counties and not (self.retired is not None and self.retired(code))

    def county_name(self, code: str) -> str:
        return self.counties[code]


@dataclass(frozen=True)
class Divisions:
    provinces: dict[str, str]
    cities: dict[str, City]

    def city(self, code: str) -> City:
        try:
            return self.cities[code]
        except KeyError:
            raise KeyError(f"city {code!r} is not in the division table") from None

    def city_of_county(self, county_code: str) -> City | None:
        for city in self.cities.values():
            if county_code in city.counties:
                return city
        return None

    @classmethod
    def load(cls, path: str | Path = DEFAULT_DIVISIONS_FILE) -> Divisions:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        cities = {
            str(code): City(
                code=str(code),
                name=str(entry["name"]),
                province=str(entry["province"]),
                counties={str(k): str(v) for k, v in (entry.get("counties") or {}).items()},
            )
            for code, entry in (raw.get("cities") or {}).items()
        }
        provinces = {str(k): str(v) for k, v in (raw.get("provinces") or {}).items()}
        return cls(provinces=provinces, cities=cities)
