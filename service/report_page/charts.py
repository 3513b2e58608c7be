"""Bar charts as inline SVG, drawn on the server: no chart library, nothing fetched by the browser,
and WeasyPrint draws the same SVG into the PDF."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Bar:
    label: str
    parts: Sequence[tuple[float, str]]  # (value, colour) stacked left to right


def bar_chart(title: str, bars: Sequence[Bar], *, unit: str = "", width_px: int = 640) -> str:
    """Horizontal stacked bars, one row per bar, scaled to the largest total."""
    row_h, label_w, pad = 22, 150, 6
    plot_w = width_px - label_w - 80
    height = pad * 2 + 24 + row_h * max(1, len(bars))
    top = max((sum(v for v, _ in b.parts) for b in bars), default=0.0) or 1.0
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width_px}" height="{height}" '
        f'viewBox="0 0 {width_px} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{pad}" y="{pad + 14}" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, bar in enumerate(bars):
        y = pad + 24 + i * row_h
        out.append(f'<text x="{pad}" y="{y + 15}" font-size="12">{escape(bar.label)}</text>')
        x, total = float(label_w), 0.0
        for value, colour in bar.parts:
            w = plot_w * value / top
            if w > 0:
                out.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                    f'fill="{escape(colour)}"/>'
                )
            x, total = x + w, total + value
        out.append(f'<text x="{x + 4:.1f}" y="{y + 15}" font-size="12">{total:g}{escape(unit)}</text>')
    out.append("</svg>")
    return "".join(out)
