"""Pseudonyms and small-number suppression: what evaluators may see.

**Pseudonyms.** A person is shown to evaluators only as
``HMAC-SHA-256(key=CAREJOURNEY_PSEUDONYM_KEY, message=str(patient_id))`` in hex: keyed
(without the key nobody can recompute or link it), stable (the same person gets the same
pseudonym in every report under the same key), never derived from the NHS number (which
the measures never read). The internal ``patient_id`` is the survivor's after a merge;
after an erasure the person's rows stay under their old ``patient_id``, so their
pseudonym stays, unlinkable to anyone (``carejourney erase``). Because pseudonyms are
stable per key, two reports under one key can be joined person by person; a release
that must not be linkable to any other is made with a per-report salt (``--salt`` /
``salt=``): ``HMAC(key, salt + 0x1F + patient_id)``, a different pseudonym for everyone.

**Suppression.** In every evaluator-facing output (the CLI's default, ``GET
/v1/measures`` for evaluators, the dashboard) every count from 1 to
``CAREJOURNEY_SMALL_NUMBER_MAX`` (default 7) is suppressed (null; shown as ``*``) and
every other count is rounded to the nearest multiple of ``CAREJOURNEY_ROUNDING_BASE``
(default 5; halves round up); 0 stays 0. A rate (percentage, per person, per 100
person-days) is computed from the *unsuppressed* counts and shown unless either of its
two counts is suppressed; a statistic (median, 90th percentile, mean) is shown unless
the count of the units it summarises is suppressed. **Secondary suppression** then hides
more counts so that no hidden one can be recomputed from a total and the other cells
(``complementary``). Per-person rows are never given to evaluators (auditors and admins
only, and logged): a suppressed bin could be recounted from them. People in the
National Data Opt-out register are left out of every report; how many, rounded and
suppressed like any count, is the report's ``opt_out`` (docs/governance.md).
Unsuppressed output (auditors, admins, tests) shows every count exactly.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from projections.measures import complementary
from projections.measures.result import Measure, Shape


def pseudonym(patient_id: UUID | str, key: str, salt: str | None = None) -> str:
    """The keyed pseudonym of an internal patient id (module docstring); with a
    per-report ``salt`` the pseudonyms of that report link to no other report's."""
    message = str(patient_id) if not salt else f"{salt}\x1f{patient_id}"
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Suppression:
    """Counts 1..``max_suppressed`` hidden, others rounded to a multiple of ``base``."""

    max_suppressed: int = 7
    base: int = 5

    def hides(self, count: Any) -> bool:
        return isinstance(count, int) and 1 <= count <= self.max_suppressed

    def count(self, count: Any) -> int | None:
        if count is None or self.hides(count):
            return None
        if self.base <= 1:
            return int(count)
        rounded: int = math.floor(count / self.base + 0.5) * self.base
        return rounded

    def describe(self) -> dict[str, Any]:
        return {
            "applied": True,
            "suppressed_counts": f"1-{self.max_suppressed}" if self.max_suppressed else "none",
            "rounded_to": self.base,
        }

    def row(
        self, values: dict[str, Any], shape: Shape, hidden: Callable[[str], bool] | None = None
    ) -> dict[str, Any]:
        """One group's (or series row's) values as an evaluator may see them; ``hidden``
        says which counts are hidden (default: the primary rule on the row alone)."""
        hide = hidden or (lambda name: self.hides(values.get(name)))
        out = dict(values)
        for rate, (numerator, denominator) in shape.rates.items():
            if hide(numerator) or hide(denominator):
                out[rate] = None
        for stat, units in shape.stats.items():
            if hide(units):
                out[stat] = None
        for name, inner in shape.series.items():
            out[name] = [self.row(r, inner) for r in values.get(name, [])]
        for count in shape.counts:
            if count in values:
                out[count] = None if hide(count) else self.count(values[count])
        return out

    def protect(self, measure: Measure) -> Measure:
        """Primary suppression, then the complementary cells that keep every hidden count
        from being recomputed from the published ones (``complementary``)."""
        shape = measure.shape
        exact = complementary.cells(measure.groups, shape)
        primary = {cell for cell, value in exact.items() if self.hides(value)}
        hide = complementary.hidden(measure.groups, shape, primary)
        groups = []
        for g, values in enumerate(measure.groups):
            shown = self.row(values, shape, _hidden_in(hide, ("g", g)))
            for name, inner in shape.series.items():
                shown[name] = [
                    self.row(row, inner, _hidden_in(hide, ("s", g, name, r)))
                    for r, row in enumerate(values.get(name) or [])
                ]
            groups.append(shown)
        return Measure(
            measure.name,
            measure.title,
            measure.unit,
            measure.definition,
            measure.shape,
            groups,
            measure.per_person,
        )


def _hidden_in(hide: set[complementary.Cell], row: complementary.Cell) -> Callable[[str], bool]:
    """Whether a field of one row (addressed by its cell prefix) is hidden."""
    return lambda field: (*row, field) in hide


UNSUPPRESSED: dict[str, Any] = {"applied": False}
