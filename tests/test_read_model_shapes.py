"""Each read model's row is declared once (its NamedTuple); the HTTP response models are
held to it here, so a column added to a row fails until the API says what it shows.

The differences are the documented ones: the API never repeats ``patient_id`` per row
(the person is the request's), the coordinator's four columns are one ``coordinator``
object, and a few answers depend on the day asked (``review_overdue``, ``open``,
``waiting_days``), so are computed by ``projections/queries.py``, never stored."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from api.models import coordination, replay
from projections import care_plans, coordinators, quality, referrals, timeline

COORDINATOR = {"coordinator_id", "role", "organisation", "setting"}

CASES = [
    (coordinators.Interval, coordination.Interval, {"patient_id"}, set()),
    (
        coordinators.Coordination,
        coordination.CoordinatorNow,
        COORDINATOR,
        {"coordinator"},
    ),
    (timeline.TimelineEntry, coordination.TimelineEntry, {"patient_id"}, set()),
    (timeline.Spell, coordination.Spell, {"patient_id"}, set()),
    (care_plans.CarePlan, coordination.CarePlan, {"patient_id"}, {"review_overdue"}),
    (referrals.Referral, replay.Referral, {"patient_id"}, {"open", "waiting_days"}),
    (quality.QualityFinding, replay.QualityFinding, {"patient_id"}, set()),
]


@pytest.mark.parametrize(
    ("row", "model", "not_shown", "computed"), CASES, ids=lambda c: getattr(c, "__name__", "")
)
def test_the_api_model_shows_the_row(
    row: type, model: type[BaseModel], not_shown: set[str], computed: set[str]
) -> None:
    fields = set(row._fields)  # type: ignore[attr-defined]
    assert not_shown <= fields
    assert set(model.model_fields) == (fields - not_shown) | computed


def test_the_coordinator_object_is_the_four_columns() -> None:
    shown = {"coordinator_id" if f == "id" else f for f in coordination.Coordinator.model_fields}
    assert shown == COORDINATOR
