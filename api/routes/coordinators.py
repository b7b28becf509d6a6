"""Coordinators and care teams: who coordinates, the journey, care plans, caseloads and
the people without a named coordinator.

These read the live projections (``projections/queries.py``), which follow the ledger a
little behind; each answer names the projection position it reflects (``position`` or
``projected_to``). A coordinator key reads only people its organisations have a care
relationship with (``api/care_relationship.py``): others are 403 on person endpoints and
left out of lists. Auditors read every person's coordinator, journey and care plans;
admins read everyone. Every person shown, on a list too, is one access-log row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from psycopg import Connection

from api import listing, problems
from api.care_relationship import related
from api.deps import Db, PersonRead, allow, log_reads, person_read
from api.models import example
from api.models.coordination import (
    CarePlans,
    Caseload,
    CoordinatorAsOf,
    CoordinatorHistory,
    CoordinatorNow,
    Journey,
    Unassigned,
)
from api.problems import ProblemError
from api.security import Principal, Role
from api.times import AsOf
from projections import queries

router = APIRouter(prefix="/v1", tags=["coordinators"], responses=problems.KEYED)
# One person's views (included in ``router`` below them): each is 404 for a person with no
# journey, or one the projections have not reached yet.
person_views = APIRouter(prefix="/patients/{nhs}", responses=problems.responses(404))

PURPOSE = "read person-level coordination data"
# Auditors read every person's coordination views (each read in the access log like any
# other): "my coordinator changed and nobody told me" is answered from these.
CaredFor = Annotated[
    PersonRead, Depends(person_read(Role.COORDINATOR, Role.AUDITOR, purpose=PURPOSE))
]
CoordinatorKey = Annotated[Principal, Depends(allow(Role.COORDINATOR, purpose=PURPOSE))]


_example = example


NOT_PROJECTED = (
    "this person is not in the projections yet (they follow the ledger; see /readyz for the lag)"
)


@person_views.get(
    "/coordinator",
    summary="Who coordinates the person (now, or at a time)",
    response_model=CoordinatorNow | CoordinatorAsOf,
    responses={
        200: {
            "content": {
                "application/json": {
                    "examples": {
                        "now": {"summary": "Now", "value": _example(CoordinatorNow)},
                        "as_of": {"summary": "With as_of", "value": _example(CoordinatorAsOf)},
                    }
                }
            }
        }
    },
)
async def coordinator(
    person: CaredFor,
    as_of: AsOf = None,
) -> dict[str, Any]:
    """The named coordinator, or the registered practice when nobody is named (``named``
    false). With ``as_of``: the interval that held at that occurred time, as the ledger
    knows it now (an auditor's "as known at" question is ``/replay``)."""

    def read(conn: Connection[Any], patient: UUID) -> dict[str, Any] | None:
        if as_of is None:
            return queries.current_coordinator(conn, patient, resolved=True)
        return queries.coordinator_as_of(conn, patient, as_of, resolved=True)

    answer = await person.fetch(read)
    if answer is None:
        raise ProblemError("not-found", NOT_PROJECTED)
    return answer


@person_views.get(
    "/coordinator/history",
    summary="Every coordinator interval, with who recorded each change, why, and when",
    response_model=CoordinatorHistory,
)
async def coordinator_history(person: CaredFor) -> dict[str, Any]:
    """Each interval of "who coordinates" in order, with the event that opened it (and
    closed it): its position (the key into the person's audit bundle), the publishing
    organisation and system, who recorded it at the source, the reason given, and both
    clocks (``valid_from`` when it occurred, ``opened_recorded_at`` when the ledger
    learnt of it). "My coordinator changed and nobody told me" starts here."""

    def parts(conn: Connection[Any], patient: UUID) -> dict[str, Any]:
        if queries.current_coordinator(conn, patient, resolved=True) is None:
            raise ProblemError("not-found", NOT_PROJECTED)
        return {"intervals": queries.coordinator_intervals(conn, patient, resolved=True)}

    return await _view(person, "coordinators", parts)


@person_views.get(
    "/journey",
    summary="The person's cross-setting timeline and admission spells",
    response_model=Journey,
)
async def journey(person: CaredFor) -> dict[str, Any]:
    """Every event in occurred order with its lane (setting), a one-line summary, source,
    both clocks, ledger position and status (retracted and cancelled events stay,
    marked); and each admission spell with its transfers and length of stay."""

    def parts(conn: Connection[Any], patient: UUID) -> dict[str, Any]:
        handoffs = queries.handoff_count(conn, patient, resolved=True)
        if handoffs is None:
            raise ProblemError("not-found", NOT_PROJECTED)
        return {
            "timeline": queries.timeline(conn, patient, resolved=True),
            "spells": queries.spells(conn, patient, resolved=True),
            "handoffs": handoffs["handoffs"],
        }

    return await _view(person, "timeline", parts)


@person_views.get("/care-plans", summary="The person's care plans", response_model=CarePlans)
async def care_plans(person: CaredFor) -> dict[str, Any]:
    """Each personalised care plan: status, goals, reviews, and whether its review is
    overdue today (in the configured zone)."""

    return await _view(
        person,
        "care_plans",
        lambda conn, patient: {"plans": queries.care_plans(conn, patient, resolved=True)},
    )


router.include_router(person_views)


@router.get(
    "/coordinators/{id}/caseload",
    summary="A coordinator's caseload",
    response_model=Caseload,
)
def caseload(
    request: Request,
    principal: CoordinatorKey,
    conn: Db,
    coordinator_id: Annotated[
        str,
        Path(
            alias="id",
            min_length=1,
            max_length=100,
            description="The professional's or team's id, as published in `coordinator.id` "
            "or `to.id`.",
            examples=["N100"],
        ),
    ],
) -> dict[str, Any]:
    """The people this professional is the named coordinator of now (open journeys),
    longest-held first. A coordinator key sees the caseload held within its own
    organisations."""
    rows = queries.caseload(conn, coordinator_id)
    if principal.role is Role.COORDINATOR:
        mine = [r for r in rows if r["organisation"] in principal.organisations]
        if rows and not mine:
            raise ProblemError(
                "forbidden",
                f"coordinator {coordinator_id} works for another organisation than yours",
            )
        rows = mine
    return {
        "coordinator_id": coordinator_id,
        "people": _shown(conn, request, principal, rows),
        "projected_to": listing.projected_to(conn, "coordinators"),
    }


@router.get(
    "/unassigned",
    summary="People with an open journey and no named coordinator",
    response_model=Unassigned,
)
def unassigned(
    request: Request,
    principal: CoordinatorKey,
    conn: Db,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Skip this many.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> dict[str, Any]:
    """Longest without a named coordinator first ("falling through the gaps"); the
    practice default does not count as named. A coordinator key sees only people its
    organisations have a care relationship with."""
    if principal.role is Role.COORDINATOR:
        rows = queries.unassigned(conn)
        mine = related(
            conn,
            (UUID(r["patient_id"]) for r in rows),
            principal.organisations,
            request.app.state.settings.care_relationship_days,
        )
        rows = [r for r in rows if UUID(r["patient_id"]) in mine]
    else:
        rows = queries.unassigned(conn, limit=offset + limit + 1)
    page = rows[offset : offset + limit]
    more = len(rows) > offset + limit
    return {
        "people": _shown(conn, request, principal, page),
        "next_offset": offset + limit if more else None,
        "projected_to": listing.projected_to(conn, "coordinators"),
    }


async def _view(
    person: PersonRead,
    projection: str,
    parts: Callable[[Connection[Any], UUID], dict[str, Any]],
) -> dict[str, Any]:
    """One person's view, read in the person read's one transaction: who it is of, its
    ``parts``, and the position of the projection it was read from (``projected_to``)."""

    def read(conn: Connection[Any], patient: UUID) -> dict[str, Any]:
        return {
            "patient_id": patient,
            **parts(conn, patient),
            "projected_to": listing.projected_to(conn, projection),
        }

    return await person.fetch(read)


def _shown(
    conn: Connection[Any], request: Request, principal: Principal, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows of people the register still identifies, each with its NHS number, and
    each shown person's read in the access log: an erased person (no NHS number any
    more) is on no list, rather than shown with a null number."""
    numbers = listing.nhs_numbers(conn, [UUID(r["patient_id"]) for r in rows])
    kept = [r for r in rows if UUID(r["patient_id"]) in numbers]
    people = [UUID(r["patient_id"]) for r in kept]
    log_reads(conn, request, principal, people)
    return [{**r, "nhs_number": numbers[p]} for r, p in zip(kept, people, strict=True)]
