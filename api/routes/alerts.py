"""Alerts: a coordinator's worklist, acknowledging an alert, and the live stream.

* ``GET /v1/coordinators/{id}/alerts?status=open|closed|all`` pages the alerts read model
  (``projections/worklist.py``) by due time with a cursor;
* ``POST /v1/alerts/{id}/acknowledge`` records ``AlertAcknowledged`` in the ledger (the
  audit trail of who saw what when), through the same append queue as publishing;
* ``GET /v1/coordinators/{id}/alerts/stream`` is Server-Sent Events (sse-starlette) of
  the alert feed (``projections/alert_feed.py``): each change is one event whose ``id``
  is its feed sequence number, so a client reconnecting with ``Last-Event-ID`` (the
  browser's EventSource does it by itself) gets every later change and none twice.

A coordinator key sees the coordinator's alerts held within its own organisations and
those organisations' team queues; auditors and admins see the coordinator's alerts and
the team queues of the organisations the coordinator works in. Every person shown, in a
page or on the stream, is an access-log row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api import acknowledgements, listing, problems
from api.deps import AppenderDep, Db, LedgerDep, allow, log_reads
from api.problems import ProblemError
from api.security import Principal, Role
from domain.contract import TEXT_MAX
from domain.ledger import Ledger
from projections import alert_feed, worklist

router = APIRouter(prefix="/v1", tags=["alerts"], responses=problems.KEYED)

READ = "read a coordinator's alerts"
Reader = Annotated[Principal, Depends(allow(Role.COORDINATOR, Role.AUDITOR, purpose=READ))]
Acknowledger = Annotated[
    Principal, Depends(allow(Role.COORDINATOR, purpose="acknowledge an alert"))
]
CoordinatorId = Annotated[
    str,
    Path(
        alias="id",
        min_length=1,
        max_length=100,
        description="The professional's id, as published in `coordinator.id` or `to.id`.",
        examples=["N100"],
    ),
]
EXAMPLE_ALERT: dict[str, Any] = {
    "alert_id": "5b0d8c1e-3c1f-5e8a-9a41-2f4c9e0d7a11",
    "kind": "admission",
    "coordinator_id": "N100",
    "organisation": "RYX01",
    "team_queue": False,
    "opened_at": "2026-03-02T12:15:00+00:00",
    "opened_recorded_at": "2026-03-02T12:15:03+00:00",
    "opened_position": 3,
    "due": "2026-03-03T12:15:00+00:00",
    "positions": [3],
    "detail": "Admitted (emergency) to RXH01",
    "status": "open",
    "closed_at": None,
    "closed_recorded_at": None,
    "closed_position": None,
    "close_reason": None,
    "acknowledged_at": None,
    "acknowledged_by": None,
    "nhs_number": "9434765919",
}
EXAMPLE_ACK = {
    "status": "recorded",
    "index": 0,
    "event_id": "0f7c2b8e-6a1d-5f4e-8b3a-1c2d3e4f5a6b",
    "position": 4,
    "alert_id": EXAMPLE_ALERT["alert_id"],
    "coordinator_id": "N100",
}
STREAM_POLL_SECONDS = 0.25
STREAM_PING_SECONDS = 15


class AlertPage(BaseModel):
    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "coordinator_id": "N100",
                    "organisations": ["RYX01"],
                    "status": "open",
                    "alerts": [EXAMPLE_ALERT],
                    "next_cursor": None,
                    "projected_to": 3,
                }
            ]
        },
    )

    coordinator_id: str
    organisations: list[str] = Field(description="Whose team queues are included.")
    status: str
    alerts: list[dict[str, Any]]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    projected_to: int


class Acknowledgement(BaseModel):
    """Optional body of an acknowledgement."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"coordinator_id": "N100", "note": "rang the ward"}]},
    )

    coordinator_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Who saw it (default: the alert's coordinator, else the key's name).",
    )
    note: str | None = Field(default=None, min_length=1, max_length=TEXT_MAX)


@router.get(
    "/coordinators/{id}/alerts",
    summary="A coordinator's alerts and their team queue's",
    response_model=AlertPage,
)
def list_alerts(
    request: Request,
    principal: Reader,
    conn: Db,
    coordinator_id: CoordinatorId,
    status: Annotated[
        Literal["open", "closed", "all"], Query(description="Which alerts.")
    ] = "open",
    cursor: Annotated[str | None, Query(max_length=200, description="From `next_cursor`.")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
) -> dict[str, Any]:
    """By due time, soonest first (an alert without a due time by when it opened). An
    alert waiting for a deadline (a referral's wait, a review) shows once it passes."""
    orgs, anywhere = listing.alert_scope(conn, principal, coordinator_id)
    try:
        rows, following = worklist.alerts(
            conn, coordinator_id, orgs, status=status, cursor=cursor, limit=limit, anywhere=anywhere
        )
    except worklist.BadCursor as exc:
        raise ProblemError("validation", f"query.cursor: {exc}") from None
    people = sorted({r["patient_id"] for r in rows})
    numbers = listing.nhs_numbers(conn, people)
    log_reads(conn, request, principal, people)
    return {
        "coordinator_id": coordinator_id,
        "organisations": orgs,
        "status": status,
        "alerts": [_shown(r, numbers) for r in rows],
        "next_cursor": following,
        "projected_to": listing.projected_to(conn, "alerts"),
    }


@router.post(
    "/alerts/{id}/acknowledge",
    summary="Acknowledge an alert (recorded in the ledger)",
    status_code=201,
    responses={
        201: {
            "description": "Recorded.",
            "content": {"application/json": {"example": EXAMPLE_ACK}},
        },
        200: {
            "description": "Already acknowledged by the same caller (a duplicate).",
            "content": {"application/json": {"example": {**EXAMPLE_ACK, "status": "duplicate"}}},
        },
        **problems.responses(404, 409),
    },
)
async def acknowledge(
    request: Request,
    principal: Acknowledger,
    ledger: LedgerDep,
    appender: AppenderDep,
    alert_id: Annotated[UUID, Path(alias="id", description="The alert's id.")],
    body: Annotated[
        Acknowledgement | None,
        Body(
            openapi_examples={
                "note": {"value": {"coordinator_id": "N100", "note": "rang the ward"}},
                "empty": {"value": {}},
            }
        ),
    ] = None,
) -> JSONResponse:
    """Records ``AlertAcknowledged`` (who, when, the alert) as a fact of the person's
    journey; the alert's row shows it once the projections catch up. Acknowledging
    closes only alerts that ask for nothing but being seen (``death``, ``late_arrival``,
    docs/alerts.md). The same caller acknowledging again is a duplicate, not a new fact."""
    try:
        alert, envelope = await run_in_threadpool(
            _prepare,
            ledger,
            principal,
            alert_id,
            body.coordinator_id if body else None,
            body.note if body else None,
        )
    except acknowledgements.NotAcknowledgeable as exc:
        raise ProblemError(exc.kind, exc.detail) from None
    who = envelope["data"]["coordinator_id"]
    earlier = await run_in_threadpool(ledger.event_status, UUID(envelope["event_id"]))
    if earlier is not None:  # the same caller again: the fact is recorded already
        await run_in_threadpool(_log_one, ledger, request, principal, alert["patient_id"])
        duplicate = {
            "status": "duplicate",
            "event_id": envelope["event_id"],
            "position": earlier["position"],
            "alert_id": str(alert_id),
            "coordinator_id": who,
        }
        return JSONResponse(duplicate, status_code=200)
    allowed = None if principal.role is Role.ADMIN else principal.organisations
    result = await appender.append([envelope], allowed, single=True)
    item = result.items[0]
    if item.status in ("rejected", "conflict"):
        kind = "envelope-rejected" if item.status == "rejected" else "conflict"
        raise ProblemError(kind, item.reason(), errors=list(item.errors))
    await run_in_threadpool(_log_one, ledger, request, principal, alert["patient_id"])
    answer = {**item.as_dict(), "alert_id": str(alert_id), "coordinator_id": who}
    return JSONResponse(answer, status_code=201 if item.status == "recorded" else 200)


@router.get(
    "/coordinators/{id}/alerts/stream",
    summary="Live alert changes (Server-Sent Events), resumable with Last-Event-ID",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "example": "id: 7\nevent: opened\ndata: " + json.dumps(EXAMPLE_ALERT) + "\n\n"
                }
            },
            "description": "One event per change.",
        },
    },
)
async def stream(
    request: Request,
    principal: Reader,
    ledger: LedgerDep,
    coordinator_id: CoordinatorId,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="Resume after this event."),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, description="Start after this feed sequence number.")
    ] = None,
) -> EventSourceResponse:
    """Each event: ``id`` the feed sequence number, ``event`` the change (``opened``,
    ``closed``, ``reopened``, ``moved``, ``withdrawn``), ``data`` the alert as JSON
    (with the person's NHS number). Without ``Last-Event-ID`` or ``after`` the stream
    starts with changes from now on."""
    start = after
    if last_event_id is not None:
        try:
            start = int(last_event_id)
        except ValueError:
            raise ProblemError("validation", "header.Last-Event-ID: not an event id") from None
    if start is None:
        start = await run_in_threadpool(_feed_head, ledger)
    return EventSourceResponse(
        _events(request, ledger, principal, coordinator_id, start),
        ping=STREAM_PING_SECONDS,
    )


async def _events(
    request: Request,
    ledger: Ledger,
    principal: Principal,
    coordinator_id: str,
    after: int,
) -> AsyncIterator[ServerSentEvent]:
    while not await request.is_disconnected():
        batch = await run_in_threadpool(
            _next_changes, ledger, request, principal, coordinator_id, after
        )
        for change in batch:
            after = change["seq"]
            yield ServerSentEvent(
                data=json.dumps(change["alert"], default=str),
                event=change["change"],
                id=str(change["seq"]),
            )
        if not batch:
            await asyncio.sleep(STREAM_POLL_SECONDS)


def _next_changes(
    ledger: Ledger,
    request: Request,
    principal: Principal,
    coordinator_id: str,
    after: int,
) -> list[dict[str, Any]]:
    """Sync the feed, read this coordinator's next changes, log the people in them.
    (An admin's team queues are looked up each time: the coordinator may start work in
    another organisation while the stream is open.)"""
    with ledger.connection() as conn:
        alert_feed.sync(conn)
        organisations, anywhere = listing.alert_scope(conn, principal, coordinator_id)
        rows = alert_feed.changes(
            conn,
            after,
            limit=200,
            coordinator_id=coordinator_id,
            organisations=organisations,
            anywhere=anywhere,
        )
        if not rows:
            return []
        people = sorted({r["patient_id"] for r in rows})
        numbers = listing.nhs_numbers(conn, people)
        log_reads(conn, request, principal, people)
        conn.commit()
    return [
        {**r, "alert": {**r["alert"], "nhs_number": numbers.get(r["patient_id"])}} for r in rows
    ]


def _feed_head(ledger: Ledger) -> int:
    with ledger.connection() as conn:
        alert_feed.sync(conn)
        return alert_feed.head(conn)


def _prepare(
    ledger: Ledger,
    principal: Principal,
    alert_id: UUID,
    coordinator_id: str | None,
    note: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    with ledger.connection() as conn:
        return acknowledgements.prepare(conn, principal, alert_id, coordinator_id, note)


def _log_one(ledger: Ledger, request: Request, principal: Principal, patient: UUID) -> None:
    with ledger.connection() as conn:
        log_reads(conn, request, principal, [patient])
        conn.commit()


def _shown(row: dict[str, Any], numbers: dict[UUID, str]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "patient_id"}
    out["nhs_number"] = numbers.get(row["patient_id"])
    return out
