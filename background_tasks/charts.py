"""A tiny bar chart as inline SVG, for the daily report email.

Why inline SVG and not matplotlib: no new heavy dependency, the chart travels inside the HTML
part (no attachment, no remote image for the client to block), and it is crisp at any size. Some
clients (Gmail) strip inline SVG, so the report also carries the numbers as a table. Pure: no
Django; every label is escaped here.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

BAR_COLOUR = "#3b6fd8"
TEXT_COLOUR = "#444444"


def bar_chart_svg(
    points: Sequence[tuple[str, int]],
    *,
    title: str,
    width: int = 560,
    height: int = 160,
) -> str:
    """An SVG document of one bar per ``(label, value)``, labelled below, values on top."""
    top, bottom, side = 18, 22, 6
    plot_height = height - top - bottom
    peak = max((value for _, value in points), default=0) or 1
    slot = (width - 2 * side) / max(len(points), 1)
    bar_width = max(slot * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="10">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{side}" y1="{top + plot_height}" x2="{width - side}" y2="{top + plot_height}" '
        'stroke="#cccccc" stroke-width="1"/>',
    ]
    for index, (label, value) in enumerate(points):
        bar_height = round(plot_height * max(value, 0) / peak, 1)
        x = round(side + index * slot + (slot - bar_width) / 2, 1)
        y = round(top + plot_height - bar_height, 1)
        centre = round(x + bar_width / 2, 1)
        parts.append(
            f'<rect x="{x}" y="{y}" width="{round(bar_width, 1)}" height="{bar_height}" fill="{BAR_COLOUR}">'
            f"<title>{escape(label)}: {value}</title></rect>"
        )
        parts.append(f'<text x="{centre}" y="{y - 4}" text-anchor="middle" fill="{TEXT_COLOUR}">{value}</text>')
        parts.append(
            f'<text x="{centre}" y="{height - 6}" text-anchor="middle" fill="{TEXT_COLOUR}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
