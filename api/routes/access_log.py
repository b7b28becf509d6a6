"""Auditors: ``GET /v1/access-log`` — who read which person's data, when, and how."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from api import access_log, problems
from api.deps import EXAMPLE_NHS, Db, allow, log_reads, valid_nhs
from api.models.access import AccessLog
from api.security import Principal, Role
from api.times import AwareTime
from domain import identity

router = APIRouter(prefix="/v1", tags=["auditors"], responses=problems.KEYED)


class Outcome(StrEnum):
    read = "read"
    refused = "refused"
    failed = "failed"
    all = "all"


Auditor = Annotated[Principal, Depends(allow(Role.AUDITOR, purpose="read the access log"))]


@router.get(
    "/access-log",
    summary="Who read which person's data",
    response_model=AccessLog,
)
def read_access_log(
    request: Request,
    principal: Auditor,
    conn: Db,
    patient: Annotated[
        str | None,
        Query(description="Only reads of this person (NHS number).", examples=[EXAMPLE_NHS]),
    ] = None,
    patient_id: Annotated[
        UUID | None,
        Query(
            description="Only reads of this person (the ledger's patient_id; also finds reads "
            "of people since erased)."
        ),
    ] = None,
    by: Annotated[
        str | None,
        Query(alias="principal", description="Only reads by this principal (API key name)."),
    ] = None,
    since: Annotated[
        AwareTime | None,
        Query(alias="from", description="Reads at or after this time (ISO-8601 with an offset)."),
    ] = None,
    until: Annotated[
        AwareTime | None,
        Query(alias="to", description="Reads before this time (ISO-8601 with an offset)."),
    ] = None,
    outcome: Annotated[
        Outcome,
        Query(description="`read` (default), `refused` attempts, `failed` reads, or `all`."),
    ] = Outcome.read,
    after: Annotated[int, Query(ge=0, le=2**62, description="Entries after this id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> dict[str, Any]:
    """Entries are written by every person-level read, in the same request. Looking a
    person up here by NHS number is itself logged (it reveals they are known); an NHS
    number with no journey simply matches nothing."""
    wanted = patient_id
    if patient is not None:
        resolved = identity.lookup(conn, valid_nhs(patient, "query.patient"))
        if resolved is None:
            return {"entries": [], "next_after": None}
        if wanted is not None and wanted != resolved:
            return {"entries": [], "next_after": None}
        wanted = resolved
        log_reads(conn, request, principal, [resolved])
    rows = access_log.entries(
        conn,
        patient_id=wanted,
        principal=by,
        since=since,
        until=until,
        outcome=None if outcome is Outcome.all else outcome.value,
        after=after,
        limit=limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {"entries": rows, "next_after": rows[-1]["id"] if more else None}
