"""The FastAPI application: ``create_app(settings, ledger)``.

The factory takes its collaborators instead of reaching for globals, so tests build an
app on their own database and keys, and ``carejourney serve`` builds one per worker
(``uvicorn api.app:create_app --factory``). When no ledger is given, the lifespan opens
one on the configured (or embedded) database and closes it at shutdown; a ledger that is
given belongs to the caller, who closes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api import access_log, fhir_exports, openapi, pages, problems
from api.body_limit import BodyLimit
from api.header_limit import HeaderLimit
from api.metrics import MetricsMiddleware
from api.routes import access_log as access_log_routes
from api.routes import (
    alerts,
    contract,
    coordinators,
    events,
    fhir,
    ledger_log,
    measures,
    operations,
    optout,
    patients,
    publishers,
    transparency,
)
from api.security import KeyRing
from domain.ledger import Ledger, open_ledger
from domain.settings import Settings, get_settings
from projections.runner import Runner

VERSION = "1.0.0"


def create_app(settings: Settings | None = None, ledger: Ledger | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = ledger if ledger is not None else await run_in_threadpool(open_ledger, settings)
        try:
            with opened.connection() as conn:
                access_log.migrate(conn)
                pages.migrate(conn)
                fhir_exports.migrate(conn)
            # The read models' tables exist before the first read, even if no
            # projection worker has run yet (reads then show nothing, /readyz the lag).
            await run_in_threadpool(Runner.for_ledger(opened).migrate)
            app.state.ledger = opened
            yield
        finally:
            if ledger is None:
                opened.close()

    app = FastAPI(
        title="Care-journey ledger API",
        version=VERSION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.keyring = KeyRing(settings)
    if ledger is not None:
        app.state.ledger = ledger
    problems.install(app)
    for module in (
        events,
        publishers,
        patients,
        coordinators,
        alerts,
        ledger_log,
        access_log_routes,
        operations,
        measures,
        optout,
        contract,
        transparency,
        fhir,
    ):
        app.include_router(module.router)
    pages.install(app)
    # Added first = innermost: unhandled errors become 500 problems here, logged safely.
    app.add_middleware(problems.CatchAll)
    app.add_middleware(access_log.RefusalLog)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(
        HeaderLimit, max_headers=settings.api_max_headers, max_bytes=settings.api_max_header_bytes
    )
    # Added last = outermost: metrics see every answer, including the 413s and 431s.
    app.add_middleware(MetricsMiddleware)
    openapi.install(app, settings)
    return app
