"""Charts drawn on the server as SVG: no script, readable without JavaScript, printable.

`line_chart` draws time series over shared labels (one line per series, a tooltip per point);
`bar_chart` draws labelled horizontal bars for comparisons. Both scale to their container
(viewBox) and carry an accessible name; values are escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ("#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04")
Number = int | float | Decimal


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[Number | None]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above `value` (a clean top for the axis)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return 10.0 * power  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    width: int = 720,
    height: int = 240,
) -> SafeString:
    left, right, top, bottom = 56, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(v) for s in series for v in s.values if v is not None]
    top_value = nice_ceiling(max(values, default=0.0))
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / top_value

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for k in range(5):
        tick = top_value * k / 4
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" '
            f'y2="{y(tick):.1f}"/><text class="tick" x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end">{escape(_fmt(tick))}</text>'
        )
    every = max(1, math.ceil(n / 8))
    shown = set(range(0, n, every))
    if (n - 1) - max(shown) >= every / 2:  # the last label, unless it would overlap the one before
        shown.add(n - 1)
    for i, label in enumerate(labels):
        if i in shown:
            parts.append(
                f'<text class="tick" x="{x(i):.1f}" y="{height - bottom + 18}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        points = [(x(i), y(float(v)), v, i) for i, v in enumerate(s.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py, _, _ in points)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>'
            )
        for px, py, v, i in points:
            tip = f"{s.name} · {labels[i] if i < len(labels) else ''}: {_fmt(float(v))}"
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    legend_x = left
    for index, s in enumerate(series):
        color = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text class="legend" x="{legend_x + 14}" y="{height - 5}">{escape(s.name)}</text>'
        )
        legend_x += 24 + 7 * len(s.name)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped


def bar_chart(
    items: Sequence[tuple[str, Number]],
    *,
    title: str,
    width: int = 720,
    unit: str = "",
) -> SafeString:
    row, left, right = 26, 180, 70
    height = max(row * len(items) + 8, 40)
    top_value = nice_ceiling(max((float(v) for _, v in items), default=0.0))
    plot_w = width - left - right
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = plot_w * float(value) / top_value
        shown = f"{_fmt(float(value))}{unit}"
        parts.append(
            f'<text class="tick" x="{left - 8}" y="{y + 16}" text-anchor="end">'
            f"{escape(label[:28])}</text>"
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[0]}"><title>{escape(label)}: {escape(shown)}</title></rect>'
            f'<text class="value" x="{left + w + 6:.1f}" y="{y + 16}">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped
