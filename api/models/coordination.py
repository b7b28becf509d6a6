"""Coordinators' views: who coordinates, the journey, care plans, caseloads, the unassigned.

The shapes are those of ``projections/queries.py`` (and of the replay, which computes the
same shapes from the folds), typed here so the OpenAPI schema says what every field is.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

P = "5b1e2f0a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
E1 = "0b6f1c2e-9a43-4d8e-8f3a-3c1d2b4a5e60"
E2 = "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10"
NURSE: dict[str, Any] = {
    "id": "N100",
    "role": "specialist_nurse",
    "organisation": "Y02345",
    "setting": "community",
}


class Coordinator(BaseModel):
    """A professional or team (never a patient identifier)."""

    id: str
    role: str
    organisation: str
    setting: str


class Interval(BaseModel):
    """Who answered "who coordinates" over ``[valid_from, valid_to)`` in occurred time."""

    seq: int
    valid_from: datetime
    valid_to: datetime | None = Field(description="Null: still holds.")
    coordinator_id: str
    role: str
    organisation: str
    setting: str
    named: bool = Field(description="False: the registered practice's default answer.")
    opened_by: UUID
    opened_by_type: str
    closed_by: UUID | None
    closed_by_type: str | None
    opened_position: int = Field(
        description="Ledger position of the event that opened the interval (`opened_by`): "
        "find it in the person's audit bundle (`carejourney audit bundle`)."
    )
    opened_recorded_at: datetime = Field(
        description="Transaction time: when the ledger recorded that event (`valid_from` "
        "is its occurred time, the valid time)."
    )
    publisher: str = Field(description="ODS code of the organisation that published it.")
    source_system: str = Field(description="The publishing system, as its `source.system`.")
    recorder_id: str | None = Field(
        description="Who recorded it at the source (`recorded_by.id`); null for a feed."
    )
    recorder_role: str | None = Field(description="Their role (`recorded_by.role`).")
    reason: str | None = Field(
        description="The reason the assignment, handoff or release gives, if any."
    )
    way_in: Literal["adt"] | None = Field(
        description="`adt`: mapped from an HL7 v2 message. Null: an envelope (HTTP, Kafka "
        "and files carry the same envelope, so the ledger does not tell them apart)."
    )
    closed_position: int | None = Field(description="Ledger position of `closed_by`.")
    closed_recorded_at: datetime | None = Field(
        description="When the ledger recorded `closed_by` (transaction time)."
    )


EXAMPLE_INTERVAL: dict[str, Any] = {
    "seq": 1,
    "valid_from": "2026-03-02T10:15:00Z",
    "valid_to": None,
    "coordinator_id": "N100",
    "role": "specialist_nurse",
    "organisation": "Y02345",
    "setting": "community",
    "named": True,
    "opened_by": E2,
    "opened_by_type": "CoordinatorHandedOff",
    "closed_by": None,
    "closed_by_type": None,
    "opened_position": 1040,
    "opened_recorded_at": "2026-03-04T16:02:11.4Z",
    "publisher": "Y02345",
    "source_system": "community-rio",
    "recorder_id": "N042",
    "recorder_role": "community_nurse",
    "reason": "moved to the community team",
    "way_in": None,
    "closed_position": None,
    "closed_recorded_at": None,
}


EXAMPLE_NOW: dict[str, Any] = {
    "patient_id": P,
    "journey": "open",
    "coordinator": NURSE,
    "named": True,
    "since": "2026-03-02T10:15:00Z",
    "unnamed_since": None,
    "practice": "A81001",
    "gp_id": "G1234567",
    "opened_at": "2026-03-01T09:00:00Z",
    "closed_at": None,
    "first_named_at": "2026-03-02T10:15:00Z",
    "handoffs": 1,
    "position": 1042,
}
EXAMPLE_AS_OF: dict[str, Any] = {
    "patient_id": P,
    "at": "2026-03-02T12:00:00Z",
    "coordinator": NURSE,
    "named": True,
    "interval": EXAMPLE_INTERVAL,
}


class CoordinatorNow(BaseModel):
    """Who coordinates the person now: the named coordinator, or the practice default."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_NOW]})

    patient_id: UUID
    journey: Literal["open", "closed", "none"]
    coordinator: Coordinator | None
    named: bool
    since: datetime | None
    unnamed_since: datetime | None
    practice: str | None
    gp_id: str | None
    opened_at: datetime | None
    closed_at: datetime | None
    first_named_at: datetime | None
    handoffs: int
    position: int = Field(description="Last ledger position folded into this answer.")


class CoordinatorAsOf(BaseModel):
    """Who coordinated the person at occurred time ``at``, as the ledger knows it now."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_AS_OF]})

    patient_id: UUID
    at: datetime
    coordinator: Coordinator | None = Field(description="Null outside any journey.")
    named: bool
    interval: Interval | None


class CoordinatorHistory(BaseModel):
    """Every interval of the person's journeys in order, each with the change that opened
    it: who published it, why, which system, and both clocks (``docs/integrity.md``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"patient_id": P, "intervals": [EXAMPLE_INTERVAL], "projected_to": 1042}]
        }
    )

    patient_id: UUID
    intervals: list[Interval]
    projected_to: int = Field(description="The coordinators projection's ledger position.")


class TimelineEntry(BaseModel):
    seq: int
    position: int
    event_id: UUID
    stream_patient_id: UUID
    type: str
    kind: str
    setting: str = Field(description="The lane: source setting (a contact's own setting).")
    summary: str
    source_organisation: str
    source_system: str
    occurred_at: datetime
    recorded_at: datetime
    status: Literal["recorded", "retracted", "corrected", "cancelled"]
    voided_by: UUID | None


class Spell(BaseModel):
    seq: int
    encounter_id: str
    hospital: str
    ward: str | None
    location: str | None
    method: str
    admitted_at: datetime
    discharged_at: datetime | None
    destination: str | None
    length_of_stay_days: int | None
    transfers: list[dict[str, Any]]
    admitted_event_id: UUID
    discharged_event_id: UUID | None
    status: Literal["open", "closed"]


EXAMPLE_TIMELINE: dict[str, Any] = {
    "seq": 0,
    "position": 1041,
    "event_id": E1,
    "stream_patient_id": P,
    "type": "PatientRegistered",
    "kind": "journey",
    "setting": "primary_care",
    "summary": "registered at A81001 (GP G1234567)",
    "source_organisation": "A81001",
    "source_system": "gp-emis",
    "occurred_at": "2026-03-01T09:00:00Z",
    "recorded_at": "2026-03-01T09:00:01.52Z",
    "status": "recorded",
    "voided_by": None,
}
EXAMPLE_SPELL: dict[str, Any] = {
    "seq": 0,
    "encounter_id": "E1",
    "hospital": "RXH01",
    "ward": "W7",
    "location": "W9",
    "method": "emergency",
    "admitted_at": "2026-03-05T22:10:00Z",
    "discharged_at": "2026-03-09T11:00:00Z",
    "destination": "usual_residence",
    "length_of_stay_days": 4,
    "transfers": [
        {
            "at": "2026-03-06T08:00:00+00:00",
            "from": "W7",
            "to": "W9",
            "event_id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        }
    ],
    "admitted_event_id": "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
    "discharged_event_id": "3b4c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d7e",
    "status": "closed",
}


class Journey(BaseModel):
    """The person's cross-setting timeline (occurred order, every event with its status)
    and admission spells, from the projections."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patient_id": P,
                    "timeline": [EXAMPLE_TIMELINE],
                    "spells": [EXAMPLE_SPELL],
                    "handoffs": 1,
                    "projected_to": 1042,
                }
            ]
        }
    )

    patient_id: UUID
    timeline: list[TimelineEntry]
    spells: list[Spell]
    handoffs: int
    projected_to: int = Field(description="The timeline projection's ledger position.")


class PlanGoal(BaseModel):
    """A goal as a plan holds it now, with its status (``open``, ``achieved``,
    ``dropped``). Not named ``Goal``: that is the envelope's goal (no status) in the
    same OpenAPI document, and one name for both made /care-plans and /replay break
    their own schema."""

    goal_id: str
    description: str
    target_date: date | None = None
    status: str


class CarePlan(BaseModel):
    plan_id: str
    status: Literal["active", "closed"]
    agreed_at: datetime
    agreed_with: str
    review_due: date
    last_reviewed_at: datetime | None
    reviews: int
    revisions: int
    goals: list[PlanGoal]
    closed_at: datetime | None
    close_reason: str | None
    agreed_event_id: UUID
    review_overdue: bool = Field(description="Active and due before today (configured zone).")


EXAMPLE_PLAN: dict[str, Any] = {
    "plan_id": "CP1",
    "status": "active",
    "agreed_at": "2026-03-03T10:00:00Z",
    "agreed_with": "both",
    "review_due": "2026-06-03",
    "last_reviewed_at": None,
    "reviews": 0,
    "revisions": 0,
    "goals": [
        {
            "goal_id": "G1",
            "description": "walk to the shops",
            "target_date": "2026-05-01",
            "status": "open",
        }
    ],
    "closed_at": None,
    "close_reason": None,
    "agreed_event_id": E1,
    "review_overdue": False,
}


class CarePlans(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"patient_id": P, "plans": [EXAMPLE_PLAN], "projected_to": 1042}]
        }
    )

    patient_id: UUID
    plans: list[CarePlan]
    projected_to: int


class CaseloadEntry(BaseModel):
    patient_id: UUID
    nhs_number: str | None = Field(description="Null if the person was erased.")
    since: datetime
    role: str
    organisation: str
    setting: str
    opened_at: datetime | None


class Caseload(BaseModel):
    """The people this professional is the named coordinator of now, longest-held first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "coordinator_id": "N100",
                    "people": [
                        {
                            "patient_id": P,
                            "nhs_number": "9434765919",
                            "since": "2026-03-02T10:15:00Z",
                            "role": "specialist_nurse",
                            "organisation": "Y02345",
                            "setting": "community",
                            "opened_at": "2026-03-01T09:00:00Z",
                        }
                    ],
                    "projected_to": 1042,
                }
            ]
        }
    )

    coordinator_id: str
    people: list[CaseloadEntry]
    projected_to: int


class UnassignedEntry(BaseModel):
    patient_id: UUID
    nhs_number: str | None
    since: datetime | None = Field(description="Without a named coordinator since.")
    days: int | None = Field(description="Whole days without one, as of now.")
    practice: str | None
    gp_id: str | None
    opened_at: datetime | None


class Unassigned(BaseModel):
    """Open journeys with no named coordinator now, longest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "people": [
                        {
                            "patient_id": P,
                            "nhs_number": "9434765919",
                            "since": "2026-01-10T09:00:00Z",
                            "days": 51,
                            "practice": "A81001",
                            "gp_id": "G1234567",
                            "opened_at": "2026-01-10T09:00:00Z",
                        }
                    ],
                    "next_offset": None,
                    "projected_to": 1042,
                }
            ]
        }
    )

    people: list[UnassignedEntry]
    next_offset: int | None = Field(description="Pass as `offset` for the next page.")
    projected_to: int
