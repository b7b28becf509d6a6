"""Outcome scores: change between the first and last recording, per instrument."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.measures.period import ALL, mean, median, rounded
from projections.measures.population import Person, Population
from projections.measures.result import Context, Figures, Shape, grouped, measure


@dataclass(frozen=True, slots=True)
class Change:
    person: Person
    instrument: str
    recordings: int
    first: float
    last: float
    keys: dict[str, str]

    @property
    def change(self) -> float:
        return self.last - self.first


@measure("Outcome score change (first to last)", "people")
def outcome_change(pop: Population, ctx: Context) -> Figures:
    """Outcome score change: last minus first recording, per person and instrument.

    For each person and instrument (``OutcomeRecorded.instrument``, e.g. ``P3CEQ``,
    ``EQ-5D-5L``; instruments are never mixed), the standing recordings that occurred in
    the period, in occurred order (ties by ledger position): change = score of the last
    minus score of the first. People with at least two recordings are counted
    (``people``); people with one are counted in ``single_recording`` (excluded).

    Summaries over people: ``mean_first``, ``mean_last``, ``mean_change``,
    ``median_change`` (three decimals). Whether a rise is an improvement depends on the
    instrument (higher is better for both P3CEQ and the EQ-5D-5L index).

    Groups: one per instrument (``group`` = the instrument); split by role, setting or
    organisation of the coordinator holding at 23:59 on the last day, or by cohort, as
    ``INSTRUMENT | value``.
    """
    period = ctx.period
    units = []
    for person in pop:
        per_instrument: dict[str, list[float]] = {}
        for outcome in person.outcomes:  # in occurred order
            if period.contains(outcome.occurred_at):
                per_instrument.setdefault(outcome.instrument, []).append(outcome.score)
        if not per_instrument:
            continue
        keys = person.keys(period, period.at_2359(period.last), attribute=True)
        for instrument, scores in per_instrument.items():
            units.append(Change(person, instrument, len(scores), scores[0], scores[-1], keys))

    def summarise(group: list[Change]) -> dict[str, Any]:
        scored = [u for u in group if u.recordings >= 2]
        return {
            "people": len(scored),
            "single_recording": len(group) - len(scored),
            "mean_first": mean([u.first for u in scored]),
            "mean_last": mean([u.last for u in scored]),
            "mean_change": mean([u.change for u in scored]),
            "median_change": rounded(median([u.change for u in scored])),
        }

    groups: list[dict[str, Any]] = []
    for instrument in sorted({u.instrument for u in units}):
        mine = [u for u in units if u.instrument == instrument]
        for row in grouped(ctx, mine, lambda u: u.keys, summarise):
            label = instrument if row["group"] == ALL else f"{instrument} | {row['group']}"
            groups.append({**row, "group": label, "instrument": instrument})
    shape = Shape(
        counts=("people", "single_recording"),
        stats=dict.fromkeys(("mean_first", "mean_last", "mean_change", "median_change"), "people"),
        labels=("instrument",),
    )
    per_person = ctx.person_rows(
        units,
        lambda u: u.person.patient_id,
        lambda u: {
            "instrument": u.instrument,
            "recordings": u.recordings,
            "first": u.first,
            "last": u.last,
            "change": rounded(u.change, 4) if u.recordings >= 2 else None,
        },
    )
    return Figures(shape, groups, per_person)
