"""The National Data Opt-out register, minimal: who must be left out of secondary use.

A person who opted out of their data being used for research and planning is listed
here by internal ``patient_id`` (never the NHS number). Record-level outputs for
evaluators (the FHIR bulk export) call ``opted_out_patient_ids`` and leave those people
out entirely. The table is created idempotently by ``migrate``, and read as empty until
it exists, so a reader never fails on a database that has no register yet.
"""

from __future__ import annotations

from typing import Any

import psycopg

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS optout_register (
        patient_id   text PRIMARY KEY,
        recorded_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
)


def migrate(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('carejourney.optout.migrate'))")
        for statement in SCHEMA:
            conn.execute(statement)


def opt_out(conn: psycopg.Connection[Any], patient_id: str) -> None:
    """Record that the person opted out (idempotent)."""
    migrate(conn)
    conn.execute(
        "INSERT INTO optout_register (patient_id) VALUES (%s) ON CONFLICT DO NOTHING",
        (str(patient_id),),
    )


def opted_out_patient_ids(conn: psycopg.Connection) -> frozenset[str]:
    """Every opted-out person's ``patient_id`` (as text); empty when there is no register."""
    exists = conn.execute("SELECT to_regclass('optout_register') IS NOT NULL").fetchone()
    if not exists or not _first(exists):
        return frozenset()
    return frozenset(str(_first(r)) for r in conn.execute("SELECT patient_id FROM optout_register"))


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
