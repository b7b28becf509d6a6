"""Bar-chart geometry for the dashboard's inline SVG (no charting library, no script).

``columns`` draws vertical bars (a distribution, a month series; several series side by
side), ``rows`` horizontal grouped bars (rates by organisation). A suppressed value
(None) is drawn as a hatched stub with a ``*`` so a reader sees it was hidden, not zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

PALETTE = ("#2166ac", "#d6604d", "#5aae61", "#9970ab")


def nice_top(value: float) -> tuple[float, float]:
    """An axis top at or above ``value`` and its tick step (1, 2 or 5 times 10^k)."""
    if value <= 0:
        return 1.0, 0.25
    raw = value / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(value / step), step


def _label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:g}"


@dataclass
class Bars:
    width: int
    height: int
    bars: list[dict[str, Any]] = field(default_factory=list)
    gridlines: list[dict[str, Any]] = field(default_factory=list)
    labels: list[dict[str, Any]] = field(default_factory=list)
    legend: list[dict[str, Any]] = field(default_factory=list)
    drawn: int = 0  # bars with a value (the browser test checks charts have data)


def columns(
    categories: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    width: int = 520,
    height: int = 240,
    unit: str = "",
    top: float | None = None,
) -> Bars:
    """Vertical bars: one slot per category, one bar per series within it."""
    left, right, above, below = 48, 8, 12, 42
    plot_w, plot_h = width - left - right, height - above - below
    values = [v for _, vs in series for v in vs if v is not None]
    axis_top, step = nice_top(top if top is not None else max(values, default=0))
    chart = Bars(width, height)
    for i in range(round(axis_top / step) + 1):
        tick = i * step
        y = above + plot_h - plot_h * tick / axis_top
        chart.gridlines.append(
            {
                "x1": left,
                "x2": width - right,
                "y": round(y, 1),
                "label": _label(tick) + unit,
                "lx": left - 4,
            }
        )
    slot = plot_w / max(len(categories), 1)
    bar_w = max(2.0, slot * 0.8 / max(len(series), 1))
    every = max(1, math.ceil(len(categories) * 38 / plot_w))
    for c, category in enumerate(categories):
        x_slot = left + c * slot + slot * 0.1
        if c % every == 0:
            chart.labels.append(
                {
                    "x": round(left + c * slot + slot / 2, 1),
                    "y": height - below + 16,
                    "text": category,
                }
            )
        for s, (name, vals) in enumerate(series):
            value = vals[c]
            x = round(x_slot + s * bar_w, 1)
            colour = PALETTE[s % len(PALETTE)]
            if value is None:
                chart.bars.append(
                    {
                        "x": x,
                        "y": above + plot_h - 10,
                        "w": round(bar_w, 1),
                        "h": 10,
                        "colour": colour,
                        "suppressed": True,
                        "title": f"{category} {name}: suppressed (small number)",
                    }
                )
                continue
            h = plot_h * value / axis_top
            chart.bars.append(
                {
                    "x": x,
                    "y": round(above + plot_h - h, 1),
                    "w": round(bar_w, 1),
                    "h": round(max(h, 0.5 if value else 0), 1),
                    "colour": colour,
                    "suppressed": False,
                    "title": f"{category} {name}: {_label(value)}{unit}",
                }
            )
            chart.drawn += 1
    chart.legend = (
        [{"name": name, "colour": PALETTE[s % len(PALETTE)]} for s, (name, _) in enumerate(series)]
        if len(series) > 1
        else []
    )
    return chart


def rows(
    categories: list[str],
    *,
    series: list[tuple[str, list[float | None]]],
    width: int = 520,
    top: float = 100.0,
    unit: str = "%",
) -> Bars:
    """Horizontal grouped bars: one block per category (e.g. a hospital), one bar per
    series (e.g. readmission %, follow-up %)."""
    left, right, above = 110, 40, 22
    bar_h, gap = 11, 10
    block = bar_h * len(series) + gap
    height = above + block * len(categories) + 30
    plot_w = width - left - right
    chart = Bars(width, height)
    axis_top, step = nice_top(top)
    for i in range(round(axis_top / step) + 1):
        tick = i * step
        x = round(left + plot_w * tick / axis_top, 1)
        chart.gridlines.append(
            {"x": x, "y1": above - 4, "y2": height - 24, "label": _label(tick) + unit}
        )
    for c, category in enumerate(categories):
        y0 = above + c * block
        chart.labels.append(
            {"x": left - 6, "y": round(y0 + bar_h * len(series) / 2 + 4, 1), "text": category}
        )
        for s, (name, vals) in enumerate(series):
            value = vals[c]
            y = y0 + s * bar_h
            colour = PALETTE[s % len(PALETTE)]
            if value is None:
                chart.bars.append(
                    {
                        "x": left,
                        "y": y,
                        "w": 10,
                        "h": bar_h - 2,
                        "colour": colour,
                        "suppressed": True,
                        "title": f"{category} {name}: suppressed or not computable",
                        "text": "*",
                        "tx": left + 14,
                    }
                )
                continue
            w = plot_w * min(value, axis_top) / axis_top
            chart.bars.append(
                {
                    "x": left,
                    "y": y,
                    "w": round(max(w, 0.5), 1),
                    "h": bar_h - 2,
                    "colour": colour,
                    "suppressed": False,
                    "title": f"{category} {name}: {_label(value)}{unit}",
                    "text": f"{_label(value)}{unit}",
                    "tx": round(left + w + 4, 1),
                }
            )
            chart.drawn += 1
    chart.legend = [
        {"name": name, "colour": PALETTE[s % len(PALETTE)]} for s, (name, _) in enumerate(series)
    ]
    return chart
