"""What a measure returns, and how its units are split into groups.

A measure counts *units* (people, discharges, referrals, person-days, reviews) and
summarises each group of them as a flat dict of values. Its ``Shape`` says what each
value is, so suppression (``privacy.protect``) treats it right without knowing the
measure: a *count* of units, a *rate* of two counts, a *statistic* (median, p90, mean)
of the units one count counts, or a *label* (text, or a setting such as the threshold).
*Series* are lists of rows with their own shape (a distribution's bins, months).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from projections.measures.period import ALL, Period

U = TypeVar("U")
P = TypeVar("P")  # the population (measures.population.Population)


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


@dataclass(frozen=True, slots=True)
class Figures:
    """What a measure's body computes: the shape of its values, the groups and, when the
    report asks, the auditor's per-person rows (``Context.person_rows``)."""

    shape: Shape
    groups: list[dict[str, Any]]
    per_person: list[dict[str, Any]] | None


Body: TypeAlias = Callable[[P, Context], Figures]  # a measure's computation


def measure(title: str, unit: str) -> Callable[[Body[P]], Callable[[P, Context], Measure]]:
    """Declares a measure over its body: the title and what the headline count counts
    (``unit``) stand over the function; its name is the function's name (what
    ``report.NAMES`` lists) and its definition the function's docstring, so neither is
    written twice nor drifts from the code."""

    def declare(body: Body[P]) -> Callable[[P, Context], Measure]:
        @functools.wraps(body)
        def computed(pop: P, ctx: Context) -> Measure:
            f = body(pop, ctx)
            return Measure(
                body.__name__, title, unit, definition(body), f.shape, f.groups, f.per_person
            )

        return computed

    return declare


def grouped(
    ctx: Context,
    units: Iterable[U],
    keys_of: Callable[[U], Mapping[str, str]],
    summarise: Callable[[list[U]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """``[{"group": "all", ...}, {"group": k, ...} for each key in order]``: every unit,
    then, when the report is split (``ctx.by``), the units by their key of that
    dimension (``keys_of``)."""
    every = list(units)
    groups = [{"group": ALL, **summarise(every)}]
    if ctx.by is not None:
        dimension = ctx.by
        split: dict[str, list[U]] = {}
        for unit in every:
            split.setdefault(keys_of(unit)[dimension], []).append(unit)
        groups.extend({"group": k, **summarise(split[k])} for k in sorted(split))
    return groups
