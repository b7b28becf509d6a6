"""``carejourney serve``: the HTTP API under uvicorn.

Works with no configuration: on the embedded default the database is started here, in
the parent process, and the workers are given its URL; the parent stops it on exit.
uvicorn's own access log is off because request URLs carry NHS numbers; person-level
reads are in the access log table instead, and request counts and latencies (by route
template) in ``/metrics``. The HTTP protocol is uvicorn's httptools one with the request
head bounded (``api/header_limit.py``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Annotated

import typer
import uvicorn

from api.header_limit import BoundedHttpTools
from api.security import KeyRing
from cli.console import AllowPlaceholderKey, check_pseudonym_key, err, ledger_session
from cli.options import host_option, port_option
from domain.settings import get_settings


def register(app: typer.Typer) -> None:
    app.command()(serve)


def serve(
    host: Annotated[str | None, host_option("api_host")] = None,
    port: Annotated[int | None, port_option("api_port")] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="uvicorn worker processes (default CAREJOURNEY_API_WORKERS, 1)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    allow_placeholder_key: AllowPlaceholderKey = False,
) -> None:
    """Run the HTTP API (OpenAPI at /docs and /openapi.json).

    Refuses to start while CAREJOURNEY_PSEUDONYM_KEY is the placeholder, unless
    --allow-placeholder-key says this is development."""
    check_pseudonym_key(allow_placeholder_key)
    settings = get_settings()
    host = host or settings.api_host
    port = port or settings.api_port
    workers = workers or settings.api_workers
    with ledger_session() as ledger:  # fail fast, start the embedded server, run migrations
        url = ledger.database_url
    if not settings.database_url:
        # Workers connect to the server this process started instead of each attaching
        # to the embedded data folder: this process alone owns it and stops it on exit.
        os.environ["CAREJOURNEY_DATABASE_URL"] = url
        get_settings.cache_clear()
    if len(KeyRing(settings)) == 0:
        err.print(
            "[yellow]no API keys yet:[/] every request will get 401. Create the first "
            "with `carejourney keys create admin`."
        )
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="carejourney-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    err.print(f"serving on http://{host}:{port} with {workers} worker(s); docs at /docs")
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,
            http=BoundedHttpTools,
            log_level=log_level,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
