"""Tiny inline-SVG charts (no JavaScript, no network): horizontal bars and a day series."""

from __future__ import annotations

from markupsafe import Markup, escape


def bars(data: dict[str, int], labels: dict[str, str] | None = None, width: int = 420,
         row: int = 20, color: str = "#2f6db5") -> Markup:
    """A horizontal bar chart of ``{key: count}``."""
    labels = labels or {}
    if not data:
        return Markup('<p class="muted">无数据</p>')
    top = max(data.values()) or 1
    label_w, num_w = 130, 60
    bar_w = width - label_w - num_w
    parts = [f'<svg class="chart" width="{width}" height="{row * len(data) + 4}" '
             f'role="img" xmlns="http://www.w3.org/2000/svg">']
    for i, (key, n) in enumerate(data.items()):
        y = i * row + 2
        w = max(1, round(bar_w * n / top)) if n else 0
        name = escape(labels.get(key, key))
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row - 6}" text-anchor="end">{name}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 6}" fill="{color}">'
            f'<title>{name}: {n}</title></rect>'
            f'<text x="{label_w + w + 4}" y="{y + row - 6}">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def day_series(series: list[tuple[str, int, int]], width: int = 860,
               height: int = 140) -> Markup:
    """Stacked columns per day: successful calls (blue) and failed ones (red)."""
    if not series:
        return Markup('<p class="muted">无数据</p>')
    top = max(ok + bad for _, ok, bad in series) or 1
    step = width / len(series)
    bw = max(1.0, step - 1)
    parts = [f'<svg class="chart" width="{width}" height="{height + 16}" role="img" '
             'xmlns="http://www.w3.org/2000/svg">']
    for i, (day, ok, bad) in enumerate(series):
        x = i * step
        h_ok = height * ok / top
        h_bad = height * bad / top
        parts.append(
            f'<g><title>{escape(day)} 成功 {ok} 失败 {bad}</title>'
            f'<rect x="{x:.1f}" y="{height - h_ok - h_bad:.1f}" width="{bw:.1f}" '
            f'height="{h_bad:.1f}" fill="#c0392b"/>'
            f'<rect x="{x:.1f}" y="{height - h_ok:.1f}" width="{bw:.1f}" height="{h_ok:.1f}" '
            f'fill="#2f6db5"/></g>')
    parts.append(f'<text x="0" y="{height + 13}">{escape(series[0][0])}</text>'
                 f'<text x="{width}" y="{height + 13}" text-anchor="end">'
                 f'{escape(series[-1][0])}</text></svg>')
    return Markup("".join(parts))
