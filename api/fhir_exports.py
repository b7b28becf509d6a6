"""FHIR bulk export jobs: kicked off over HTTP, run in the background, polled, fetched.

The Bulk Data pattern (docs/fhir.md): the kick-off records a job row and starts a thread
in this worker process that runs ``projections.fhir.export.export`` into
``CAREJOURNEY_FHIR_EXPORT_DIR/<job id>/``; the row holds the state (so any worker answers
a status request) and the progress. When the files are written, one transaction writes
the access-log rows of every exported person, naming the key's data-sharing agreement,
and marks the job complete: no file is listed before its reads are logged. A cancel
(``DELETE``) marks the row; the thread sees it at its next progress report, stops and
removes the files. Files of finished jobs are kept until the job is cancelled.

The table belongs to the API (like the access log); its DDL runs, idempotently, when the
app starts.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from psycopg.types.json import Jsonb

from api import access_log
from api.security import Principal
from domain.database import create_tables
from domain.ledger import Ledger
from domain.settings import Settings
from projections.fhir.export import Cancelled, export
from projections.fold import FoldConfig
from projections.log import state_loader

log = logging.getLogger(__name__)

ENDPOINT = "GET /v1/fhir/$export"
RUNNING, COMPLETE, FAILED, CANCELLED = "in-progress", "complete", "failed", "cancelled"
# A running job reports progress every few dozen people; one silent this long lost its
# worker (a restart, a crash) and is reported failed instead of running forever.
STALE_AFTER = "10 minutes"

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS fhir_export_jobs (
        id                uuid PRIMARY KEY,
        principal         text NOT NULL,
        role              text NOT NULL,
        agreement         text NOT NULL,
        types             text[] NOT NULL,
        request           text NOT NULL,
        status            text NOT NULL,
        created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
        updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
        finished_at       timestamptz,
        transaction_time  timestamptz,
        position          bigint,
        done              integer NOT NULL DEFAULT 0,
        total             integer NOT NULL DEFAULT 0,
        excluded          integer,
        output            jsonb,
        error             text
    )
    """,
    "CREATE INDEX IF NOT EXISTS fhir_export_jobs_principal_idx"
    " ON fhir_export_jobs (principal, status)",
)


def migrate(conn: Any) -> None:
    create_tables(conn, "fhir_exports", SCHEMA)


def export_dir(settings: Settings) -> Path:
    return settings.fhir_export_dir or settings.data_dir / "fhir-exports"


def running(conn: Any, principal: Principal) -> UUID | None:
    row = conn.execute(
        "SELECT id FROM fhir_export_jobs WHERE principal = %s AND status = %s"
        " AND updated_at > clock_timestamp() - %s::interval LIMIT 1",
        (principal.name, RUNNING, STALE_AFTER),
    ).fetchone()
    return None if row is None else row["id"]


def start(
    ledger: Ledger,
    settings: Settings,
    principal: Principal,
    types: Sequence[str],
    request: str,
) -> UUID:
    """Record the job and start its thread; the caller has checked the export right."""
    job = uuid4()
    with ledger.connection() as conn:
        conn.execute(
            "INSERT INTO fhir_export_jobs (id, principal, role, agreement, types, request, status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                job,
                principal.name,
                principal.role.value,
                principal.export_agreement,
                list(types),
                request,
                RUNNING,
            ),
        )
    thread = threading.Thread(
        target=_run,
        args=(ledger, settings, principal, job, tuple(types)),
        name=f"fhir-export-{job}",
        daemon=True,
    )
    thread.start()
    return job


def get(conn: Any, job: UUID, principal: Principal) -> dict[str, Any] | None:
    """The job, if this principal started it (an admin sees every job)."""
    row = conn.execute(
        "SELECT *, updated_at <= clock_timestamp() - %s::interval AS stale"
        " FROM fhir_export_jobs WHERE id = %s",
        (STALE_AFTER, job),
    ).fetchone()
    if row is None or (row["principal"] != principal.name and principal.role.value != "admin"):
        return None
    found = dict(row)
    if found["status"] == RUNNING and found.pop("stale"):
        found.update(status=FAILED, error="the worker running it stopped")
    return found


def cancel(ledger: Ledger, settings: Settings, job: UUID) -> None:
    with ledger.connection() as conn:
        conn.execute(
            "UPDATE fhir_export_jobs SET status = %s, finished_at = clock_timestamp()"
            " WHERE id = %s",
            (CANCELLED, job),
        )
    shutil.rmtree(export_dir(settings) / str(job), ignore_errors=True)


def _run(
    ledger: Ledger, settings: Settings, principal: Principal, job: UUID, types: tuple[str, ...]
) -> None:
    out_dir = export_dir(settings) / str(job)

    def progress(done: int, total: int) -> None:
        with ledger.connection() as conn:
            row = conn.execute(
                "UPDATE fhir_export_jobs SET done = %s, total = %s,"
                " updated_at = clock_timestamp() WHERE id = %s RETURNING status",
                (done, total, job),
            ).fetchone()
        if row is None or row["status"] != RUNNING:
            raise Cancelled

    try:
        result = export(
            ledger.database_url,
            out_dir,
            pseudonym_key=settings.pseudonym_key,
            types=types,
            config=FoldConfig.from_settings(settings),
            progress=progress,
            loads=state_loader(ledger.mapper),
        )
        output = [
            {"type": kind, "url": f"{kind}.ndjson", "count": n} for kind, n in result.counts.items()
        ]
        with ledger.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT status FROM fhir_export_jobs WHERE id = %s FOR UPDATE", (job,)
            ).fetchone()
            if row is None or row["status"] != RUNNING:
                raise Cancelled
            access_log.record(
                conn, principal, ENDPOINT, result.people, agreement=principal.export_agreement
            )
            conn.execute(
                "UPDATE fhir_export_jobs SET status = %s, finished_at = clock_timestamp(),"
                " transaction_time = %s, position = %s, excluded = %s, output = %s"
                " WHERE id = %s",
                (
                    COMPLETE,
                    result.transaction_time,
                    result.position,
                    result.excluded,
                    Jsonb(output),
                    job,
                ),
            )
    except Cancelled:
        shutil.rmtree(out_dir, ignore_errors=True)
    except Exception as exc:  # the job fails; the server goes on
        log.exception("FHIR export %s failed", job)
        shutil.rmtree(out_dir, ignore_errors=True)
        with ledger.connection() as conn:
            conn.execute(
                "UPDATE fhir_export_jobs SET status = %s, finished_at = clock_timestamp(),"
                " error = %s WHERE id = %s AND status = %s",
                (FAILED, type(exc).__name__, job, RUNNING),
            )
