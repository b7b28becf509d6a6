"""Continuity of care over contacts: Bice-Boxerman COC and UPC, per person."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from projections.measures.period import median, rounded
from projections.measures.population import Person, Population
from projections.measures.result import Context, Figures, Shape, grouped, measure

BINS = tuple((f"{i / 10:.1f}-{(i + 1) / 10:.1f}", i / 10) for i in range(10))


def bice_boxerman(counts: list[int]) -> float | None:
    """COC = (Σ nᵢ² - N) / (N(N - 1)) for contacts N = Σ nᵢ; undefined (None) for N < 2."""
    n = sum(counts)
    if n < 2:
        return None
    return (sum(c * c for c in counts) - n) / (n * (n - 1))


def usual_provider(counts: list[int]) -> float | None:
    """UPC = max nᵢ / N; None without contacts."""
    n = sum(counts)
    return max(counts) / n if n else None


def _bin(value: float) -> int:
    return min(9, int(value * 10 + 1e-9))


@dataclass(frozen=True, slots=True)
class Continuity:
    person: Person
    contacts: int
    professionals: int
    coc: float | None
    upc: float | None
    keys: dict[str, str]


@measure("Continuity of care (COC, UPC)", "people")
def continuity(pop: Population, ctx: Context) -> Figures:
    """Continuity of care: Bice-Boxerman continuity of care index (COC) and usual
    provider of care index (UPC), per person, over their contacts in the period.

    Contacts: standing ``ContactRecorded`` events that occurred in the period, any
    setting or mode, except those made by the HL7 v2 ADT adapter from A04
    registrations/attendances (``source.system`` starting ``hl7v2:``). A provider is the
    professional or team contacted (``with.id``). For a person with N contacts, nᵢ of
    them with provider i: COC = (Σ nᵢ² - N) / (N(N - 1)) (1 when every contact was with
    one provider, 0 when each was with a different one); UPC = max nᵢ / N.

    Both are computed for people with N ≥ 2 (``people``); COC is undefined for N < 2
    and people with exactly one contact are counted in ``one_contact`` (excluded).

    Summaries: ``median_coc`` and ``median_upc`` (three decimals); ``distribution``:
    people by COC and by UPC in tenths (0.0-0.1, ..., 0.9-1.0; a value on a boundary
    goes to the upper bin; 1.0 to the last).

    Split: the coordinator holding at 23:59 local on the last day (or the last before, for
    a journey closed by then); cohort.
    """
    period = ctx.period
    units = []
    moment = period.at_2359(period.last)
    for person in pop:
        seen = Counter(
            c.with_id for c in person.contacts if not c.from_adt and period.contains(c.occurred_at)
        )
        if not seen:
            continue
        counts = list(seen.values())
        units.append(
            Continuity(
                person,
                sum(counts),
                len(counts),
                bice_boxerman(counts),
                usual_provider(counts),
                person.keys(period, moment, attribute=True),
            )
        )

    def summarise(group: list[Continuity]) -> dict[str, Any]:
        scored = [u for u in group if u.coc is not None]
        coc_bins = Counter(_bin(u.coc) for u in scored if u.coc is not None)
        upc_bins = Counter(_bin(u.upc) for u in scored if u.upc is not None)
        return {
            "people": len(scored),
            "one_contact": len(group) - len(scored),
            "median_coc": rounded(median([u.coc for u in scored if u.coc is not None])),
            "median_upc": rounded(median([u.upc for u in scored if u.upc is not None])),
            "distribution": [
                {"label": label, "coc_people": coc_bins.get(i, 0), "upc_people": upc_bins.get(i, 0)}
                for i, (label, _) in enumerate(BINS)
            ],
        }

    shape = Shape(
        counts=("people", "one_contact"),
        stats={"median_coc": "people", "median_upc": "people"},
        series={"distribution": Shape(counts=("coc_people", "upc_people"), labels=("label",))},
    )
    per_person = ctx.person_rows(
        units,
        lambda u: u.person.patient_id,
        lambda u: {
            "contacts": u.contacts,
            "professionals": u.professionals,
            "coc": rounded(u.coc, 4),
            "upc": rounded(u.upc, 4),
        },
    )
    return Figures(shape, grouped(ctx, units, lambda u: u.keys, summarise), per_person)
