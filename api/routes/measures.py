"""Evaluators: the population measures (``projections.measures``; docs/measures.md).

The same report as ``carejourney measures`` and the dashboard. It is read from the live
projections, which follow the ledger a little behind: the document names the ledger
position it was computed at. Evaluators always get suppressed counts and pseudonyms;
auditors and admins may ask for exact counts (``unsuppressed=true``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response

from api import problems
from api.deps import Db, SettingsDep, allow
from api.models.measures import MeasuresReport
from api.problems import ProblemError
from api.security import Principal, Role
from api.times import Day
from domain.contract import FieldError
from projections import measures

router = APIRouter(prefix="/v1", tags=["evaluators"])

Reader = Annotated[
    Principal, Depends(allow(Role.EVALUATOR, Role.AUDITOR, purpose="read population measures"))
]


class By(StrEnum):
    setting = "setting"
    role = "role"
    organisation = "organisation"
    cohort = "cohort"


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
        **problems.responses(401, 403, 422, 503),
    },
)
def get_measures(
    principal: Reader,
    conn: Db,
    settings: SettingsDep,
    first: Annotated[
        Day,
        Query(alias="from", description="First local date (YYYY-MM-DD).", examples=["2025-01-01"]),
    ],
    last: Annotated[
        Day, Query(alias="to", description="Last local date, included.", examples=["2025-12-31"])
    ],
    by: Annotated[
        By | None,
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
    per_person: Annotated[bool, Query(description="Add pseudonymised per-person rows.")] = False,
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
    try:
        period = measures.Period.checked(first, last, settings.zone)
    except measures.PeriodError as exc:
        raise ProblemError(
            "validation", f"query: {exc}", errors=[FieldError("query.to", str(exc))]
        ) from None
    try:
        found = measures.report(
            conn,
            period,
            settings,
            by=by.value if by else None,
            per_person=per_person,
            unsuppressed=unsuppressed,
            wait_threshold_days=wait_threshold,
        )
    except measures.NotProjected as exc:
        raise ProblemError("not-ready", str(exc)) from None
    if output is Format.csv:
        name = f"measures_{period.first}_{period.last}.csv"
        return Response(
            measures.to_csv(found),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return JSONResponse(found)  # exactly the CLI's document (response_model: its schema)
