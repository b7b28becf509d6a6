"""The read audit: who read which person's data, when, through which endpoint.

Every person-level read writes its rows here before the data leaves the server, in the
same request (a read whose log row cannot be written fails instead of answering). The
endpoint is the route *template* (``GET /v1/patients/{nhs}/journey``) and the person is
the ledger's opaque ``patient_id``: the NHS number is never written here, nor to the
server's request log (``carejourney serve`` turns uvicorn's URL-bearing access log off).

The table belongs to the API (not the ledger), so its DDL lives here and runs, idempotently,
when the app starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from api.security import Principal

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
    # The data-sharing agreement a FHIR bulk export ran under (null for other reads).
    "ALTER TABLE api_access_log ADD COLUMN IF NOT EXISTS agreement text",
)


def migrate(conn: Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('carejourney.api.migrate'))")
        for statement in SCHEMA:
            conn.execute(statement)


def record(
    conn: Connection[Any],
    principal: Principal,
    endpoint: str,
    patients: Sequence[UUID],
    agreement: str | None = None,
) -> None:
    """One row per person read (a caseload of 40 people is 40 rows; an export of 5,000
    people 5,000, each naming the data-sharing ``agreement``), in one statement."""
    if not patients:
        return
    conn.execute(
        "INSERT INTO api_access_log (principal, role, endpoint, patient_id, agreement)"
        " SELECT %s, %s, %s, p, %s FROM unnest(%s::uuid[]) AS p",
        (principal.name, principal.role.value, endpoint, agreement, list(patients)),
    )


def entries(
    conn: Connection[DictRow],
    *,
    patient_id: UUID | None = None,
    principal: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Entries in the order they were written, filtered, one page after id ``after``."""
    clauses = ["id > %s"]
    params: list[Any] = [after]
    if patient_id is not None:
        clauses.append("patient_id = %s")
        params.append(patient_id)
    if principal is not None:
        clauses.append("principal = %s")
        params.append(principal)
    if since is not None:
        clauses.append("at >= %s")
        params.append(since)
    if until is not None:
        clauses.append("at < %s")
        params.append(until)
    params.append(limit)
    return conn.execute(
        "SELECT id, at, principal, role, endpoint, patient_id, agreement FROM api_access_log"
        f" WHERE {' AND '.join(clauses)} ORDER BY id LIMIT %s",
        params,
    ).fetchall()
