"""The access log as the API shows it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class AccessEntry(BaseModel):
    """One person-level read: who, when, through which endpoint, which person."""

    id: int
    at: datetime
    principal: str = Field(description="The API key's name.")
    role: str
    endpoint: str = Field(description="Method and route template (never an NHS number).")
    patient_id: UUID = Field(description="The ledger's opaque id of the person read.")
    agreement: str | None = Field(
        default=None,
        description="The data-sharing agreement of a FHIR bulk export (null for other reads).",
    )


class AccessLog(BaseModel):
    """One page of entries in the order they were written; pass ``next_after`` as
    ``after`` for the next page (null on the last)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entries": [
                        {
                            "id": 311,
                            "at": "2026-03-04T09:12:44.021Z",
                            "principal": "audit-team",
                            "role": "auditor",
                            "endpoint": "GET /v1/patients/{nhs}/replay",
                            "patient_id": "5b1e2f0a-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
                        }
                    ],
                    "next_after": None,
                }
            ]
        }
    )

    entries: list[AccessEntry]
    next_after: int | None
