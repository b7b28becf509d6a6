"""Secondary (complementary) suppression: no hidden count can be recomputed by subtraction.

Primary suppression hides counts from 1 to ``CAREJOURNEY_SMALL_NUMBER_MAX``. That is not
enough on its own: when a total and all but one of its parts are published, the hidden
part is the total minus the others (a "3" hidden in one hospital's row is the overall
figure minus every other hospital's). This module finds every *additive relation* among
one measure's exact counts, ``total = part + part + ...``, and hides more cells until
no relation has exactly one hidden cell (the classic rule: hide a second cell, so only
the sum of the two is known).

Relations, found from the exact values (a relation that holds by coincidence only costs
a cell more, never a disclosure):

* **splits**: the ``all`` group's count is the sum of the same count over the groups of
  the split (``--by setting|role|organisation|cohort``), group-level and per series row
  (rows matched by their label);
* **series**: a series' count summed over its rows (distribution bins, months) equals a
  count of the row that holds the series (the group's headline count; every count of
  that row with the same value, since an attacker cannot tell a coincidence apart);
* **within a row**: a count equal to the sum of two or three other counts of the same
  row (``reviews_due = on_time + late + not_reviewed``).

The complementary cell is the smallest non-zero unhidden *part* of the relation (ties:
first in order), else any unhidden part; never the total of a split, so the ``all``
group is hidden only by its own relations and is the same in every split of one period
(two reports split differently cannot be differenced against each other).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import Any

from projections.measures.result import Shape

Cell = tuple[Any, ...]  # ("g", group, field) or ("s", group, series, row, field)
Relation = tuple[Cell, tuple[Cell, ...]]  # total, parts


def cells(groups: Sequence[dict[str, Any]], shape: Shape) -> dict[Cell, int]:
    """Every count cell of a measure with its exact value."""
    out: dict[Cell, int] = {}
    for g, values in enumerate(groups):
        for field in shape.counts:
            if isinstance(values.get(field), int):
                out[("g", g, field)] = values[field]
        for name, inner in shape.series.items():
            for r, row in enumerate(values.get(name) or []):
                for field in inner.counts:
                    if isinstance(row.get(field), int):
                        out[("s", g, name, r, field)] = row[field]
    return out


def relations(groups: Sequence[dict[str, Any]], shape: Shape) -> list[Relation]:
    """The additive relations that hold among the exact counts (module docstring)."""
    values = cells(groups, shape)
    found: list[Relation] = []
    rows: list[tuple[int, str | None, int | None, tuple[str, ...]]] = []
    for g, group in enumerate(groups):
        rows.append((g, None, None, shape.counts))
        for name, inner in shape.series.items():
            for r, _ in enumerate(group.get(name) or []):
                rows.append((g, name, r, inner.counts))
    for row_group, row_series, row_index, fields in rows:  # within a row
        address = [_cell(row_group, row_series, row_index, f) for f in fields]
        present = [c for c in address if c in values]
        for total in present:
            others = [c for c in present if c != total]
            for size in (2, 3):
                for parts in combinations(others, size):
                    if values[total] > 0 and values[total] == sum(values[p] for p in parts):
                        found.append((total, parts))
    for g, group in enumerate(groups):  # series rows sum to a count of their group
        for name, inner in shape.series.items():
            items = group.get(name) or []
            if not items:
                continue
            for field in inner.counts:
                parts = tuple(("s", g, name, r, field) for r in range(len(items)))
                if not all(p in values for p in parts):
                    continue
                total_value = sum(values[p] for p in parts)
                for candidate in shape.counts:
                    cell = ("g", g, candidate)
                    if values.get(cell) == total_value:
                        found.append((cell, parts))
    if len(groups) > 1:  # splits: "all" is the sum of the groups
        found.extend(_split_relations(groups, shape, values))
    return found


def hidden(groups: Sequence[dict[str, Any]], shape: Shape, primary: Iterable[Cell]) -> set[Cell]:
    """The primary cells plus the complementary cells that protect them."""
    values = cells(groups, shape)
    hide = set(primary)
    found = relations(groups, shape)
    changed = True
    while changed:
        changed = False
        for total, parts in found:
            members = (total, *parts)
            if sum(1 for c in members if c in hide) != 1:
                continue
            candidates = [p for p in parts if p not in hide]
            if not candidates:
                continue
            nonzero = [p for p in candidates if values[p] > 0]
            pick = min(nonzero or candidates, key=lambda p: values[p])
            hide.add(pick)
            changed = True
    return hide


def _cell(g: int, name: str | None, r: int | None, field: str) -> Cell:
    return ("g", g, field) if name is None else ("s", g, name, r, field)


def _split_relations(
    groups: Sequence[dict[str, Any]], shape: Shape, values: dict[Cell, int]
) -> Iterable[Relation]:
    for field in shape.counts:
        group_total: Cell = ("g", 0, field)
        group_parts: tuple[Cell, ...] = tuple(("g", g, field) for g in range(1, len(groups)))
        whole = group_total in values and all(p in values for p in group_parts)
        if whole and values[group_total] == sum(values[p] for p in group_parts):
            yield group_total, group_parts
    for name, inner in shape.series.items():
        label = inner.labels[0] if inner.labels else None
        if label is None:
            continue
        for r, row in enumerate(groups[0].get(name) or []):
            for field in inner.counts:
                total: Cell = ("s", 0, name, r, field)
                parts: list[Cell] = []
                for g in range(1, len(groups)):
                    for rr, other in enumerate(groups[g].get(name) or []):
                        if other.get(label) == row.get(label):
                            parts.append(("s", g, name, rr, field))
                complete = bool(parts) and total in values and all(p in values for p in parts)
                if complete and values[total] == sum(values[p] for p in parts):
                    yield total, tuple(parts)
