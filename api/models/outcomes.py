"""Hospitals' HL7 v2 over HTTP, and what publishers can see of their own refusals."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.problems import ProblemField


class AdtMessageResult(BaseModel):
    """One message's outcome, in the order the messages came in the body."""

    index: int = Field(description="0-based position of the message in the body.")
    message_control_id: str | None = Field(description="The message's MSH-10.")
    trigger: str | None = Field(description="MSH-9.2, when it could be read.")
    status: Literal["recorded", "would_record", "duplicate", "conflict", "rejected"]
    event_id: str | None
    position: int | None = Field(
        default=None, description="Ledger position (recorded, or the original of a duplicate)."
    )
    identity_update: bool | None = Field(
        default=None, description="An A08: noted beside the events, no journey event."
    )
    reason: str | None = Field(
        default=None, description="The reasons, as `carejourney adt import` prints them."
    )
    errors: list[ProblemField] | None = None
    notes: list[str] | None = None
    envelope: dict[str, Any] | None = Field(
        default=None, description="Dry run: the envelope the message maps to."
    )


class AdtResult(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dry_run": False,
                    "results": [
                        {
                            "index": 0,
                            "message_control_id": "M1",
                            "trigger": "A01",
                            "status": "recorded",
                            "event_id": "2f1c0e4a-8d4b-5c7e-9a3b-1d2e3f4a5b6c",
                            "position": 1042,
                        },
                        {
                            "index": 1,
                            "message_control_id": "M2",
                            "trigger": "A02",
                            "status": "rejected",
                            "event_id": None,
                            "reason": "PV1-6: no location",
                            "errors": [{"loc": "PV1-6", "msg": "no location"}],
                        },
                    ],
                    "counts": {"recorded": 1, "rejected": 1},
                }
            ]
        }
    )

    dry_run: bool
    results: list[AdtMessageResult]
    counts: dict[str, int]


class Refusal(BaseModel):
    """A refused envelope or message, as kept for its publisher."""

    id: int = Field(description="Row id; the cursor of the next page.")
    received_at: datetime
    organisation: str | None = Field(description="ODS code it is attributed to.")
    channel: Literal["http", "http-adt", "mllp", "adt-import"]
    status: Literal["rejected", "conflict"]
    event_id: str | None
    message_id: str | None = Field(description="The sender's own id (MSH-10 for HL7 v2).")
    trigger: str | None
    reason: str
    errors: list[ProblemField]


class Finding(BaseModel):
    """A data-quality finding about an event the publisher recorded."""

    position: int
    seq: int
    kind: str = Field(description="See docs/projections.md (quality findings).")
    event_id: str
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    detail: str
    organisation: str


class Outcomes(BaseModel):
    """One page of the publisher's outcomes; ``next`` is the ``after`` of the next page."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "refusals",
                    "organisations": ["RXH01"],
                    "refusals": [
                        {
                            "id": 17,
                            "received_at": "2026-03-02T10:16:01Z",
                            "organisation": "RXH01",
                            "channel": "mllp",
                            "status": "rejected",
                            "event_id": None,
                            "message_id": "M2",
                            "trigger": "A02",
                            "reason": "PV1-6: no location",
                            "errors": [{"loc": "PV1-6", "msg": "no location"}],
                        }
                    ],
                    "next": None,
                }
            ]
        }
    )

    kind: Literal["refusals", "findings"]
    organisations: list[str] | None = Field(description="Whose outcomes (None: everyone's).")
    refusals: list[Refusal] | None = None
    findings: list[Finding] | None = None
    next: str | None
