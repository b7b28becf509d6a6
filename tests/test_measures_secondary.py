"""Secondary (complementary) suppression: an attacker holding every published report of a
period (unsplit and split every way) cannot recompute any suppressed count by
subtraction from a total and its other cells (issue 11)."""

from __future__ import annotations

from datetime import date
from itertools import combinations
from typing import Any

import pytest

from projections.measures import Period, compute
from projections.measures.privacy import Suppression
from projections.measures.result import Measure, Shape
from tests.test_measures_property import SETTINGS, everything

DIMENSIONS = (None, "setting", "role", "organisation", "cohort")


def _cells(measure: dict[str, Any]) -> dict[tuple[Any, ...], Any]:
    """Every count cell of a rendered measure, addressed by group name and series label."""
    out: dict[tuple[Any, ...], Any] = {}
    counts = set(measure["count_fields"])
    for group in measure["groups"]:
        for field, value in group.items():
            if isinstance(value, list):
                for r, row in enumerate(value):
                    label = row.get("label", row.get("month", r))
                    for inner, v in row.items():
                        if inner in counts and inner not in ("label", "month"):
                            out[(group["group"], field, label, inner)] = v
            elif field in counts:
                out[(group["group"], field)] = value
    return out


def _equations(exact: dict[tuple[Any, ...], Any]) -> list[tuple[tuple, tuple]]:
    """Every equation total = sum(parts) an attacker could know holds: across groups
    (all = sum of the split's groups), a series summing to one of its group's counts,
    and any sum of up to four other counts of the same row."""
    found = []
    ints = {k: v for k, v in exact.items() if isinstance(v, int)}
    groups = sorted({k[0] for k in ints if k[0] != "all"})
    for key, value in ints.items():
        if key[0] != "all" or not groups:
            continue
        parts = tuple((g, *key[1:]) for g in groups if (g, *key[1:]) in ints)
        if parts and sum(ints[p] for p in parts) == value:
            found.append((key, parts))
    rows: dict[tuple, list[tuple]] = {}
    for key in ints:
        rows.setdefault(key[:-1] if len(key) == 4 else key[:1], []).append(key)
    for members in rows.values():
        for total in members:
            others = [m for m in members if m != total]
            for size in range(2, min(4, len(others)) + 1):
                for parts in combinations(others, size):
                    if ints[total] > 0 and ints[total] == sum(ints[p] for p in parts):
                        found.append((total, parts))
    series: dict[tuple, list[tuple]] = {}
    for key in ints:
        if len(key) == 4:
            series.setdefault((key[0], key[1], key[3]), []).append(key)
    for (group, _, _), parts in series.items():
        total_value = sum(ints[p] for p in parts)
        for key, value in ints.items():
            if len(key) == 2 and key[0] == group and value == total_value:
                found.append((key, tuple(parts)))
    return found


def _derivable(exact: dict[str, Any], shown: dict[str, Any]) -> list[str]:
    leaks = []
    for name in exact["measures"]:
        truth = _cells(exact["measures"][name])
        published = _cells(shown["measures"][name])
        for total, parts in _equations(truth):
            members = (total, *parts)
            hidden = [m for m in members if published.get(m, 0) is None]
            if len(hidden) == 1:
                leaks.append(f"{name} {hidden[0]} = {truth[hidden[0]]} via {total} = {parts}")
    return leaks


@pytest.mark.parametrize(
    ("first", "last"),
    [("2024-04-01", "2024-06-30"), ("2024-10-01", "2025-03-31"), ("2025-01-01", "2025-01-31")],
)
def test_no_suppressed_cell_can_be_derived_from_the_published_ones(first: str, last: str):
    period = Period.checked(date.fromisoformat(first), date.fromisoformat(last), SETTINGS.zone)
    population = everything()
    reports = {}
    suppressed_somewhere = 0
    for by in DIMENSIONS:
        exact = compute(population, period, SETTINGS, by=by, unsuppressed=True)
        shown = compute(population, period, SETTINGS, by=by)
        reports[by] = shown
        leaks = _derivable(exact, shown)
        assert not leaks, f"by={by}: " + "; ".join(leaks[:10])
        suppressed_somewhere += sum(
            1 for m in shown["measures"].values() for v in _cells(m).values() if v is None
        )
    assert suppressed_somewhere > 0  # the cohort is small enough to need suppression
    # The "all" group is the same in every split, so reports cannot be differenced.
    for by in DIMENSIONS[1:]:
        for name, measure in reports[by]["measures"].items():
            assert measure["groups"][0] == reports[None]["measures"][name]["groups"][0], (by, name)


def test_one_hidden_part_of_a_split_gets_a_complement():
    shape = Shape(counts=("deaths",))
    measure = Measure(
        "m",
        "M",
        "people",
        "",
        shape,
        [
            {"group": "all", "deaths": 40},
            {"group": "A", "deaths": 3},
            {"group": "B", "deaths": 12},
            {"group": "C", "deaths": 25},
        ],
    )
    shown = Suppression(7, 1).protect(measure).groups
    assert [g["deaths"] for g in shown] == [40, None, None, 25]  # 12 hides 3 (40-25 = 15)


def test_one_hidden_bin_of_a_distribution_gets_a_complement():
    shape = Shape(
        counts=("people",),
        series={"distribution": Shape(counts=("people",), labels=("label",))},
    )
    bins = [("0-7", 20), ("8-28", 9), ("29-90", 14), ("91+", 6)]
    measure = Measure(
        "m",
        "M",
        "people",
        "",
        shape,
        [
            {
                "group": "all",
                "people": 49,
                "distribution": [{"label": k, "people": v} for k, v in bins],
            }
        ],
    )
    shown = Suppression(7, 1).protect(measure).groups[0]
    assert shown["people"] == 49
    assert [b["people"] for b in shown["distribution"]] == [20, None, 14, None]
