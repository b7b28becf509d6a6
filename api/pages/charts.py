"""Bar-chart geometry for the dashboard's inline SVG (no charting library, no script).

``columns`` draws vertical bars (a distribution, a month series; several series side by
side), ``rows`` horizontal grouped bars (rates by organisation). A suppressed value
(None) is drawn as a hatched stub with a ``*`` so a reader sees it was hidden, not zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


WIDTH = 520  # the dashboard's chart cards, both kinds

Series = list[tuple[str, list[float | None]]]
"""A chart's data: each series' name and its value per category (None where suppressed)."""


def _axis(top: float) -> tuple[float, list[float]]:
    """The value axis's end (at or above ``top``) and the values of its gridlines."""
    axis_top, step = nice_top(top)
    return axis_top, [i * step for i in range(round(axis_top / step) + 1)]


def _legend(series: Series) -> list[dict[str, Any]]:
    return [
        {"name": name, "colour": PALETTE[s % len(PALETTE)]} for s, (name, _) in enumerate(series)
    ]


@dataclass
class Bars:
    """One chart, built whole: the size and each layer of marks ``_bars.html`` draws."""

    width: int
    height: int
    bars: list[dict[str, Any]]
    gridlines: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    legend: list[dict[str, Any]]

    @property
    def drawn(self) -> int:
        """Bars with a value (the browser test checks charts have data)."""
        return sum(not bar["suppressed"] for bar in self.bars)


def columns(
    categories: list[str], series: Series, *, unit: str = "", top: float | None = None
) -> Bars:
    """Vertical bars: one slot per category, one bar per series within it."""
    height = 240
    left, right, above, below = 48, 8, 12, 42
    plot_w, plot_h = WIDTH - left - right, height - above - below
    values = [v for _, vs in series for v in vs if v is not None]
    axis_top, ticks = _axis(top if top is not None else max(values, default=0))
    gridlines = [
        {
            "x1": left,
            "x2": WIDTH - right,
            "y": round(above + plot_h - plot_h * tick / axis_top, 1),
            "label": _label(tick) + unit,
            "lx": left - 4,
        }
        for tick in ticks
    ]
    slot = plot_w / max(len(categories), 1)
    bar_w = max(2.0, slot * 0.8 / max(len(series), 1))
    every = max(1, math.ceil(len(categories) * 38 / plot_w))
    labels = [
        {"x": round(left + c * slot + slot / 2, 1), "y": height - below + 16, "text": category}
        for c, category in enumerate(categories)
        if c % every == 0
    ]
    bars = []
    for c, category in enumerate(categories):
        x_slot = left + c * slot + slot * 0.1
        for s, (name, vals) in enumerate(series):
            value = vals[c]
            x = round(x_slot + s * bar_w, 1)
            colour = PALETTE[s % len(PALETTE)]
            if value is None:
                bars.append(
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
            bars.append(
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
    legend = _legend(series) if len(series) > 1 else []
    return Bars(WIDTH, height, bars=bars, gridlines=gridlines, labels=labels, legend=legend)


def rows(categories: list[str], series: Series, *, top: float = 100.0, unit: str = "%") -> Bars:
    """Horizontal grouped bars: one block per category (e.g. a hospital), one bar per
    series (e.g. readmission %, follow-up %)."""
    left, right, above = 110, 40, 22
    bar_h, gap = 11, 10
    block = bar_h * len(series) + gap
    height = above + block * len(categories) + 30
    plot_w = WIDTH - left - right
    axis_top, ticks = _axis(top)
    gridlines = [
        {
            "x": round(left + plot_w * tick / axis_top, 1),
            "y1": above - 4,
            "y2": height - 24,
            "label": _label(tick) + unit,
        }
        for tick in ticks
    ]
    labels = [
        {
            "x": left - 6,
            "y": round(above + c * block + bar_h * len(series) / 2 + 4, 1),
            "text": category,
        }
        for c, category in enumerate(categories)
    ]
    bars = []
    for c, category in enumerate(categories):
        for s, (name, vals) in enumerate(series):
            value = vals[c]
            y = above + c * block + s * bar_h
            colour = PALETTE[s % len(PALETTE)]
            if value is None:
                bars.append(
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
            bars.append(
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
    return Bars(
        WIDTH, height, bars=bars, gridlines=gridlines, labels=labels, legend=_legend(series)
    )
