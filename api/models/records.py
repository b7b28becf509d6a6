"""A person's recorded events and their chain verification, as auditors see them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from api.models.events import EXAMPLE_ENVELOPE

EXAMPLE_PATIENT = "5b1e2f0a-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
# The stored form of the publishing example: what the ledger keeps of that envelope.
EXAMPLE_RECORD: dict[str, Any] = {
    "position": 1042,
    "event_id": EXAMPLE_ENVELOPE["event_id"],
    "patient_id": EXAMPLE_PATIENT,
    "version": 3,
    **{k: v for k, v in EXAMPLE_ENVELOPE.items() if k not in ("event_id", "nhs_number")},
    "recorded_at": "2026-03-02T10:15:02.113000+00:00",
    "hash": "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c1b3d5f7e9a1c3b5d7f9e1a3c5b7d9f1e",
    "prev_hash": "1e3c5a7b9d1f3e5c7a9b1d3f5e7c9a1b3d5f7e9c1a3b5d7f9e1c3a5b7d9f1e3c",
}


class Record(BaseModel):
    """One recorded event exactly as the ledger holds it, with both clocks and hashes."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RECORD]})

    position: int = Field(description="Global ledger position (gaps are normal).")
    event_id: UUID
    patient_id: UUID = Field(
        description="The stream it was recorded on (a merged person's events keep their own)."
    )
    version: int
    type: str
    schema_version: int
    occurred_at: datetime = Field(description="When it happened (publisher's clock).")
    recorded_at: datetime = Field(description="When the ledger recorded it (ledger's clock).")
    source: dict[str, Any]
    recorded_by: dict[str, Any] | None
    data: dict[str, Any]
    hash: str
    prev_hash: str | None


class PatientRecords(BaseModel):
    """One page of a person's events in position order; ``next_after`` is the position to
    pass as ``after`` for the next page (null on the last page)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patient_id": EXAMPLE_PATIENT,
                    "events": [EXAMPLE_RECORD],
                    "next_after": None,
                }
            ]
        }
    )

    patient_id: UUID
    events: list[Record]
    next_after: int | None


class ChainBreak(BaseModel):
    event_id: UUID | None
    position: int | None
    reason: str
    expected: str | None = None
    found: str | None = None


class ChainHead(BaseModel):
    """The person's last event as the ledger keeps it apart from the events."""

    version: int
    hash: str
    position: int


class Verification(BaseModel):
    """The person's hash chain recomputed from storage; ``ok`` false names the first
    broken link."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "patient_id": EXAMPLE_PATIENT,
                    "ok": True,
                    "events": 12,
                    "break": None,
                    "head": {
                        "version": 12,
                        "position": 1042,
                        "hash": "c0ffee0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
                    },
                }
            ]
        }
    )

    patient_id: UUID
    ok: bool
    events: int
    break_: ChainBreak | None = Field(alias="break", serialization_alias="break")
    head: ChainHead | None = Field(
        description="Null if the person's head row is missing (itself a break)."
    )
