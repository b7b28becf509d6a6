"""The publisher's outcomes page: what happened to what the organisation sent.

The same rows, order and cursor as ``GET /v1/publishers/me/outcomes``
(``consumers/publisher_outcomes.py``), so an integration engineer can read the page beside the
API: the refusals with their reasons and the sender's message ids, and the data-quality
findings about the organisation's recorded events. Publishers see their organisations'
outcomes, admins everyone's.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import LedgerDep
from api.pages.render import page
from api.pages.session import SignedIn, require
from api.security import Role
from consumers import publisher_outcomes as outcomes

router = APIRouter()

PAGE = 50


@router.get("/outcomes", response_class=HTMLResponse)
def outcomes_page(
    request: Request,
    principal: SignedIn,
    ledger: LedgerDep,
    kind: Annotated[Literal["refusals", "findings"], Query()] = "refusals",
    after: Annotated[str | None, Query(max_length=40, pattern=r"^[0-9:]+$")] = None,
) -> Response:
    """Refusals (with reasons and the sender's message ids) or data-quality findings."""
    require(principal, Role.PUBLISHER, what="publisher outcomes")
    organisations = None if principal.role is Role.ADMIN else principal.organisations
    parts = [int(p) for p in (after or "").split(":") if p]
    if kind == "refusals":
        rows = outcomes.refusals(ledger, organisations, parts[0] if parts else 0, PAGE)
        following = str(rows[-1]["id"]) if len(rows) == PAGE else None
    else:
        start = (parts[0], parts[1]) if len(parts) == 2 else (-1, -1)
        rows = outcomes.findings(ledger, organisations, start, PAGE)
        following = f"{rows[-1]['position']}:{rows[-1]['seq']}" if len(rows) == PAGE else None
    return page(
        request,
        "outcomes.html",
        {
            "kind": kind,
            "rows": rows,
            "next": following,
            "organisations": None if organisations is None else sorted(organisations),
        },
        principal=principal,
    )
