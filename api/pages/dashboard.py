"""The measures dashboard (evaluators): every measure for a chosen period, with charts.

The numbers are ``projections.measures.compute`` over one snapshot, suppressed exactly
as ``GET /v1/measures`` serves evaluators, so the dashboard, the API and the CLI agree.
Charts: the distribution of time to a named coordinator, uncovered days by month,
readmission and follow-up rates by discharging hospital (the report split by
organisation) and the continuity distribution; each with its definition (the measure's
docstring) one click away. Tables below show every measure, split as chosen.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api import access_log, times
from api.deps import Db
from api.pages import charts
from api.pages.render import FromDay, KnownAtText, PageProblem, ToDay, page, query_day
from api.pages.session import SignedIn, require
from api.security import Role
from domain import optout
from projections import measures

router = APIRouter()


def default_period(conn: Any, settings: Any) -> tuple[date, date]:
    """The twelve months up to the latest occurred event (or today, if sooner)."""
    row = conn.execute("SELECT max(occurred_at) AS last FROM ledger_events").fetchone()
    today = datetime.now(settings.zone).date()
    latest = row["last"].astimezone(settings.zone).date() if row and row["last"] else today
    last = min(latest, today)
    try:
        first = last.replace(year=last.year - 1) + timedelta(days=1)
    except ValueError:  # 29 February
        first = last - timedelta(days=364)
    return first, last


@router.get("/measures", response_class=HTMLResponse)
def dashboard(
    request: Request,
    principal: SignedIn,
    conn: Db,
    first: FromDay = None,
    last: ToDay = None,
    by: Annotated[str | None, Query(max_length=20)] = None,
    known_at: KnownAtText = None,
) -> Response:
    require(principal, Role.EVALUATOR, what="the measures dashboard")
    try:
        as_known = times.aware(known_at) if known_at else None
    except times.TimeError as exc:
        raise PageProblem(422, f"known_at: {exc}", principal) from None
    settings = request.app.state.settings
    start, end = query_day(first, "from"), query_day(last, "to")
    if start is None or end is None:
        default_first, default_last = default_period(conn, settings)
        start, end = start or default_first, end or default_last
    split = by if by in measures.DIMENSIONS else None
    try:
        period = measures.Period.checked(start, end, settings.zone)
        if as_known is None:
            population = measures.load(conn, period)
        else:
            ledger = request.app.state.ledger
            population = measures.population_known_at(ledger, settings, as_known)
    except measures.PeriodError as exc:
        raise PageProblem(422, str(exc), principal) from None
    except measures.NotProjected as exc:
        raise PageProblem(503, str(exc), principal) from None
    access_log.record_event(conn, principal, "GET /pages/measures", via="page")
    opted_out = optout.opted_out_patient_ids(conn)
    overall = measures.compute(population, period, settings, opted_out=opted_out)
    by_org = measures.compute(population, period, settings, by="organisation", opted_out=opted_out)
    table = (
        overall
        if split is None
        else (
            by_org
            if split == "organisation"
            else measures.compute(population, period, settings, by=split, opted_out=opted_out)
        )
    )
    return page(
        request,
        "measures.html",
        {
            "report": overall,
            "known_at": known_at or "",
            "table": table,
            "by": split or "",
            "dimensions": measures.DIMENSIONS,
            "first": start.isoformat(),
            "last": end.isoformat(),
            "figures": figures(overall, by_org),
        },
        principal=principal,
    )


def figures(overall: dict[str, Any], by_org: dict[str, Any]) -> list[dict[str, Any]]:
    """The four charts, each with the measure whose definition it shows."""
    m = overall["measures"]
    waits = m["time_to_coordinator"]["groups"][0]
    months = m["coverage"]["groups"][0]["by_month"]
    coc = m["continuity"]["groups"][0]["distribution"]
    org = by_org["measures"]
    hospitals = [g["group"] for g in org["readmission_30d"]["groups"][1:]]
    follow7 = {g["group"]: g["follow_up_pct"] for g in org["follow_up_7d"]["groups"]}
    follow72 = {g["group"]: g["follow_up_pct"] for g in org["follow_up_72h"]["groups"]}
    readmit = {g["group"]: g["readmission_pct"] for g in org["readmission_30d"]["groups"]}
    rated = ["all", *hospitals]
    return [
        {
            "id": "chart-time-to-coordinator",
            "title": "Time to a named coordinator",
            "caption": f"People by days waited ({_n(waits['named'])} named, "
            f"{_n(waits['incomplete'])} still waiting)",
            "measure": m["time_to_coordinator"],
            "kind": "columns",
            "chart": charts.columns(
                [d["label"] for d in waits["distribution"]],
                [("people", [d["people"] for d in waits["distribution"]])],
            ),
        },
        {
            "id": "chart-uncovered-days",
            "title": "Uncovered days by month",
            "caption": "Person-days without a named coordinator at 23:59",
            "measure": m["coverage"],
            "kind": "columns",
            "chart": charts.columns(
                [mo["month"][2:] for mo in months],
                [("uncovered person-days", [mo["uncovered_days"] for mo in months])],
            ),
        },
        {
            "id": "chart-readmission-follow-up",
            "title": "Readmission and follow-up by hospital",
            "caption": "Discharging hospital; 'all' first",
            "measure": m["readmission_30d"],
            "also": [m["follow_up_7d"], m["follow_up_72h"]],
            "kind": "rows",
            "chart": charts.rows(
                rated,
                top=_rate_top(readmit, follow7, follow72),
                series=[
                    ("30-day emergency readmission", [readmit.get(h) for h in rated]),
                    ("follow-up within 7 days", [follow7.get(h) for h in rated]),
                    ("follow-up within 72 hours", [follow72.get(h) for h in rated]),
                ],
            ),
        },
        {
            "id": "chart-continuity",
            "title": "Continuity of care",
            "caption": "People (2+ contacts) by Bice-Boxerman COC and by UPC",
            "measure": m["continuity"],
            "kind": "columns",
            "chart": charts.columns(
                [d["label"] for d in coc],
                [("COC", [d["coc_people"] for d in coc]), ("UPC", [d["upc_people"] for d in coc])],
            ),
        },
    ]


def _rate_top(*rates: dict[str, Any]) -> float:
    """The axis end of the rates chart: the largest rate shown, with room for labels."""
    shown = [v for r in rates for v in r.values() if v is not None]
    return min(100.0, max(shown, default=0) * 1.15) or 100.0


def _n(value: Any) -> str:
    return "*" if value is None else f"{value:,}"
