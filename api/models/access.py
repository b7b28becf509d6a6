"""The access log as the API shows it."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class AccessEntry(BaseModel):
    """One person-level access: who, when, through which endpoint, which person, and
    what came of it."""

    id: int
    at: datetime
    principal: str = Field(description="The API key's name.")
    role: str
    endpoint: str = Field(description="Method and route template (never an NHS number).")
    patient_id: UUID | None = Field(
        description="The ledger's opaque id of the person read (null when no one person "
        "was resolved: an unknown number, a per-person report, a dashboard view)."
    )
    outcome: str = Field(
        default="read", description="`read`, `refused` (401/403/404/422) or `failed` (5xx)."
    )
    status: int | None = Field(default=None, description="The HTTP status of a refusal.")
    via: str = Field(default="api", description="`api`, `page` or `cli`.")
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
                            "outcome": "read",
                            "status": None,
                            "via": "api",
                        }
                    ],
                    "next_after": None,
                }
            ]
        }
    )

    entries: list[AccessEntry]
    next_after: int | None
