"""Properties of the measures on a synthetic cohort, in memory (pure folds, no database).

The rule that makes a report on a past period stable: only facts that occurred before
the period's end count (corrections apply whatever their own time). So cutting every
later fact away must not change any number, for any period; and the counts must add up.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.contract import envelope_content, parse_envelope
from domain.journey import RecordedEvent
from domain.settings import Settings
from domain.synthetic import delivery_order, generate_people
from projections.fold import CORRECTIONS, FoldConfig, prepare
from projections.measures import Period, Population, compute, from_folds
from tests.fixtures_measures import group

SETTINGS = Settings()
CONFIG = FoldConfig.from_settings(SETTINGS)
RECORDED = datetime(2026, 1, 1, tzinfo=UTC)


@cache
def people() -> dict[uuid.UUID, list[RecordedEvent]]:
    """The cohort as the ledger would record it: validated content, positions in
    delivery order, one patient id per NHS number."""
    found: dict[uuid.UUID, list[RecordedEvent]] = defaultdict(list)
    raw = delivery_order(list(generate_people(people=150, seed=3)), 3)
    for position, item in enumerate(raw, start=1):
        env = parse_envelope(item)
        content = envelope_content(env)
        patient = uuid.uuid5(uuid.NAMESPACE_OID, env.nhs_number)
        found[patient].append(
            RecordedEvent(
                position,
                uuid.UUID(str(env.event_id)),
                patient,
                len(found[patient]) + 1,
                content["type"],
                content["schema_version"],
                env.occurred_at,
                RECORDED + timedelta(seconds=position),
                content["source"],
                content["recorded_by"],
                content["data"],
                "",
                None,
            )
        )
    return dict(found)


def population(before: datetime | None = None) -> Population:
    """Everyone, or only what occurred before ``before`` (plus every correction)."""
    return from_folds(
        prepare(
            [
                e
                for e in events
                if before is None or e.occurred_at < before or e.type in CORRECTIONS
            ],
            patient,
            CONFIG,
        )
        for patient, events in people().items()
    )


@cache
def everything() -> Population:
    return population()


@settings(max_examples=12, deadline=None)
@given(
    first=st.dates(min_value=date(2024, 2, 1), max_value=date(2025, 9, 1)),
    days=st.integers(min_value=30, max_value=300),
)
def test_a_period_depends_only_on_what_occurred_before_its_end(first: date, days: int) -> None:
    """...and, for the follow-up windows of its discharges, on what occurred in the
    look-ahead after it, given how far the ledger's data reaches."""
    period = Period.checked(first, first + timedelta(days=days - 1), SETTINGS.zone)
    full = compute(everything(), period, SETTINGS, per_person=True, unsuppressed=True)
    before = population(before=period.look_ahead_end)
    before.horizon = everything().horizon
    cut = compute(before, period, SETTINGS, per_person=True, unsuppressed=True)
    assert full["measures"] == cut["measures"]

    coverage = group(full, "coverage")
    assert coverage["covered_days"] + coverage["uncovered_days"] == coverage["person_days"]
    assert sum(m["person_days"] for m in coverage["by_month"]) == coverage["person_days"]
    waits = group(full, "time_to_coordinator")
    assert waits["named"] + waits["incomplete"] == waits["people"]
    assert sum(d["people"] for d in waits["distribution"]) == waits["named"]
    readmission = group(full, "readmission_30d")
    assert 0 <= readmission["readmitted"] <= readmission["discharges"]
    for name in ("follow_up_7d", "follow_up_72h"):
        follow = group(full, name)
        assert follow["followed_up"] + follow["readmitted_first"] <= follow["discharges"]
    reviews = group(full, "care_plan_reviews")
    assert reviews["on_time"] + reviews["late"] + reviews["not_reviewed"] == reviews["reviews_due"]
