"""Why the routing table has no route for a county and item, in words an operator reads
(``hub.py route`` and the interfaces page's "where would this go" form)."""

from __future__ import annotations

from mapping.divisions import Divisions
from mapping.names import name
from routes.table import RoutingTable


def why_unrouted(table: RoutingTable, county: str, item: str) -> str:
    """One Chinese line naming the code at fault (``table.resolve`` found no route)."""
    city = table.city
    county, item = county[:32], item[:64]  # the codes are echoed: keep the line short
    if county not in table.counties():
        other = Divisions.load().city_of_county(county) if county.isdigit() else None
        if other is not None and other.code != city.code:
            return (f"区县 {other.county_name(county)} {county} 属于{other.name}，"
                    f"不是本市（{city.name}）的区县")
        return f"未知区县 {county or '（未填写）'}（不在{city.name}区划表中）"
    label = name("items", item)
    if label == item:
        return f"未知事项 {item or '（未填写）'}（不在事项目录中）"
    return f"{city.county_name(county)} {county} 的事项“{label}” {item} 未配置路由"
