"""Tiny inline-SVG charts (no JavaScript, no network): horizontal bars and a day series."""

from __future__ import annotations

from datetime import date, timedelta

from markupsafe import Markup, escape


def bars(data: dict[str, int], labels: dict[str, str] | None = None, width: int = 380,
         row: int = 20, color: str = "#2f6db5",
         colors: dict[str, str] | None = None) -> Markup:
    """A horizontal bar chart of ``{key: count}`` labelled by ``labels`` (a long label is
    cut, whole in the tooltip); ``colors`` gives a key its own colour."""
    labels, colors = labels or {}, colors or {}
    if not data:
        return Markup('<p class="muted">无数据</p>')
    top = max(data.values()) or 1
    label_w, num_w = 150, 50
    bar_w = width - label_w - num_w
    parts = [f'<svg class="chart" width="{width}" height="{row * len(data) + 4}" '
             f'role="img" xmlns="http://www.w3.org/2000/svg">']
    for i, (key, n) in enumerate(data.items()):
        y = i * row + 2
        w = max(1, round(bar_w * n / top)) if n else 0
        full = labels.get(key, key)
        name = escape(full)
        short = escape(full if len(full) <= 12 else full[:11] + "…")
        fill = colors.get(key, color)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row - 6}" text-anchor="end">'
            f'<title>{name}</title>{short}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 6}" fill="{fill}">'
            f'<title>{name}: {n}</title></rect>'
            f'<text x="{label_w + w + 4}" y="{y + row - 6}">{n}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def fill_days(series: list[tuple[str, int, int]], first: date,
              last: date) -> list[tuple[str, int, int]]:
    """Every local day from ``first`` to ``last`` (inclusive), zero where no calls."""
    have = {day: (ok, bad) for day, ok, bad in series}
    out, day = [], first
    while day <= last and len(out) < 3700:  # ten years at most
        ok, bad = have.get(day.isoformat(), (0, 0))
        out.append((day.isoformat(), ok, bad))
        day += timedelta(days=1)
    return out


def day_series(series: list[tuple[str, int, int]], width: int = 860,
               height: int = 140) -> Markup:
    """Stacked columns per day: successful calls (blue) and failed ones (red).

    Readable from one day (one column of at most 40 px, its date under it) to a year
    (thin columns, a date under the first day of each month, the busiest day's count on
    the axis); every column has a tooltip with its day and counts."""
    if not series or not any(ok or bad for _, ok, bad in series):
        return Markup('<p class="muted">无数据</p>')
    top = max(ok + bad for _, ok, bad in series) or 1
    axis = 44
    step = min(40.0, (width - axis) / len(series))
    bw = max(1.0, step - (1 if step > 3 else 0))
    parts = [f'<svg class="chart" width="{width}" height="{height + 30}" role="img" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{axis - 4}" y="10" text-anchor="end">{top}</text>'
             f'<text x="{axis - 4}" y="{height}" text-anchor="end">0</text>'
             f'<line x1="{axis}" y1="{height}" x2="{width}" y2="{height}" stroke="#999"/>']
    labels_every = 1 if len(series) <= 14 else 7 if len(series) <= 62 else 0
    for i, (day, ok, bad) in enumerate(series):
        x = axis + i * step
        h_ok = height * ok / top
        h_bad = height * bad / top
        parts.append(
            f'<g><title>{escape(day)} 成功 {ok} 次，失败 {bad} 次</title>'
            f'<rect x="{x:.1f}" y="{height - h_ok - h_bad:.1f}" width="{bw:.1f}" '
            f'height="{h_bad:.1f}" fill="#c0392b"/>'
            f'<rect x="{x:.1f}" y="{height - h_ok:.1f}" width="{bw:.1f}" height="{h_ok:.1f}" '
            f'fill="#2f6db5"/></g>')
        tick = (labels_every and i % labels_every == 0) or (
            not labels_every and day.endswith("-01"))
        if tick:
            text = day[5:] if labels_every else day[:7]
            parts.append(f'<text x="{x:.1f}" y="{height + 14}">{escape(text)}</text>')
    parts.append(f'<text x="{axis}" y="{height + 28}">{escape(series[0][0])}</text>'
                 f'<text x="{width}" y="{height + 28}" text-anchor="end">'
                 f'{escape(series[-1][0])}</text></svg>')
    return Markup("".join(parts))
