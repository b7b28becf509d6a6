"""Hospitals and other publishers testing safely and seeing what happened to what they
sent: ``POST /v1/adt`` (raw HL7 v2, ``?dry_run=true`` writes nothing) and
``GET /v1/publishers/me/outcomes`` (their refusals and data-quality findings, paged).

``POST /v1/adt`` takes the body as an interface engine would send a file: one or more
ER7 messages (segments ended by ``\\r``, ``\\n`` or ``\\r\\n``), mapped and recorded exactly
as ``carejourney adt import`` does (docs/adt.md), in one ledger transaction. A publisher
key may only publish for its own organisations: a message whose sending facility maps to
another ODS code is rejected (``not authorised to publish for organisation ...``). The
answer is 200 with one result per message in body order; refusals are kept for
``/outcomes``. With ``dry_run=true`` each result says what would happen (``would_record``
with the envelope as mapped, ``duplicate``, ``conflict`` or ``rejected`` with the reason)
and nothing is written.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from api import problems
from api.deps import LedgerDep, SettingsDep, allow
from api.models.outcomes import AdtResult, Outcomes
from api.problems import ProblemError
from api.security import Principal, Role
from consumers import publisher_outcomes as outcomes
from consumers.adt_ingest import append_messages, preview_messages
from consumers.hl7v2 import split_messages
from domain.contract import FieldError
from domain.ledger import Ledger
from domain.settings import Settings

router = APIRouter(tags=["publishers"], responses=problems.KEYED)

Publisher = Annotated[Principal, Depends(allow(Role.PUBLISHER, purpose="publish events"))]
OutcomeReader = Annotated[
    Principal, Depends(allow(Role.PUBLISHER, purpose="read publisher outcomes"))
]
EXAMPLE_MESSAGE = (
    "MSH|^~\\&|PAS|RXH|CAREJOURNEY|NHS|20260302101600||ADT^A01^ADT_A01|M1|P|2.4\r"
    "EVN|A01|||||20260302101500\r"
    "PID|1||X1^^^RXH^MR~9434765919^^^NHS^NH||DOE^JANE||19400101|F\r"
    "PV1|1|I|WARD7^R2^B3|21|||||||||||||||V100\r"
)
ADT_BODY: dict[str, Any] = {
    "required": True,
    "description": "One or more HL7 v2 ER7 messages, each starting with its MSH segment. "
    "The body is read as it is whatever its content type (`text/plain`, "
    "`application/hl7-v2`, `x-application/hl7-v2+er7`).",
    "content": {"text/plain": {"schema": {"type": "string"}, "example": EXAMPLE_MESSAGE}},
}


@router.post(
    "/v1/adt",
    summary="Publish (or dry-run) raw HL7 v2 ADT messages",
    response_model=AdtResult,
    responses=problems.responses(413),
    openapi_extra={"requestBody": ADT_BODY},
)
async def publish_adt(
    request: Request,
    principal: Publisher,
    ledger: LedgerDep,
    settings: SettingsDep,
    dry_run: Annotated[
        bool, Query(description="Write nothing: say what each message would give.")
    ] = False,
) -> JSONResponse:
    """Map each message as `carejourney adt import` does and record (or preview) them."""
    body = await request.body()
    messages = split_messages(body)
    problems.batch_size(
        len(messages),
        settings.batch_max,
        empty=("no HL7 v2 message (a message starts with an MSH segment)", "no MSH segment"),
        too_many="at most {most} messages per request; this one has {count}",
    )
    allowed = None if principal.role is Role.ADMIN else principal.organisations
    call = partial(_run, ledger, messages, settings, allowed, dry_run)
    results = await anyio.to_thread.run_sync(call)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.shown_status] = counts.get(result.shown_status, 0) + 1
    return JSONResponse(
        {"dry_run": dry_run, "results": [r.as_dict() for r in results], "counts": counts}
    )


def _run(
    ledger: Ledger,
    messages: list[str],
    settings: Settings,
    allowed: frozenset[str] | None,
    dry_run: bool,
) -> list[Any]:
    if dry_run:
        return preview_messages(ledger, messages, settings, allowed_organisations=allowed)
    results = append_messages(ledger, messages, settings, allowed_organisations=allowed)
    fallback = min(allowed) if allowed else None
    outcomes.record(
        ledger, outcomes.of_messages(results, messages, settings, "http-adt", fallback=fallback)
    )
    return results


@router.get(
    "/v1/publishers/me/outcomes",
    summary="Your refusals and data-quality findings",
    response_model=Outcomes,
)
def publisher_outcomes(
    principal: OutcomeReader,
    ledger: LedgerDep,
    kind: Annotated[
        Literal["refusals", "findings"],
        Query(description="refusals: rejected and conflicting; findings: data quality."),
    ] = "refusals",
    after: Annotated[
        str | None,
        Query(max_length=40, description="The `next` of the previous page.", pattern=r"^[0-9:]+$"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """What happened to what you sent: refused envelopes and messages (every way in but
    Kafka, whose refusals go to its dead-letter topic) with their reasons and your own
    message ids, and the data-quality findings about your recorded events. Oldest first;
    follow `next`. A publisher sees its organisations' outcomes; an admin everyone's."""
    organisations = None if principal.role is Role.ADMIN else principal.organisations
    shown = None if organisations is None else sorted(organisations)
    if kind == "refusals":
        start = _cursor(after, 1)[0]
        rows = outcomes.refusals(ledger, organisations, start, limit)
        for row in rows:
            row["event_id"] = None if row["event_id"] is None else str(row["event_id"])
        following = str(rows[-1]["id"]) if len(rows) == limit else None
        return {"kind": kind, "organisations": shown, "refusals": rows, "next": following}
    position, seq = _cursor(after, 2)
    rows = outcomes.findings(ledger, organisations, (position, seq), limit)
    for row in rows:
        row["event_id"] = str(row["event_id"])
    following = f"{rows[-1]['position']}:{rows[-1]['seq']}" if len(rows) == limit else None
    return {"kind": kind, "organisations": shown, "findings": rows, "next": following}


def _cursor(after: str | None, parts: int) -> list[int]:
    if not after:
        return [-1] * parts if parts > 1 else [0]
    values = after.split(":")
    if len(values) != parts or not all(v.isdigit() for v in values):
        raise ProblemError(
            "validation",
            "after: not a cursor of this kind (use the previous page's `next`)",
            errors=[FieldError("after", "not a cursor of this kind")],
        )
    return [int(v) for v in values]
