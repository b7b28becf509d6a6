"""What a measure returns, and how its units are split into groups.

A measure counts *units* (people, discharges, referrals, person-days, reviews) and
summarises each group of them as a flat dict of values. Its ``Shape`` says what each
value is, so suppression (``privacy.protect``) treats it right without knowing the
measure: a *count* of units, a *rate* of two counts, a *statistic* (median, p90, mean)
of the units one count counts, or a *label* (text, or a setting such as the threshold).
*Series* are lists of rows with their own shape (a distribution's bins, months).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from projections.measures.period import ALL, Period

U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class Shape:
    counts: tuple[str, ...] = ()
    rates: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # rate -> (num, den)
    stats: Mapping[str, str] = field(default_factory=dict)  # statistic -> count of its units
    labels: tuple[str, ...] = ()
    series: Mapping[str, Shape] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Context:
    """What every measure is computed for."""

    period: Period
    by: str | None = None
    wait_threshold_days: int = 28
    per_person: bool = False
    pseudonym: Callable[[Any], str] = str
    shared: dict[str, Any] = field(default_factory=dict, compare=False)

    def person_rows(
        self,
        units: Iterable[U],
        person: Callable[[U], Any],
        fields: Callable[[U], dict[str, Any]],
    ) -> list[dict[str, Any]] | None:
        """A row per unit for the auditor's check (``--per-person``): the unit's person
        as a pseudonym first, then its fields; None when the report does not ask."""
        if not self.per_person:
            return None
        return [{"pseudonym": self.pseudonym(person(u)), **fields(u)} for u in units]

    def memo(self, name: str, make: Callable[[], Any]) -> Any:
        """Units several measures share (discharges, person-day runs), made once."""
        if name not in self.shared:
            self.shared[name] = make()
        return self.shared[name]


@dataclass(slots=True)
class Measure:
    name: str
    title: str
    unit: str  # what the headline count counts
    definition: str  # the docstring of the function that computed it
    shape: Shape
    groups: list[dict[str, Any]]
    per_person: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "title": self.title,
            "unit": self.unit,
            "definition": self.definition,
            "count_fields": [
                *self.shape.counts,
                *(c for s in self.shape.series.values() for c in s.counts),
            ],
            "groups": self.groups,
        }
        if self.per_person is not None:
            out["per_person"] = self.per_person
        return out


def definition(function: Callable[..., Any]) -> str:
    """A measure's published definition: its function's docstring."""
    return inspect.getdoc(function) or ""


def grouped(
    units: Iterable[U],
    key: Callable[[U], str] | None,
    summarise: Callable[[list[U]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """``[{"group": "all", ...}, {"group": k, ...} for each key in order]``."""
    every = list(units)
    groups = [{"group": ALL, **summarise(every)}]
    if key is not None:
        split: dict[str, list[U]] = {}
        for unit in every:
            split.setdefault(key(unit), []).append(unit)
        groups.extend({"group": k, **summarise(split[k])} for k in sorted(split))
    return groups


def by_key(ctx: Context, keys_of: Callable[[U], Mapping[str, str]]) -> Callable[[U], str] | None:
    """The grouping key of the report's dimension (None when not split)."""
    if ctx.by is None:
        return None
    dimension = ctx.by
    return lambda unit: keys_of(unit)[dimension]
