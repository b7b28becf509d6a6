"""The coordinator's home page: a worklist (docs/pages.md, docs/alerts.md).

Open alerts by due time (the coordinator's and their organisations' team queues), each
with an *Acknowledge* button that records ``AlertAcknowledged`` in the ledger; the
caseload, each person with their last contact, next care-plan review and open hospital
spell; and the team's unassigned queue (open journeys at the organisations' practices
with nobody named). The coordinator is the key's name unless ``?coordinator=`` names
another professional of the same organisations. Every person shown is an access-log row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from psycopg import Connection
from starlette.concurrency import run_in_threadpool

from api import acknowledgements, listing
from api.deps import Db, log_reads
from api.pages.render import PageProblem, page
from api.pages.session import SignedIn, form_fields, require, same_origin
from api.security import Principal, Role
from projections import worklist

router = APIRouter()

CASELOAD = """
    SELECT s.patient_id, s.since, r.nhs_number,
           (SELECT max(c.occurred_at) FROM evaluation_contacts c
             WHERE c.patient_id = s.patient_id) AS last_contact,
           (SELECT min(p.review_due) FROM care_plan_status p
             WHERE p.patient_id = s.patient_id AND p.status = 'active') AS next_review,
           (SELECT min(a.hospital) FROM admission_spells a
             WHERE a.patient_id = s.patient_id AND a.status = 'open') AS in_hospital
      FROM coordination_status s
      LEFT JOIN identity_register r ON r.patient_id = s.patient_id
     WHERE s.coordinator_id = %(who)s AND s.named AND s.journey = 'open'
       AND s.organisation = ANY(%(orgs)s)
     ORDER BY s.since, s.patient_id
"""
QUEUE = """
    SELECT s.patient_id, s.unnamed_since, s.practice, r.nhs_number
      FROM coordination_status s
      LEFT JOIN identity_register r ON r.patient_id = s.patient_id
     WHERE s.journey = 'open' AND NOT s.named AND s.practice = ANY(%(orgs)s)
     ORDER BY s.unnamed_since, s.patient_id
     LIMIT 200
"""


def coordinator_of(principal: Principal, asked: str | None) -> str:
    return (asked or principal.name).strip()[:100]


def worklist_page(
    request: Request, principal: Principal, conn: Connection[Any], asked: str | None
) -> Response:
    who = coordinator_of(principal, asked)
    orgs, anywhere = listing.alert_scope(conn, principal, who)
    alerts, _ = worklist.alerts(
        conn,
        who,
        orgs,
        now=datetime.now(UTC),
        status="open",
        limit=200,
        anywhere=anywhere,
    )
    numbers = listing.nhs_numbers(conn, [a["patient_id"] for a in alerts])
    caseload = conn.execute(CASELOAD, {"who": who, "orgs": orgs}).fetchall()
    queue = conn.execute(QUEUE, {"orgs": orgs}).fetchall()
    people = {a["patient_id"] for a in alerts} | {r["patient_id"] for r in [*caseload, *queue]}
    log_reads(conn, request, principal, sorted(people))
    return page(
        request,
        "worklist.html",
        {
            "coordinator": who,
            "organisations": orgs,
            "alerts": [{**a, "nhs_number": numbers.get(a["patient_id"])} for a in alerts],
            "caseload": caseload,
            "queue": queue,
            "done": request.query_params.get("done"),
        },
        principal=principal,
    )


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(request: Request, alert_id: UUID, principal: SignedIn) -> Response:
    """The page's Acknowledge button: records the fact, then back to the worklist."""
    require(principal, Role.COORDINATOR, what="acknowledging alerts")
    if not same_origin(request):
        raise PageProblem(403, "acknowledge from this site's own page", principal)
    form = await form_fields(request)
    who = form.get("coordinator", "").strip()[:100] or None
    ledger = request.app.state.ledger
    await run_in_threadpool(_record, ledger, principal, alert_id, who)
    back = f"/pages/?done={alert_id}" + (f"&coordinator={who}" if who else "")
    return RedirectResponse(back, status_code=303)


def _record(ledger: Any, principal: Principal, alert_id: UUID, who: str | None) -> None:
    with ledger.connection() as conn:
        try:
            _alert, envelope = acknowledgements.prepare(conn, principal, alert_id, who)
        except acknowledgements.NotAcknowledgeable as exc:
            status = {"not-found": 404, "forbidden": 403}.get(exc.kind, 409)
            raise PageProblem(status, exc.detail, principal) from None
    result = ledger.append_batch([envelope], allowed_organisations=principal.organisations)
    item = result.items[0]
    if item.status not in ("recorded", "duplicate"):
        raise PageProblem(422, item.reason(), principal)


def home_context(principal: Principal) -> bool:
    """Coordinators' home page is the worklist."""
    return principal.role is Role.COORDINATOR


Asked = Annotated[str | None, Query(alias="coordinator", max_length=100)]
__all__ = ["Asked", "Db", "home_context", "router", "worklist_page"]
