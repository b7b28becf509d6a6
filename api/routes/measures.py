"""Evaluators: the population measures (``projections.measures``; docs/measures.md).

The same report as ``carejourney measures`` and the dashboard. It is read from the live
projections, which follow the ledger a little behind: the document names the ledger
position it was computed at. Evaluators always get suppressed counts and never
per-person rows (a suppressed bin could be recounted from them); auditors and admins
may ask for exact counts (``unsuppressed=true``) and per-person rows (``per_person=true``,
written to the access log).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from api import access_log, problems
from api.deps import Db, LedgerDep, SettingsDep, allow, endpoint_label
from api.models.measures import MeasuresReport
from api.problems import ProblemError
from api.security import Principal, Role
from api.times import AwareTime, Day
from domain.contract import FieldError
from projections import measures

router = APIRouter(prefix="/v1", tags=["evaluators"], responses=problems.KEYED)

Reader = Annotated[
    Principal, Depends(allow(Role.EVALUATOR, Role.AUDITOR, purpose="read population measures"))
]


class Format(StrEnum):
    json = "json"
    csv = "csv"


CSV = "text/csv; charset=utf-8"


@router.get(
    "/measures",
    summary="Evaluation measures for a period",
    response_model=MeasuresReport,
    responses={
        200: {
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "measure,group,metric,value\nreadmission_30d,all,discharges,200\n",
                }
            }
        },
        **problems.responses(503),
    },
)
def get_measures(
    request: Request,
    principal: Reader,
    conn: Db,
    ledger: LedgerDep,
    settings: SettingsDep,
    first: Annotated[
        Day,
        Query(alias="from", description="First local date (YYYY-MM-DD).", examples=["2025-01-01"]),
    ],
    last: Annotated[
        Day, Query(alias="to", description="Last local date, included.", examples=["2025-12-31"])
    ],
    by: Annotated[
        measures.By | None,
        Query(
            description="Split every measure (docs/measures.md says "
            "what each split means per measure)."
        ),
    ] = None,
    output: Annotated[
        Format,
        Query(
            alias="format",
            description="`json` (this document) or `csv` (measure,group,metric,value).",
        ),
    ] = Format.json,
    per_person: Annotated[
        bool,
        Query(description="Add pseudonymised per-person rows (auditors and admins only; logged)."),
    ] = False,
    known_at: Annotated[
        AwareTime | None,
        Query(
            description="Compute from the ledger as it was known at this time (ISO-8601 "
            "with an offset): a published report, reproduced exactly. The report names it "
            "and the position it amounts to.",
            examples=["2026-04-01T00:00:00Z"],
        ),
    ] = None,
    salt: Annotated[
        str | None,
        Query(
            min_length=8,
            max_length=200,
            description="A per-report salt: pseudonyms that link to no other report.",
        ),
    ] = None,
    unsuppressed: Annotated[
        bool, Query(description="Exact counts (auditors and admins only).")
    ] = False,
    wait_threshold: Annotated[
        int | None,
        Query(ge=0, le=3650, description="Referral waits: days for '% within threshold'."),
    ] = None,
) -> Any:
    """Every measure of docs/measures.md over the period ``from``..``to`` (local dates in
    the configured zone), optionally split; small numbers suppressed for evaluators."""
    if unsuppressed and principal.role is Role.EVALUATOR:
        raise ProblemError(
            "forbidden",
            "evaluators get suppressed counts only (unsuppressed is for auditors and admins)",
        )
    if per_person and principal.role is Role.EVALUATOR:
        raise ProblemError(
            "forbidden",
            "evaluators get no person-level rows (per_person is for auditors and admins)",
        )
    try:
        period = measures.Period.checked(first, last, settings.zone)
    except measures.PeriodError as exc:
        raise ProblemError(
            "validation", f"query: {exc}", errors=[FieldError("query.to", str(exc))]
        ) from None
    try:
        asked = measures.Asked(
            by=by,
            per_person=per_person,
            unsuppressed=unsuppressed,
            wait_threshold_days=wait_threshold,
            salt=salt,
        )
        found = measures.report_for(ledger, period, settings, asked, known_at=known_at, conn=conn)
    except measures.NotProjected as exc:
        raise ProblemError("not-ready", str(exc)) from None
    if per_person:
        access_log.record_event(conn, principal, endpoint_label(request) + "?per_person=true")
    if output is Format.csv:
        name = f"measures_{period.first}_{period.last}.csv"
        return Response(
            measures.to_csv(found),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return JSONResponse(found)  # exactly the CLI's document (response_model: its schema)
