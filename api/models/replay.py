"""The auditor's replay: the person as at occurred time T, as the ledger knew it at K."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.models.coordination import (
    EXAMPLE_AS_OF,
    EXAMPLE_INTERVAL,
    EXAMPLE_NOW,
    EXAMPLE_PLAN,
    EXAMPLE_SPELL,
    EXAMPLE_TIMELINE,
    CarePlan,
    CoordinatorAsOf,
    CoordinatorNow,
    Interval,
    P,
    Spell,
    TimelineEntry,
)


class Referral(BaseModel):
    referral_id: str
    made_at: datetime
    to_organisation: str
    service: str
    setting: str
    priority: str
    reason: str | None
    status: str
    accepted_at: datetime | None
    declined_at: datetime | None
    decline_reason: str | None
    first_contact_at: datetime | None
    wait_days: int | None
    made_event_id: UUID
    open: bool
    waiting_days: int | None


class QualityFinding(BaseModel):
    seq: int
    kind: str
    event_id: UUID
    event_type: str
    position: int
    occurred_at: datetime
    recorded_at: datetime
    detail: str


class Replay(BaseModel):
    """Computed from the recorded events by the projections' folds, not read from the
    projection tables. ``coordinator`` is the state at the end of what is replayed;
    ``coordinator_as_of`` who held coordination at ``as_of`` (or now)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patient_id": P,
                    "as_of": "2026-03-02T12:00:00Z",
                    "known_at": "2026-03-03T00:00:00Z",
                    "position": 1042,
                    "events": 3,
                    "coordinator": EXAMPLE_NOW,
                    "coordinator_as_of": EXAMPLE_AS_OF,
                    "coordinator_intervals": [EXAMPLE_INTERVAL],
                    "open_spells": [],
                    "spells": [EXAMPLE_SPELL],
                    "care_plans": [EXAMPLE_PLAN],
                    "referrals": [],
                    "quality_findings": [],
                    "timeline": [EXAMPLE_TIMELINE],
                }
            ]
        }
    )

    patient_id: UUID
    as_of: datetime | None
    known_at: datetime | None
    position: int = Field(description="Highest ledger position among the events replayed.")
    events: int = Field(description="Events replayed (after the known_at and as_of cuts).")
    coordinator: CoordinatorNow
    coordinator_as_of: CoordinatorAsOf
    coordinator_intervals: list[Interval]
    open_spells: list[Spell]
    spells: list[Spell]
    care_plans: list[CarePlan]
    referrals: list[Referral]
    quality_findings: list[QualityFinding]
    alerts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="The alerts the same facts give (docs/alerts.md), as visible at "
        "`as_of` (or now): what the coordinator was shown.",
    )
    timeline: list[TimelineEntry]
