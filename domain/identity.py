"""The identity register: NHS number <-> opaque ``patient_id``.

An ordinary, mutable table, kept apart from the immutable log so the log never holds an
NHS number and a person can be erased without rewriting history: after ``erase`` the
old ``patient_id`` is unlinkable, and a later event for the same NHS number opens a new
``patient_id`` (docs/architecture.md, "No direct identifier").
Connections come from the ledger's pool, so rows are dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import DictRow


def resolve(conn: psycopg.Connection[DictRow], nhs_numbers: Iterable[str]) -> dict[str, UUID]:
    """Map each NHS number to its patient id, registering the ones not seen before.

    Runs in its own short transaction: a registration is harmless even if the events
    that caused it are later refused, and racing writers agree through the primary key.
    """
    wanted = sorted(set(nhs_numbers))
    if not wanted:
        return {}
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO identity_register (nhs_number, patient_id)
            SELECT n, p FROM unnest(%s::text[], %s::uuid[]) AS u(n, p)
            ON CONFLICT (nhs_number) DO NOTHING
            """,
            (wanted, [uuid4() for _ in wanted]),
        )
        rows = conn.execute(
            "SELECT nhs_number, patient_id FROM identity_register WHERE nhs_number = ANY(%s)",
            (wanted,),
        ).fetchall()
    return {r["nhs_number"]: r["patient_id"] for r in rows}


def lookup(conn: psycopg.Connection[DictRow], nhs_number: str) -> UUID | None:
    row = conn.execute(
        "SELECT patient_id FROM identity_register WHERE nhs_number = %s", (nhs_number,)
    ).fetchone()
    return None if row is None else row["patient_id"]


def erase(conn: psycopg.Connection[DictRow], nhs_number: str) -> UUID | None:
    """Forget which NHS number a patient id belonged to; returns the erased patient id."""
    with conn.transaction():
        row = conn.execute(
            "DELETE FROM identity_register WHERE nhs_number = %s RETURNING patient_id",
            (nhs_number,),
        ).fetchone()
    return None if row is None else row["patient_id"]
