"""Publishers: ``POST /v1/events`` (one envelope or a batch) and an event's status.

One envelope (a JSON object) is answered by its own status code: 201 recorded, 200
duplicate (original position), 409 conflict, 422 rejected with every field error, 403 if
its ``source.organisation`` is not one of the caller's. A batch (a JSON array of 1 to
``CAREJOURNEY_BATCH_MAX`` envelopes, default 5,000) is one ``Ledger.append_batch``:
200 with each item's outcome in request order, valid items recorded in one transaction
even when others are refused. Bodies over ``CAREJOURNEY_API_MAX_BODY_BYTES`` (default
10 MiB) and batches over the maximum get 413.

The body must be sent as ``application/json`` (else 415) and is parsed once, strictly:
an object with the same key twice (two ``nhs_number`` keys: which one did the publisher
mean?) and ``NaN``/``Infinity`` are refused with 422 rather than silently resolved.
It is then judged by the domain contract only; FastAPI does not validate it, so every
door of the ledger refuses the same things with the same messages. Appends go through
the process's queue (``api/appends.py``): one transaction at a time, single envelopes
posted meanwhile sharing the next one.
Refused envelopes are kept (reasons, not content) for ``/v1/publishers/me/outcomes``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from api import metrics, problems
from api.appends import Appender
from api.deps import AppenderDep, LedgerDep, SettingsDep, allow
from api.models import example
from api.models.events import EXAMPLE_ENVELOPE, EXAMPLE_REGISTERED, BatchResult, EventStatus
from api.openapi import component_ref
from api.problems import ProblemError
from api.security import Principal, Role
from consumers import publisher_outcomes as outcomes
from domain.contract import FieldError
from domain.ledger import BatchResult as LedgerBatch
from domain.ledger import row_json

router = APIRouter(prefix="/v1/events", tags=["publishers"], responses=problems.KEYED)

Publisher = Annotated[Principal, Depends(allow(Role.PUBLISHER, purpose="publish events"))]
StatusReader = Annotated[
    Principal, Depends(allow(Role.PUBLISHER, Role.AUDITOR, purpose="read event status"))
]

REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "One envelope (a JSON object) or a batch (a JSON array of envelopes).",
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/Envelope"},
                    {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Envelope"},
                        "minItems": 1,
                        "maxItems": 5000,
                    },
                ]
            },
            "examples": {
                "one": {"summary": "One envelope", "value": EXAMPLE_ENVELOPE},
                "batch": {"summary": "A batch", "value": [EXAMPLE_REGISTERED, EXAMPLE_ENVELOPE]},
            },
        }
    },
}

PUBLISH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A batch's per-item outcomes, or one envelope already recorded "
        "(duplicate, with its original position).",
        "content": {
            "application/json": {
                "schema": {"anyOf": [component_ref("BatchResult"), component_ref("ItemResult")]},
                "examples": {
                    "batch": {"value": example(BatchResult)},
                    "duplicate": {
                        "value": {
                            "index": 0,
                            "event_id": EXAMPLE_ENVELOPE["event_id"],
                            "status": "duplicate",
                            "position": 1042,
                        }
                    },
                },
            }
        },
    },
    201: {
        "description": "One envelope, recorded.",
        "content": {
            "application/json": {
                "schema": component_ref("ItemResult"),
                "example": {
                    "index": 0,
                    "event_id": EXAMPLE_ENVELOPE["event_id"],
                    "status": "recorded",
                    "position": 1042,
                },
            }
        },
    },
    **problems.responses(409, 413, 415),
}


@router.post(
    "",
    summary="Publish one envelope or a batch",
    status_code=200,
    response_model=None,
    responses=PUBLISH_RESPONSES,
    openapi_extra={"requestBody": REQUEST_BODY},
)
async def publish(
    request: Request, principal: Publisher, appender: AppenderDep, settings: SettingsDep
) -> JSONResponse:
    """Append facts to the ledger with the ledger's batch semantics (see the module doc)."""
    _json_content_type(request.headers.get("content-type"))
    payload = strict_json(await request.body())
    allowed = None if principal.role is Role.ADMIN else principal.organisations
    if isinstance(payload, list):
        problems.batch_size(
            len(payload),
            settings.batch_max,
            empty=("a batch needs at least one envelope", "empty batch"),
            too_many="a batch holds at most {most} envelopes; this one has {count}",
        )
        result = await appender.append(payload, allowed)
        _count(result)
        await _keep_refusals(appender, result, payload, allowed)
        counts = result.counts()
        return JSONResponse({"results": [i.as_dict() for i in result.items], "counts": counts})
    if not isinstance(payload, dict):
        raise ProblemError(
            "validation",
            "body: send one envelope (an object) or an array",
            errors=[FieldError("body", "not an object or an array")],
        )
    organisation = (
        (payload.get("source") or {}).get("organisation")
        if isinstance(payload.get("source"), dict)
        else None
    )
    if allowed is not None and isinstance(organisation, str) and organisation not in allowed:
        raise ProblemError(
            "forbidden", f"not authorised to publish for organisation {organisation[:10]}"
        )
    result = await appender.append([payload], allowed, single=True)
    _count(result)
    await _keep_refusals(appender, result, [payload], allowed)
    item = result.items[0]
    if item.status == "rejected":
        raise ProblemError("envelope-rejected", item.reason(), errors=list(item.errors))
    if item.status == "conflict":
        raise ProblemError("conflict", item.reason(), errors=list(item.errors))
    return JSONResponse(item.as_dict(), status_code=201 if item.status == "recorded" else 200)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"the key {key[:40]!r} appears twice in one object")
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(body: bytes) -> Any:
    """The body as JSON, refusing duplicate keys and non-standard constants (422)."""
    try:
        return json.loads(body, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as exc:
        raise ProblemError(
            "validation", f"body: {exc}", errors=[FieldError("body", str(exc))]
        ) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        message = f"not valid JSON: {str(exc)[:200]}"
        raise ProblemError(
            "validation", f"body: {message}", errors=[FieldError("body", message)]
        ) from None


def _json_content_type(value: str | None) -> None:
    """``application/json`` or a ``+json`` type, with parameters; anything else 415."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    shown = media[:60] if media else "missing"
    raise ProblemError(
        "unsupported-media-type",
        f"send the body as application/json (Content-Type was {shown})",
        headers={"Accept-Post": "application/json"},
    )


async def _keep_refusals(
    appender: Appender, result: LedgerBatch, payloads: list[Any], allowed: Any
) -> None:
    """Refusals are kept for the publisher (consumers/publisher_outcomes.py)."""
    refused = outcomes.of_items(result.items, payloads, allowed)
    if refused:
        await anyio.to_thread.run_sync(outcomes.record, appender.ledger, refused)


def _count(result: LedgerBatch) -> None:
    counts = result.counts()
    metrics.APPENDED.inc(counts["recorded"])
    for status, n in counts.items():
        if n:
            metrics.PUBLISHED.labels(status).inc(n)


@router.get(
    "/{event_id}",
    summary="Status of an event you published",
    response_model=EventStatus,
    responses=problems.responses(404),
)
def event_status(
    event_id: Annotated[
        UUID, Path(description="The envelope's event_id.", examples=[EXAMPLE_ENVELOPE["event_id"]])
    ],
    principal: StatusReader,
    ledger: LedgerDep,
) -> dict[str, Any]:
    """Where a recorded event sits in the ledger. Rejected envelopes are not kept, so
    they are 404 here; a publisher sees only events of its own organisations."""
    row = ledger.event_status(event_id)
    if row is None:
        raise ProblemError(
            "not-found", "no event with this id has been recorded (rejected envelopes are not kept)"
        )
    if (
        principal.role is Role.PUBLISHER
        and row["source_organisation"] not in principal.organisations
    ):
        raise ProblemError("forbidden", "this event was published by another organisation")
    return {
        "event_id": str(event_id),
        "status": "recorded",
        **row_json(
            row, "position", "type", "occurred_at", "recorded_at", "source_organisation", "hash"
        ),
    }
