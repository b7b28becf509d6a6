"""The read audit: who read which person's data, when, through which endpoint, and
with what outcome.

Every person-level read writes its rows here before the data leaves the server, in the
same request (a read whose log row cannot be written fails instead of answering).
Refused attempts on person endpoints and pages (401, 403, 404, 422) and failed reads
(5xx) are written too, after the answer, with the outcome (``refused`` or ``failed``)
and status, and the person when the request got as far as resolving them
(``RefusalLog``); so are per-person measures, page views (under the page path the user
saw, ``via`` ``page``) and the command line's person reads (``via`` ``cli``, principal
``cli:<os user>``). Rows without a person (an unknown number, a per-person report, a
dashboard view) have a null ``patient_id``. The
endpoint is the route *template* (``GET /v1/patients/{nhs}/journey``) and the person is
the ledger's opaque ``patient_id``: the NHS number is never written here, nor to the
server's request log (``carejourney serve`` turns uvicorn's URL-bearing access log off).

The table belongs to the API (not the ledger), so its DDL lives here and runs, idempotently,
when the app starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from api.asgi import HttpMiddleware, Watched
from api.problems import template_of
from api.security import Principal
from domain.database import create_tables

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS api_access_log (
        id          bigserial PRIMARY KEY,
        at          timestamptz NOT NULL DEFAULT clock_timestamp(),
        principal   text NOT NULL,
        role        text NOT NULL,
        endpoint    text NOT NULL,
        patient_id  uuid NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS api_access_log_patient_idx ON api_access_log (patient_id, id)",
    "CREATE INDEX IF NOT EXISTS api_access_log_principal_idx ON api_access_log (principal, id)",
    "CREATE INDEX IF NOT EXISTS api_access_log_at_idx ON api_access_log (at)",
    "ALTER TABLE api_access_log ALTER COLUMN patient_id DROP NOT NULL",
    "ALTER TABLE api_access_log ADD COLUMN IF NOT EXISTS outcome text NOT NULL DEFAULT 'read'",
    "ALTER TABLE api_access_log ADD COLUMN IF NOT EXISTS status integer",
    "ALTER TABLE api_access_log ADD COLUMN IF NOT EXISTS via text NOT NULL DEFAULT 'api'",
    # The data-sharing agreement a FHIR bulk export ran under (null for other reads).
    "ALTER TABLE api_access_log ADD COLUMN IF NOT EXISTS agreement text",
)

log = logging.getLogger(__name__)

PATIENT_KEY = "carejourney.patient"  # request state: the person a request resolved
PRINCIPAL_KEY = "carejourney.principal"  # request state: the authenticated caller


def migrate(conn: Connection[Any]) -> None:
    create_tables(conn, "api", SCHEMA)


def record(
    conn: Connection[Any],
    principal: Principal,
    endpoint: str,
    patients: Sequence[UUID],
    *,
    via: str = "api",
    agreement: str | None = None,
) -> None:
    """One row per person read (a caseload of 40 people is 40 rows; an export of 5,000
    people 5,000, each naming the data-sharing ``agreement``), in one statement."""
    if not patients:
        return
    conn.execute(
        "INSERT INTO api_access_log (principal, role, endpoint, patient_id, via, agreement)"
        " SELECT %s, %s, %s, p, %s, %s FROM unnest(%s::uuid[]) AS p",
        (principal.name, principal.role.value, endpoint, via, agreement, list(patients)),
    )


def record_event(
    conn: Connection[Any],
    principal: Principal | None,
    endpoint: str,
    *,
    patient_id: UUID | None = None,
    outcome: str = "read",
    status: int | None = None,
    via: str = "api",
) -> None:
    """One row: a refusal, a failure, a read of no single person (``principal`` None: a
    caller without a valid key, logged as ``anonymous``)."""
    conn.execute(
        "INSERT INTO api_access_log (principal, role, endpoint, patient_id, outcome, status, via)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            principal.name if principal else "anonymous",
            principal.role.value if principal else "none",
            endpoint,
            patient_id,
            outcome,
            status,
            via,
        ),
    )


def entries(
    conn: Connection[DictRow],
    *,
    patient_id: UUID | None = None,
    principal: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = "read",
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries in the order they were written, filtered, one page after id ``after``
    (``outcome`` None: every outcome)."""
    filters = (
        ("id > %s", after),
        ("outcome = %s", outcome),
        ("patient_id = %s", patient_id),
        ("principal = %s", principal),
        ("at >= %s", since),
        ("at < %s", until),
    )
    clauses = [clause for clause, value in filters if value is not None]
    params: list[Any] = [value for _, value in filters if value is not None]
    params.append(limit)
    return conn.execute(
        "SELECT id, at, principal, role, endpoint, patient_id, outcome, status, via, agreement"
        " FROM api_access_log"
        f" WHERE {' AND '.join(clauses)} ORDER BY id LIMIT %s",
        params,
    ).fetchall()


class RefusalLog(HttpMiddleware):
    """Write a row for every refused (401/403/404/422) or failed (5xx) request to a
    person endpoint or page, after the answer: the request itself wrote nothing (its
    transaction, if any, was rolled back). The caller and the person come from what the
    request resolved before it was refused (``PRINCIPAL_KEY``, ``PATIENT_KEY``)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        watched = Watched(send)
        try:
            await self.app(scope, receive, watched)
        finally:
            status = watched.status
            if status in REFUSALS or status >= 500:
                template = template_of(scope)
                if template is not None and _personal(template):
                    await run_in_threadpool(_write_refusal, scope, template, status)


REFUSALS = frozenset({401, 403, 404, 422})


def _personal(template: str) -> bool:
    return "{nhs}" in template or template.startswith("/pages/journey")


def _write_refusal(scope: Scope, template: str, status: int) -> None:
    state = scope.get("state") or {}
    ledger = scope["app"].state.ledger
    try:
        with ledger.connection() as conn, conn.transaction():
            record_event(
                conn,
                state.get(PRINCIPAL_KEY),
                f"{scope['method']} {template}",
                patient_id=state.get(PATIENT_KEY),
                outcome="refused" if status < 500 else "failed",
                status=status,
                via="page" if template.startswith("/pages") else "api",
            )
    except Exception as exc:  # the answer is gone already; say so without the details
        log.error("could not write the access-log row of a refusal: %s", type(exc).__name__)
