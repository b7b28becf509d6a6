"""Recorded events built in memory for the pure folds (no database): a tiny stand-in for
the ledger that assigns positions and recording times in delivery order and drops
re-delivered event ids, as ``Ledger.append_batch`` does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.journey import RecordedEvent
from tests.envelopes import DEFAULT_DATA, T0

PATIENT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
OTHER = uuid.UUID("00000000-0000-4000-8000-00000000000b")
RECORDED_FROM = datetime.fromisoformat("2026-06-01T00:00:00+00:00")

DATA: dict[str, dict[str, Any]] = {
    **DEFAULT_DATA,
    "CoordinatorHandedOff": {
        "from_id": "N100",
        "to": {
            "id": "S200",
            "role": "specialist_nurse",
            "organisation": "RYX01",
            "setting": "community",
        },
    },
    "CoordinatorReleased": {"coordinator_id": "S200"},
    "Transferred": {"encounter_id": "E1", "from_location": "AMU", "to_location": "Ward 7"},
    "AdmissionCancelled": {"encounter_id": "E1"},
    "TransferCancelled": {"encounter_id": "E1"},
    "DischargeCancelled": {"encounter_id": "E1"},
    "JourneyClosed": {"reason": "moved_away"},
    "ReferralMade": {
        "referral_id": "R1",
        "priority": "urgent",
        "to": {"organisation": "RYX01", "service": "falls service", "setting": "community"},
    },
    "ReferralAccepted": {"referral_id": "R1"},
    "ReferralDeclined": {"referral_id": "R1", "reason": "out of area"},
    "FirstContactMade": {"referral_id": "R1"},
    "CarePlanAgreed": {
        "plan_id": "P1",
        "agreed_with": "patient",
        "review_due": "2026-06-01",
        "goals": [
            {"goal_id": "g1", "description": "Walk to the shop"},
            {"goal_id": "g2", "description": "Fewer falls"},
        ],
    },
    "CarePlanRevised": {"plan_id": "P1", "achieved": ["g1"]},
    "CarePlanReviewed": {"plan_id": "P1", "next_review_due": "2026-09-01"},
    "CarePlanClosed": {"plan_id": "P1"},
}
SETTINGS = {
    "Admitted": "acute",
    "Transferred": "acute",
    "Discharged": "acute",
    "AdmissionCancelled": "acute",
    "TransferCancelled": "acute",
    "DischargeCancelled": "acute",
    "CoordinatorHandedOff": "community",
    "CoordinatorAssigned": "community",
    "ReferralAccepted": "community",
    "FirstContactMade": "community",
}


def fact(
    type_: str,
    at: float | datetime = 0,
    data: dict[str, Any] | None = None,
    *,
    patient: uuid.UUID = PATIENT,
    event_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """A fact as a service reports it: ``at`` in hours after T0 (or a datetime)."""
    occurred = at if isinstance(at, datetime) else T0 + timedelta(hours=at)
    return {
        "event_id": event_id or uuid.uuid4(),
        "type": type_,
        "occurred_at": occurred,
        "patient_id": patient,
        "data": dict(DATA[type_]) if data is None else data,
        "setting": SETTINGS.get(type_, "primary_care"),
    }


def retract(target: dict[str, Any], at: float | datetime = 0) -> dict[str, Any]:
    return fact(
        "EventRetracted",
        at,
        {"retracted_event_id": str(target["event_id"]), "reason": "entered in error"},
        patient=target["patient_id"],
    )


@dataclass
class Ledger:
    """Positions and ``recorded_at`` follow delivery; a re-delivered id is a duplicate."""

    events: list[RecordedEvent] = field(default_factory=list)
    seen: set[uuid.UUID] = field(default_factory=set)
    position: int = 0
    gap_every: int = 0  # leave a hole in positions every N events (rolled-back ids)

    def deliver(self, *facts: dict[str, Any]) -> list[RecordedEvent]:
        out = []
        for f in facts:
            if f["event_id"] in self.seen:
                continue
            self.seen.add(f["event_id"])
            self.position += 1
            if self.gap_every and self.position % self.gap_every == 0:
                self.position += 1
            event = RecordedEvent(
                position=self.position,
                event_id=f["event_id"],
                patient_id=f["patient_id"],
                version=len([e for e in self.events if e.patient_id == f["patient_id"]]) + 1,
                type=f["type"],
                schema_version=1,
                occurred_at=f["occurred_at"],
                recorded_at=RECORDED_FROM + timedelta(seconds=self.position),
                source={"organisation": "A81001", "system": "test", "setting": f["setting"]},
                recorded_by=None,
                data=f["data"],
                hash="0" * 64,
                prev_hash=None,
            )
            self.events.append(event)
            out.append(event)
        return out


def recorded(*facts: dict[str, Any]) -> list[RecordedEvent]:
    """The facts delivered in the order given."""
    ledger = Ledger()
    ledger.deliver(*facts)
    return ledger.events
