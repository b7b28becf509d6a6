"""Hand-built envelopes for tests: small, explicit, valid unless a test breaks them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

NHS_A = "9434765919"
NHS_B = "9434765870"
NHS_C = "4010232137"
T0 = datetime.fromisoformat("2026-03-02T10:15:00+00:00")

DEFAULT_DATA: dict[str, dict[str, Any]] = {
    "PatientRegistered": {"practice": "A81001", "gp_id": "G1234567"},
    "CaseIdentified": {"criteria": ["frailty"], "risk_score": 0.7},
    "CoordinatorAssigned": {
        "coordinator": {
            "id": "N100",
            "role": "community_nurse",
            "organisation": "RYX01",
            "setting": "community",
        },
    },
    "Admitted": {"encounter_id": "E1", "hospital": "RXH01", "method": "emergency"},
    "Discharged": {"encounter_id": "E1", "destination": "usual_residence"},
    "ContactRecorded": {
        "setting": "community",
        "mode": "home_visit",
        "with": {"id": "N100", "role": "community_nurse", "organisation": "RYX01"},
    },
}


def envelope(
    type_: str = "PatientRegistered",
    *,
    nhs: str = NHS_A,
    at: datetime | str = T0,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
    organisation: str = "A81001",
    setting: str = "primary_care",
    **extra: Any,
) -> dict[str, Any]:
    """A valid JSON envelope (a plain dict, as a publisher would send it)."""
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "type": type_,
        "schema_version": 1,
        "nhs_number": nhs,
        "occurred_at": at if isinstance(at, str) else at.isoformat(),
        "source": {"organisation": organisation, "system": "test-emis", "setting": setting},
        "recorded_by": {"id": "C1234567", "role": "gp"},
        "data": data if data is not None else dict(DEFAULT_DATA[type_]),
        **extra,
    }


def retraction(target: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("nhs", target["nhs_number"])
    return envelope(
        "EventRetracted",
        data={"retracted_event_id": target["event_id"], "reason": "entered in error"},
        **kwargs,
    )


def later(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)
