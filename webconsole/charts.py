"""Charts drawn on the server as inline SVG (SVG 1.1 §9 basic shapes, §10 text): no
script, no library in the browser, readable without JavaScript and allowed by a
``default-src 'none'`` content security policy (an inline ``<svg>`` is markup, not a
resource). Every label is escaped; a bar's exact value is its ``<title>`` (shown on
hover and read by screen readers) and the chart as a whole is ``role="img"`` with an
``aria-label``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

from markupsafe import Markup, escape

__all__ = ["bar_chart", "nice_ceiling"]

_LEFT: Final = 56
_BOTTOM: Final = 28
_TOP: Final = 12
_RIGHT: Final = 8
_GRID_LINES: Final = 4


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``
    (a readable top for the axis; 1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop ends at 10


def _plain(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.2f}"


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    height: int = 220,
    label: Callable[[float], str] = _plain,
    max_labels: int = 12,
) -> Markup:
    """A bar chart of ``bars`` (label, value ≥ 0), in order: an ``<svg>`` element to
    put in a page as it is (module docstring). ``label`` formats a value (axis and
    titles); at most ``max_labels`` labels are written under the bars (every n-th)."""
    plot_w = width - _LEFT - _RIGHT
    plot_h = height - _TOP - _BOTTOM
    top = nice_ceiling(max((v for _, v in bars), default=0))
    suffix = f" {unit}" if unit else ""
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(_GRID_LINES + 1):
        y = _TOP + plot_h - plot_h * i / _GRID_LINES
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{width - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(label(top * i / _GRID_LINES))}</text>"
        )
    if bars:
        slot = plot_w / len(bars)
        every = max(1, math.ceil(len(bars) / max_labels))
        for n, (name, value) in enumerate(bars):
            h = plot_h * max(value, 0) / top
            x = _LEFT + n * slot + slot * 0.1
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{_TOP + plot_h - h:.1f}" '
                f'width="{slot * 0.8:.1f}" height="{h:.1f}">'
                f"<title>{escape(name)}: {escape(label(value))}{escape(suffix)}</title></rect>"
            )
            if n % every == 0:
                parts.append(
                    f'<text class="axis" x="{x + slot * 0.4:.1f}" y="{height - 8}" '
                    f'text-anchor="middle">{escape(name)}</text>'
                )
    else:
        parts.append(
            f'<text class="axis" x="{_LEFT + plot_w / 2:.1f}" y="{_TOP + plot_h / 2:.1f}" '
            'text-anchor="middle">no data</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it escaped)
