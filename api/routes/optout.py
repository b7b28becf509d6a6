"""Administrators: the National Data Opt-out register (``domain/optout.py``).

People registered here are left out of every evaluator-facing output (measures, CSV,
dashboard, bulk exports for secondary use) from the next report on; the report's
``opt_out`` says how many were (rounded). Direct care and auditors are not affected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api import problems
from api.deps import EXAMPLE_NHS, Db, NhsPath, allow, valid_nhs
from api.problems import ProblemError
from api.security import Principal
from domain import optout

router = APIRouter(prefix="/v1/optout", tags=["administrators"], responses=problems.KEYED)

Admin = Annotated[Principal, Depends(allow(purpose="manage the opt-out register"))]


class OptOutRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"nhs_numbers": [EXAMPLE_NHS]}]}
    )

    nhs_numbers: list[str] = Field(min_length=1, max_length=100_000)


class OptOutEntry(BaseModel):
    """One registered opt-out."""

    id: int
    nhs_number: str | None = Field(description="Null after the person was erased.")
    patient_id: UUID | None
    added_at: datetime
    source: str


class OptOutList(BaseModel):
    """One page of the register in the order it was written."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entries": [
                        {
                            "id": 1,
                            "nhs_number": EXAMPLE_NHS,
                            "patient_id": "5b1e2f0a-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
                            "added_at": "2026-03-04T09:12:44Z",
                            "source": "api:admin",
                        }
                    ],
                    "total": 1,
                    "next_after": None,
                }
            ]
        }
    )

    entries: list[OptOutEntry]
    total: int
    next_after: int | None


class OptOutChange(BaseModel):
    """What a change did."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"changed": 1, "total": 12}]})

    changed: int = Field(description="Rows added (POST) or removed (DELETE).")
    total: int = Field(description="People in the register now.")


@router.get(
    "",
    summary="The opt-out register",
    response_model=OptOutList,
)
def list_optouts(
    principal: Admin,
    conn: Db,
    after: Annotated[int, Query(ge=0, le=2**62, description="Entries after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> dict[str, Any]:
    """Every opt-out with the NHS number it was registered by (null once the person
    was erased: the opt-out stays by patient id), a page at a time."""
    rows = optout.entries(conn, after, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "entries": rows,
        "total": optout.count(conn),
        "next_after": rows[-1]["id"] if more else None,
    }


@router.post(
    "",
    summary="Register opt-outs",
    response_model=OptOutChange,
)
def add_optouts(body: OptOutRequest, principal: Admin, conn: Db) -> dict[str, Any]:
    """Every number is checked first; one bad number refuses the request (its index is
    named, the number is not echoed)."""
    numbers = []
    errors = []
    for index, number in enumerate(body.nhs_numbers):
        try:
            numbers.append(valid_nhs(number, f"body.nhs_numbers.{index}"))
        except ProblemError as exc:
            errors.extend(exc.errors or [])
    if errors:
        raise ProblemError(
            "validation", "; ".join(f"{e.loc}: {e.msg}" for e in errors[:20]), errors=errors
        )
    changed = optout.add(conn, numbers, source=f"api:{principal.name}")
    return {"changed": changed, "total": optout.count(conn)}


@router.delete(
    "/{nhs}",
    summary="Withdraw an opt-out",
    response_model=OptOutChange,
)
def remove_optout(nhs: NhsPath, principal: Admin, conn: Db) -> dict[str, Any]:
    """The person changed their choice: their data count in reports again."""
    number = valid_nhs(nhs, "path.nhs")
    changed = optout.remove(conn, [number])
    return {"changed": changed, "total": optout.count(conn)}
