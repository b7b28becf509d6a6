"""The National Data Opt-out register: people whose data leave direct care for nothing else.

A person who opted out (the NHS's National Data Opt-out, applied by the organisation that
releases data) is excluded from every evaluator-facing output: the measures (CLI, API,
CSV, dashboard) and any bulk export for secondary use, which call
``opted_out_patient_ids``. Direct care (coordinators' and publishers' views) and
auditors' person-level views are unaffected: the opt-out covers use of data beyond
the person's own care, not their care.

The register is kept by NHS number, as opt-out lists arrive (``carejourney optout
add|remove|import|list``, ``/v1/optout``), so a person who opted out before any of their
events arrive is excluded from the moment they do. Each row also keeps the person's
internal ``patient_id`` once known, so an erasure (which deletes the NHS number from the
identity register and here) does not bring their rows back into reports. A merge counts:
the survivor of a merge with an opted-out person is opted out (they are one person).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from domain.merge_walk import walk_up

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS optout_register (
        id          bigserial PRIMARY KEY,
        nhs_number  text UNIQUE,
        patient_id  uuid,
        added_at    timestamptz NOT NULL DEFAULT now(),
        source      text NOT NULL DEFAULT 'cli',
        CHECK (nhs_number IS NOT NULL OR patient_id IS NOT NULL)
    )
    """,
    "CREATE INDEX IF NOT EXISTS optout_register_patient_idx ON optout_register (patient_id)",
)

# Every patient id an opted-out row names (directly, or through the identity register),
# then up each chain of standing merges to the survivor.
OPTED_OUT = (
    walk_up(
        "SELECT r.patient_id FROM optout_register r WHERE r.patient_id IS NOT NULL"
        " UNION SELECT i.patient_id FROM optout_register r"
        " JOIN identity_register i ON i.nhs_number = r.nhs_number"
    )
    + "SELECT DISTINCT patient_id FROM up"
)


@dataclass(frozen=True, slots=True)
class Entry:
    nhs_number: str | None
    patient_id: UUID | None
    added_at: datetime
    source: str


def opted_out_patients(conn: psycopg.Connection[Any]) -> frozenset[UUID]:
    """The internal patient ids of everyone opted out, survivors of merges with them
    included: what every evaluator-facing output leaves out."""
    rows = conn.execute(OPTED_OUT).fetchall()
    return frozenset(_first(r) for r in rows)  # a uuid column: psycopg gives UUIDs


def opted_out_patient_ids(conn: psycopg.Connection[Any]) -> frozenset[str]:
    """``opted_out_patients`` as text, for outputs keyed by the id's text."""
    return frozenset(str(p) for p in opted_out_patients(conn))


def add(conn: psycopg.Connection[Any], nhs_numbers: Iterable[str], source: str = "cli") -> int:
    """Register opt-outs (already validated numbers); returns how many were new."""
    wanted = sorted(set(nhs_numbers))
    if not wanted:
        return 0
    with conn.transaction():
        cursor = conn.execute(
            """
            INSERT INTO optout_register (nhs_number, patient_id, source)
            SELECT n, i.patient_id, %s FROM unnest(%s::text[]) AS u(n)
              LEFT JOIN identity_register i ON i.nhs_number = u.n
            ON CONFLICT (nhs_number) DO NOTHING
            """,
            (source, wanted),
        )
        return cursor.rowcount


def remove(conn: psycopg.Connection[Any], nhs_numbers: Iterable[str]) -> int:
    """Withdraw opt-outs (the person changed their choice); returns how many went."""
    wanted = sorted(set(nhs_numbers))
    if not wanted:
        return 0
    with conn.transaction():
        return conn.execute(
            "DELETE FROM optout_register WHERE nhs_number = ANY(%s)", (wanted,)
        ).rowcount


def entries(conn: psycopg.Connection[Any], after: int = 0, limit: int = 1000) -> list[Any]:
    """The register in the order it was written, a page after id ``after``."""
    return conn.execute(
        "SELECT id, nhs_number, patient_id, added_at, source FROM optout_register"
        " WHERE id > %s ORDER BY id LIMIT %s",
        (after, limit),
    ).fetchall()


def count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM optout_register").fetchone()
    return int(_first(row))


def forget_numbers(conn: psycopg.Connection[Any], patients: Iterable[UUID]) -> int:
    """On erasure: keep the opt-out by patient id only, without the NHS number."""
    people = list(patients)
    if not people:
        return 0
    return conn.execute(
        "UPDATE optout_register r SET patient_id = coalesce(r.patient_id, i.patient_id),"
        " nhs_number = NULL FROM identity_register i"
        " WHERE i.nhs_number = r.nhs_number AND i.patient_id = ANY(%s)",
        (people,),
    ).rowcount


def _first(row: Any) -> Any:
    if isinstance(row, dict):
        return next(iter(row.values()))
    return row[0]


def opt_out(conn: psycopg.Connection[Any], patient_id: str) -> None:
    """Register an opt-out by internal patient id (idempotent): for a person the caller
    already resolved, e.g. a register received with pseudonymous ids."""
    conn.execute(
        "INSERT INTO optout_register (patient_id, source) SELECT %s::uuid, 'id'"
        " WHERE NOT EXISTS (SELECT 1 FROM optout_register WHERE patient_id = %s::uuid)",
        (str(patient_id), str(patient_id)),
    )
