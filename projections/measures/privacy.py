"""Pseudonyms and small-number suppression: what evaluators may see.

**Pseudonyms.** A person is shown to evaluators only as
``HMAC-SHA-256(key=CAREJOURNEY_PSEUDONYM_KEY, message=str(patient_id))`` in hex: keyed
(without the key nobody can recompute or link it), stable (the same person gets the same
pseudonym in every report under the same key), never derived from the NHS number (which
the measures never read). The internal ``patient_id`` is the survivor's after a merge;
after an erasure the person's rows stay under their old ``patient_id``, so their
pseudonym stays, unlinkable to anyone (``carejourney erase``).

**Suppression.** In every evaluator-facing output (the CLI's default, ``GET
/v1/measures`` for evaluators, the dashboard) every count from 1 to
``CAREJOURNEY_SMALL_NUMBER_MAX`` (default 7) is suppressed (null; shown as ``*``) and
every other count is rounded to the nearest multiple of ``CAREJOURNEY_ROUNDING_BASE``
(default 5; halves round up); 0 stays 0. A rate (percentage, per person, per 100
person-days) is computed from the *unsuppressed* counts and shown unless either of its
two counts is suppressed; a statistic (median, 90th percentile, mean) is shown unless
the count of the units it summarises is suppressed. Per-person rows (only on request)
carry pseudonyms and each person's own values, never counts of people.
Unsuppressed output (auditors, admins, tests) shows every count exactly.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from projections.measures.result import Measure, Shape


def pseudonym(patient_id: UUID | str, key: str) -> str:
    """The keyed pseudonym of an internal patient id (module docstring)."""
    return hmac.new(key.encode(), str(patient_id).encode(), hashlib.sha256).hexdigest()


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

    def row(self, values: dict[str, Any], shape: Shape) -> dict[str, Any]:
        """One group's (or series row's) values as an evaluator may see them."""
        out = dict(values)
        for rate, (numerator, denominator) in shape.rates.items():
            if self.hides(values.get(numerator)) or self.hides(values.get(denominator)):
                out[rate] = None
        for stat, units in shape.stats.items():
            if self.hides(values.get(units)):
                out[stat] = None
        for name, inner in shape.series.items():
            out[name] = [self.row(r, inner) for r in values.get(name, [])]
        for count in shape.counts:
            if count in values:
                out[count] = self.count(values[count])
        return out

    def protect(self, measure: Measure) -> Measure:
        return Measure(
            measure.name,
            measure.title,
            measure.unit,
            measure.definition,
            measure.shape,
            [self.row(g, measure.shape) for g in measure.groups],
            measure.per_person,
        )


UNSUPPRESSED: dict[str, Any] = {"applied": False}
