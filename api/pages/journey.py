"""The journey page: one person's cross-setting journey (coordinators and auditors).

The person is looked up and checked exactly as ``GET /v1/patients/{nhs}/journey`` does
(``api.deps.person_ref``: a valid NHS number, a registered person, a care relationship
for coordinators) and the read is written to the access log. What is drawn comes from
the live projections (``projections.queries``), which name the position they are at.

An auditor may ask for the journey **as known at** a time K (``known_at``): then the page
is the replay's (``projections.replay``: the same folds over only the events the ledger
had recorded by K, so no read model is involved), and says how many facts were recorded
since. With ``compare`` it shows the journey as known now with every fact recorded after
K marked "recorded later, on <date>" (class ``later``), so "my coordinator changed and
nobody told me" is answered by what the ledger knew when, not what it knows today. In
the as-known view, a fact then standing that a later correction voided carries its
status now ("retracted later").
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api import times
from api.deps import Db, person_ref
from api.pages import journey_chart
from api.pages.render import FromDay, KnownAtText, PageProblem, ToDay, page, query_day
from api.pages.session import SignedIn, require
from api.problems import ProblemError
from api.security import Principal, Role
from domain.nhs_number import is_valid_nhs_number
from projections import queries, runner
from projections.fold import FoldConfig
from projections.replay import replay

router = APIRouter()

WHAT = "person-level journeys"
READERS = (Role.COORDINATOR, Role.AUDITOR)
# "As known at" is the replay's question, which the API answers for auditors (and admins)
# only (``GET /v1/patients/{nhs}/replay``); the page asks it for the same roles.
KNOWN_AT_READERS = (Role.AUDITOR, Role.ADMIN)
_LOCAL_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?")


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
    first: FromDay = None,
    last: ToDay = None,
    known_at: KnownAtText = None,
    compare: Annotated[bool, Query()] = False,
) -> Response:
    """Lanes per setting, spells, the coordinator band, care-plan milestones, events;
    as known now, or (``known_at``) as known at that time (module docstring)."""
    require(principal, *READERS, what=WHAT)
    settings = request.app.state.settings
    zone = settings.zone
    as_known = _known_at(known_at, zone, principal)
    if as_known is not None:
        require(principal, *KNOWN_AT_READERS, what="the journey as known at a past time")
    try:
        person = person_ref(conn, request, principal, nhs)
    except ProblemError as exc:
        raise PageProblem(exc.status, exc.detail or exc.title, principal) from None
    start, end = query_day(first, "from"), query_day(last, "to")
    if start and end and end < start:
        raise PageProblem(422, "to: the last day is before the first", principal)
    live = queries.timeline(conn, person.patient_id, resolved=True)
    recorded_since = 0 if as_known is None else sum(1 for e in live if _later(e, as_known))
    if as_known is not None and not compare:
        events = request.app.state.ledger.history(person.patient_id, known_at=as_known)
        state = replay(
            events,
            known_at=as_known,
            patient_id=person.patient_id,
            config=FoldConfig.from_settings(settings),
        )
        timeline, spells = state["timeline"], state["spells"]
        intervals, plans = state["coordinator_intervals"], state["care_plans"]
        now, projected_to = state["coordinator"], state["position"]
        if not events:
            now = None
        # What the ledger learnt later about a fact it knew then (a retraction, a cancel).
        status_now = {str(e["event_id"]): e["status"] for e in live}
        for entry in timeline:
            later_status = status_now.get(str(entry["event_id"]), entry["status"])
            if later_status != entry["status"]:
                entry["status_later"] = later_status
    else:
        timeline = live
        spells = queries.spells(conn, person.patient_id, resolved=True)
        intervals = queries.coordinator_intervals(conn, person.patient_id, resolved=True)
        plans = queries.care_plans(conn, person.patient_id, zone=zone, resolved=True)
        now = queries.current_coordinator(conn, person.patient_id, resolved=True)
        projected_to = {s["name"]: s["position"] for s in runner.status(conn)}.get("timeline", 0)
    if as_known is not None:
        for entry in timeline:
            entry["recorded_later"] = _later(entry, as_known)
        for interval in intervals:
            interval["recorded_later"] = _later(interval, as_known, "opened_recorded_at")
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
            "projected_to": projected_to,
            "first": first or "",
            "last": last or "",
            "known_at": known_at or "",
            "known_at_value": _input_value(as_known, zone),
            "as_known": as_known,
            "compare": compare and as_known is not None,
            "recorded_since": recorded_since,
            "may_ask_known_at": principal.role in KNOWN_AT_READERS,
            "kinds": journey_chart.KIND_COLOURS,
            "roles": journey_chart.ROLE_COLOURS,
            "methods": journey_chart.METHOD_COLOURS,
        },
        principal=principal,
    )


def _known_at(value: str | None, zone: ZoneInfo, principal: Principal) -> datetime | None:
    """The ``known_at`` of the page: ISO-8601 with an offset, as everywhere in the API,
    or the form's ``datetime-local`` value (no offset), read in the configured zone,
    which is the zone every time on the page is shown in."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return times.aware(text)
    except times.TimeError as exc:
        if not _LOCAL_TIME.fullmatch(text):
            raise PageProblem(422, f"known_at: {exc}", principal) from None
    try:
        return times.aware(datetime.fromisoformat(text).replace(tzinfo=zone))
    except (ValueError, times.TimeError) as exc:
        raise PageProblem(422, f"known_at: {exc}", principal) from None


def _later(row: dict[str, Any], known_at: datetime, column: str = "recorded_at") -> bool:
    """Whether the ledger recorded this fact after ``known_at`` (transaction time)."""
    value = row[column]
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment > known_at


def _input_value(moment: datetime | None, zone: ZoneInfo) -> str:
    """``moment`` as the ``datetime-local`` input shows it (local time, to the second)."""
    if moment is None:
        return ""
    return moment.astimezone(zone).replace(tzinfo=None, microsecond=0).isoformat()
