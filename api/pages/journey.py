"""The journey page: one person's cross-setting journey (coordinators and auditors).

The person is looked up and checked exactly as ``GET /v1/patients/{nhs}/journey`` does
(``api.deps.person_ref``: a valid NHS number, a registered person, a care relationship
for coordinators) and the read is written to the access log. What is drawn comes from
the live projections (``projections.queries``), which name the position they are at.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import Db, person_ref
from api.pages import journey_chart
from api.pages.render import PageProblem, page, query_day
from api.pages.session import SignedIn, require
from api.problems import ProblemError
from api.security import Role
from domain.nhs_number import is_valid_nhs_number
from projections import queries, runner

router = APIRouter()

WHAT = "person-level journeys"
READERS = (Role.COORDINATOR, Role.AUDITOR)


@router.get("/journey", response_class=HTMLResponse)
def lookup(
    request: Request, principal: SignedIn, nhs: Annotated[str | None, Query(max_length=20)] = None
) -> Response:
    """The NHS number form; a valid number goes to that person's page."""
    require(principal, *READERS, what=WHAT)
    number = (nhs or "").replace(" ", "")
    if number and is_valid_nhs_number(number):
        return RedirectResponse(f"/pages/journey/{number}", status_code=303)
    error = "That is not a valid NHS number (10 digits, with its check digit)." if nhs else None
    return page(
        request,
        "journey_lookup.html",
        {"error": error},
        principal=principal,
        status=422 if error else 200,
    )


@router.get("/journey/{nhs}", response_class=HTMLResponse)
def journey_page(
    request: Request,
    nhs: str,
    principal: SignedIn,
    conn: Db,
    first: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    last: Annotated[str | None, Query(alias="to", max_length=10)] = None,
) -> Response:
    """Lanes per setting, spells, the coordinator band, care-plan milestones, events."""
    require(principal, *READERS, what=WHAT)
    try:
        person = person_ref(conn, request, principal, nhs)
    except ProblemError as exc:
        raise PageProblem(exc.status, exc.detail or exc.title, principal) from None
    zone = request.app.state.settings.zone
    start, end = query_day(first, "from"), query_day(last, "to")
    if start and end and end < start:
        raise PageProblem(422, "to: the last day is before the first", principal)
    timeline = queries.timeline(conn, person.patient_id, resolved=True)
    spells = queries.spells(conn, person.patient_id, resolved=True)
    intervals = queries.coordinator_intervals(conn, person.patient_id, resolved=True)
    plans = queries.care_plans(conn, person.patient_id, zone=zone, resolved=True)
    now = queries.current_coordinator(conn, person.patient_id, resolved=True)
    positions = {s["name"]: s["position"] for s in runner.status(conn)}
    chart = journey_chart.build(timeline, spells, intervals, plans, zone, start, end)
    return page(
        request,
        "journey.html",
        {
            "nhs": person.nhs_number,
            "chart": chart,
            "timeline": timeline,
            "spells": spells,
            "plans": plans,
            "now": now,
            "intervals": intervals,
            "handoffs": sum(1 for i in intervals if i["opened_by_type"] == "CoordinatorHandedOff"),
            "projected_to": positions.get("timeline", 0),
            "first": first or "",
            "last": last or "",
            "kinds": journey_chart.KIND_COLOURS,
            "roles": journey_chart.ROLE_COLOURS,
            "methods": journey_chart.METHOD_COLOURS,
        },
        principal=principal,
    )
