"""Operations: ``/healthz`` (alive), ``/readyz`` (database and projections), ``/metrics``.

None needs a key: probes and scrapers hold none, and nothing here is about a person.
``/readyz`` is 503 when the database cannot be reached or a projection lags the ledger
head by more than ``CAREJOURNEY_READY_MAX_LAG`` events, so a load balancer stops
sending reads to an instance whose read models are stale.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from api import metrics, problems
from api.deps import LedgerDep, SettingsDep
from api.models.operations import Health, Readiness
from api.problems import ProblemError
from consumers import offsets
from domain.ledger import Ledger
from projections import runner

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


def projection_status(ledger: Ledger) -> list[dict[str, Any]]:
    """Each projection's name, position, the ledger head and the lag between them."""
    with ledger.connection() as conn:
        return [
            {k: row[k] for k in ("name", "position", "head", "lag")} for row in runner.status(conn)
        ]


@router.get("/healthz", summary="Liveness", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process answers (no database call: a slow database must not get it killed)."""
    return {"status": "ok"}


@router.get(
    "/readyz", summary="Readiness", response_model=Readiness, responses=problems.responses(503)
)
def readyz(ledger: LedgerDep, settings: SettingsDep) -> dict[str, Any]:
    """Ready when the database answers and no projection lags by more than the bound."""
    try:
        projections = projection_status(ledger)
    except Exception as exc:  # any failure to reach the database means "not ready"
        log.warning("readiness check failed: %s", exc)
        raise ProblemError("not-ready", "the database cannot be reached") from None
    behind = [p for p in projections if p["lag"] > settings.ready_max_lag]
    if behind:
        names = ", ".join(f"{p['name']} ({p['lag']} events)" for p in behind)
        raise ProblemError(
            "not-ready",
            f"projections lag the ledger by more than {settings.ready_max_lag} events: {names}",
        )
    return {"status": "ready", "max_lag": settings.ready_max_lag, "projections": projections}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {
                metrics.CONTENT_TYPE: {
                    "schema": {"type": "string"},
                    "example": "# TYPE carejourney_events_appended_total counter\n"
                    "carejourney_events_appended_total 1042.0\n",
                }
            },
        }
    },
)
async def prometheus_metrics(ledger: LedgerDep) -> Response:
    """Requests (by route template and status), events appended, rejections, each
    projection's position and lag, and the Kafka consumers' stopped partitions, held
    messages and unsent dead letters."""
    body = await run_in_threadpool(
        metrics.exposition, lambda: projection_status(ledger), lambda: _consumers(ledger)
    )
    return Response(body, media_type=metrics.CONTENT_TYPE)


def _consumers(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.connection() as conn:
        return offsets.health(conn)
