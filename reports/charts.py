"""Charts as inline SVG, made in Python: the report must print and open without JavaScript or a network.

Non-goal: a chart library. One bar chart (a value per day of the month) is what a person wants to glance
at here; everything else in the report is a table.
"""

from __future__ import annotations

from html import escape


def bar_chart(values: list[int], labels: list[str], title: str, unit: str = "件", width: int = 680,
              height: int = 170) -> str:  # fmt: skip
    """An SVG bar chart; every 5th label is printed. Values must be >= 0."""
    if len(values) != len(labels):
        raise ValueError("values and labels differ in length")
    left, bottom, top = 34, 22, 24
    plot_w, plot_h = width - left - 8, height - bottom - top
    peak = max(values, default=0)
    scale = max(peak, 1)
    step = plot_w / max(len(values), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="14" font-size="11">{escape(title)}（最大 {peak}{escape(unit)}/日）</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="#333" stroke-width="1"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="9" text-anchor="end">{peak}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="9" text-anchor="end">0</text>',
    ]
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = plot_h * value / scale
        x = left + i * step + step * 0.15
        if value:
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}"'
                         f' fill="#c0392b"><title>{escape(label)}: {value}{escape(unit)}</title></rect>')  # fmt: skip
        if i % 5 == 0 or i == len(values) - 1:
            parts.append(f'<text x="{x + step * 0.35:.1f}" y="{height - 6}" font-size="9" text-anchor="middle">'
                         f"{escape(label)}</text>")  # fmt: skip
    parts.append("</svg>")
    return "".join(parts)
