"""Data entered in error, and its correction by ``EventRetracted`` (append-only:
docs/architecture.md).

About 0.5% of events are retractions. Each corrects a plausible mistake added for the
purpose: a contact or carer keyed in twice, an outcome score mistyped, a referral sent
twice, a case identification duplicated. The mistaken event is an extra one, so
retracting it leaves the person's true journey intact (measures over a cohort with and
without its mistakes agree), and it is never a coordinator, hospital or plan event, so
handoff chains and spells stay consistent. The retraction comes from the same source,
minutes to days later, and always before the journey's horizon.
"""

from __future__ import annotations

from typing import Any

from domain.synthetic.clock import MINUTE, minutes_later, one_of, skip_small_hours
from domain.synthetic.life import Life, Pending

RETRACTED_SHARE = 0.0051  # per event; two events per mistake, so ~0.5% are retractions
CORRECTABLE = frozenset(
    {"ContactRecorded", "OutcomeRecorded", "CarerRecorded", "CaseIdentified", "ReferralMade"}
)


def mistakes(life: Life) -> None:
    """Add the person's mistakes and their retractions (after ``Life.truncate``)."""
    rng = life.rng
    count = sum(1 for _ in life.events if rng.random() < RETRACTED_SHARE)
    if not count:
        return
    candidates = [event for event in life.events if event[3] in CORRECTABLE]
    for _ in range(count):
        if candidates:
            _mistake(life, one_of(rng, candidates))


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    """A copy two levels deep (envelopes never share mutable parts)."""
    return {
        key: dict(value)
        if isinstance(value, dict)
        else list(value)
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }


def _mistake(life: Life, base: Pending) -> None:
    rng = life.rng
    when, _seq, _event_id, type_, org, recorded_by, data = base
    wrong = _copy(data)
    if type_ == "OutcomeRecorded":
        score = float(data["score"])
        if data["instrument"] == "EQ-5D-5L":
            wrong["score"] = round(1 - score, 3)
        else:
            wrong["score"] = max(0, min(30, int(score) + one_of(rng, (-10, -5, 5, 10))))
    elif type_ == "ReferralMade":
        wrong["referral_id"] = life.new_id("REF")
    entered = minutes_later(rng, when, 1, 180)
    retracted = skip_small_hours(entered + int(rng.uniform(10, 7 * 24 * 60) * MINUTE))
    if retracted >= life.horizon:
        return
    by = dict(recorded_by) if recorded_by is not None else None
    mistaken = life.add(entered, type_, org, by, wrong)
    by = dict(recorded_by) if recorded_by is not None else org.system_recorder
    life.add(
        retracted,
        "EventRetracted",
        org,
        by,
        {"retracted_event_id": mistaken, "reason": "entered in error"},
    )
