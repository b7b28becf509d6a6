"""FHIR R4 out: a person's Bundle, and the Bulk Data export for evaluators (docs/fhir.md).

``GET /v1/patients/{nhs}/fhir`` is a person read like the others (auditors, and
coordinators for people in a care relationship; the access-log row is written first),
computed from the recorded events like the replay, with ``as_of`` / ``known_at``.

``GET /v1/fhir/$export`` follows the FHIR Bulk Data kick-off: ``Prefer: respond-async``
required, ``_type`` optional, 202 with ``Content-Location`` naming the status URL. The
status URL answers 202 with ``X-Progress`` while running, 200 with the manifest when
done (``DELETE`` cancels); the files are NDJSON, one per resource type. It needs a key
with an explicit export right: an evaluator (or admin) key created with
``--export-agreement REF``; the agreement is written to the access log with every
exported person. Errors are this API's RFC 9457 problems, as everywhere else.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from api import fhir_exports, problems
from api.deps import LedgerDep, PersonRef, SettingsDep, allow, person_opened
from api.problems import ProblemError
from api.security import Principal, Role
from api.times import AsOf, KnownAt
from domain.contract import FieldError
from projections.fhir.bundle import CONTENT_TYPE, person_bundle
from projections.fhir.export import NDJSON, check_types
from projections.fhir.resources import Subject
from projections.fold import FoldConfig

router = APIRouter(tags=["fhir"], responses=problems.KEYED)

Reader = Annotated[
    PersonRef,
    Depends(person_opened(Role.AUDITOR, Role.COORDINATOR, purpose="read person-level records")),
]
Exporter = Annotated[Principal, Depends(allow(Role.EVALUATOR, purpose="run the FHIR bulk export"))]

OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
KNOWN_PARAMETERS = frozenset({"_type", "_outputFormat"})
FILE_NAME = re.compile(r"^([A-Za-z]+)\.ndjson$")
BUNDLE_EXAMPLE = {
    "resourceType": "Bundle",
    "id": "0b1d8c52-4a5e-5f2b-9c1e-2f3a4b5c6d7e",
    "type": "collection",
    "timestamp": "2026-03-04T09:12:44Z",
    "entry": [
        {
            "fullUrl": "https://ledger.example/v1/fhir/Patient/5b1e2f0a-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
            "resource": {
                "resourceType": "Patient",
                "id": "5b1e2f0a-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}
                ],
            },
        }
    ],
}
MANIFEST_EXAMPLE = {
    "transactionTime": "2026-03-04T09:12:44Z",
    "request": "https://ledger.example/v1/fhir/$export?_type=Patient",
    "requiresAccessToken": True,
    "output": [
        {
            "type": "Patient",
            "url": "https://ledger.example/v1/fhir/export-jobs/"
            "6f1c2d4e-8b7a-4c3d-9e0f-1a2b3c4d5e6f/Patient.ndjson",
            "count": 5000,
        }
    ],
    "error": [],
}
FHIR_JSON = {"content": {CONTENT_TYPE: {"schema": {"type": "object"}, "example": BUNDLE_EXAMPLE}}}


@router.get(
    "/v1/patients/{nhs}/fhir",
    summary="The person's journey as a FHIR R4 Bundle",
    response_class=Response,
    responses={
        200: {"description": "A Bundle of type collection", **FHIR_JSON},
        **problems.responses(404),
    },
)
def person_fhir(
    request: Request,
    person: Reader,
    ledger: LedgerDep,
    settings: SettingsDep,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> Response:
    """Patient, EpisodeOfCare, CareTeam, Encounter, CarePlan, ServiceRequest and a
    Provenance for each, as ``application/fhir+json``; the NHS number is the Patient's
    identifier."""
    events = ledger.history(person.patient_id, known_at=known_at)
    bundle = person_bundle(
        events,
        as_of=as_of,
        known_at=known_at,
        patient_id=person.patient_id,
        config=FoldConfig.from_settings(settings),
        subject=Subject(nhs_number=person.nhs_number),
        base=str(request.base_url).rstrip("/") + "/v1/fhir",
    )
    return Response(bundle.model_dump_json(), media_type=CONTENT_TYPE)


def _export_right(principal: Principal) -> str:
    if principal.export_agreement is None:
        raise ProblemError(
            "forbidden",
            "this key has no export right: record-level export needs a key created for a "
            "data-sharing agreement (carejourney keys create evaluator --export-agreement REF)",
        )
    return principal.export_agreement


@router.get(
    "/v1/fhir/$export",
    summary="Start a FHIR Bulk Data export (pseudonymised, opted-out people excluded)",
    status_code=202,
    response_class=Response,
    responses={
        202: {"description": "Accepted: poll the Content-Location URL"},
        **problems.responses(400, 429),
    },
)
async def export_kick_off(
    request: Request,
    principal: Exporter,
    ledger: LedgerDep,
    settings: SettingsDep,
    prefer: Annotated[str | None, Header(description="Must include respond-async.")] = None,
    type_: Annotated[
        str | None,
        Query(alias="_type", description="Comma-separated resource types (default: all)."),
    ] = None,
    output_format: Annotated[
        str | None,
        Query(alias="_outputFormat", description="application/fhir+ndjson (the default)."),
    ] = None,
) -> Response:
    """Kick-off: 202 with ``Content-Location``; 429 while this key's last export runs."""
    _export_right(principal)
    if prefer is None or "respond-async" not in prefer.lower():
        raise ProblemError("bad-request", "send 'Prefer: respond-async' to start an export")
    unknown = sorted(set(request.query_params) - KNOWN_PARAMETERS)
    if unknown:
        raise _bad(f"query.{unknown[0]}", "parameter not supported by this server")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise _bad("query._outputFormat", f"only {NDJSON} is supported")
    requested = [t.strip() for t in (type_ or "").split(",") if t.strip()]
    try:
        types = check_types(requested)
    except ValueError as exc:
        raise _bad("query._type", str(exc)) from None

    def begin() -> UUID:
        with ledger.connection() as conn:
            if fhir_exports.running(conn, principal) is not None:
                raise ProblemError(
                    "busy",
                    "an export of yours is still running: poll it or cancel it",
                    headers={"Retry-After": "5"},
                )
        return fhir_exports.start(ledger, settings, principal, types, str(request.url))

    job = await run_in_threadpool(begin)
    location = str(request.url_for("export_status", job=str(job)))
    return Response(status_code=202, headers={"Content-Location": location})


def _bad(loc: str, msg: str) -> ProblemError:
    return ProblemError("bad-request", f"{loc}: {msg}", errors=[FieldError(loc, msg)])


def _job(ledger: Any, job: UUID, principal: Principal) -> dict[str, Any]:
    with ledger.connection() as conn:
        row = fhir_exports.get(conn, job, principal)
    if row is None or row["status"] == fhir_exports.CANCELLED:
        raise ProblemError("not-found", "no such export (or it was cancelled)")
    return row


@router.get(
    "/v1/fhir/export-jobs/{job}",
    name="export_status",
    summary="An export's status: 202 while running, 200 with the manifest when done",
    response_class=JSONResponse,
    responses={
        200: {
            "description": "The manifest",
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": MANIFEST_EXAMPLE}
            },
        },
        202: {"description": "Still running (X-Progress says how far)"},
        **problems.responses(404),
    },
)
def export_status(request: Request, job: UUID, principal: Exporter, ledger: LedgerDep) -> Response:
    """The Bulk Data status request: 202 with ``X-Progress`` and ``Retry-After`` while
    the export runs, 200 with the manifest (``output``: one NDJSON file per type) when it
    is done, a 500 problem if it failed, 404 once cancelled or for another key's job."""
    _export_right(principal)
    row = _job(ledger, job, principal)
    if row["status"] == fhir_exports.RUNNING:
        progress = f"{row['done']}/{row['total']} people" if row["total"] else "starting"
        return Response(status_code=202, headers={"X-Progress": progress, "Retry-After": "1"})
    if row["status"] == fhir_exports.FAILED:
        raise ProblemError("internal", f"the export failed ({row['error']}); start another")
    output = [
        {
            "type": item["type"],
            "url": str(request.url_for("export_file", job=str(job), name=item["url"])),
            "count": item["count"],
        }
        for item in row["output"] or []
    ]
    return JSONResponse(
        {
            "transactionTime": row["transaction_time"].isoformat(),
            "request": row["request"],
            "requiresAccessToken": True,
            "output": output,
            "error": [],
        }
    )


@router.delete(
    "/v1/fhir/export-jobs/{job}",
    summary="Cancel an export (or delete a finished one's files)",
    status_code=202,
    response_class=Response,
    responses={202: {"description": "Cancelled"}, **problems.responses(404)},
)
def export_cancel(
    job: UUID, principal: Exporter, ledger: LedgerDep, settings: SettingsDep
) -> Response:
    """Cancel a running export, or delete a finished one's files; later requests are 404."""
    _export_right(principal)
    _job(ledger, job, principal)
    fhir_exports.cancel(ledger, settings, job)
    return Response(status_code=202)


@router.get(
    "/v1/fhir/export-jobs/{job}/{name}",
    name="export_file",
    summary="One NDJSON file of a finished export",
    response_class=FileResponse,
    responses={
        200: {
            "description": "NDJSON",
            "content": {
                NDJSON: {
                    "example": '{"resourceType":"Patient","id":"f552ede8d0a9f617..."}\n',
                }
            },
        },
        **problems.responses(404),
    },
)
def export_file(
    job: UUID, name: str, principal: Exporter, ledger: LedgerDep, settings: SettingsDep
) -> FileResponse:
    """One file of the manifest's ``output``: one resource per line, with the same key."""
    _export_right(principal)
    row = _job(ledger, job, principal)
    listed = {item["url"] for item in row["output"] or []}
    if (
        row["status"] != fhir_exports.COMPLETE
        or FILE_NAME.match(name) is None
        or name not in listed
    ):
        raise ProblemError("not-found", "no such file in this export")
    path = fhir_exports.export_dir(settings) / str(job) / name
    if not path.is_file():
        raise ProblemError("not-found", "the export's files are gone; start another")
    return FileResponse(path, media_type=NDJSON, filename=name)
