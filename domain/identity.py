"""The identity register: identifiers (NHS number, local ids) <-> opaque ``patient_id``.

Two tables: ``identity_register`` (NHS number -> patient id, one each way) and
``local_identifiers`` ((assigning authority, value) -> patient id; a person may hold
several, e.g. one MRN per hospital). A person first known by a local id gets a new
patient id; a later envelope naming both an NHS number and that local id links them
(the number is registered to the person; when both are already someone, the ledger
records a merge: ``resolve_people``).

An ordinary, mutable table, kept apart from the immutable log so the log never holds an
NHS number and a person can be erased without rewriting history: after ``erase`` the
old ``patient_id`` is unlinkable, and a later event for the same NHS number opens a new
``patient_id`` (docs/architecture.md, "No direct identifier").
Connections come from the ledger's pool, so rows are dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final
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


LocalKey = tuple[str, str]  # (assigning authority, value)


@dataclass(frozen=True, slots=True)
class Named:
    """How an envelope names its person: an NHS number, a local id, or both."""

    nhs_number: str | None = None
    local_id: LocalKey | None = None


@dataclass(slots=True)
class Resolved:
    """Each named person's patient id, and what the names said about each other.

    ``links[i] = (local_person, nhs_person)``: item ``i`` named an NHS number and a local
    id that were already two people (the ledger merges the first into the second);
    ``problems[i]``: item ``i`` named a local id held by a person with another NHS
    number (never merged on a local id's word: that would merge strangers).
    """

    patients: dict[int, UUID] = field(default_factory=dict)
    links: dict[int, tuple[UUID, UUID]] = field(default_factory=dict)
    problems: dict[int, str] = field(default_factory=dict)


def resolve_people(conn: psycopg.Connection[DictRow], named: Sequence[Named]) -> Resolved:
    """The patient id of each ``named`` person, registering what is new (in order, so an
    item may rely on an earlier one's registration): see ``Resolved``.

    Runs in its own short transaction (like ``resolve``); racing writers agree through
    the primary keys: an insert that loses the race is read back.
    """
    out = Resolved()
    numbers = sorted({n.nhs_number for n in named if n.nhs_number is not None})
    locals_ = sorted({n.local_id for n in named if n.local_id is not None})
    if not locals_:  # the common case: NHS numbers only
        found = resolve(conn, numbers)
        out.patients = {i: found[n.nhs_number] for i, n in enumerate(named) if n.nhs_number}
        return out
    with conn.transaction():
        by_number = _numbers(conn, numbers)
        by_local = _locals(conn, locals_)
        numbered = _people_with_numbers(conn, by_local.values())
        new_numbers: dict[str, UUID] = {}
        new_locals: dict[LocalKey, UUID] = {}
        for index, n in enumerate(named):
            nhs = by_number.get(n.nhs_number) if n.nhs_number else None
            local = by_local.get(n.local_id) if n.local_id else None
            if n.nhs_number is not None and n.local_id is not None:
                if nhs is not None and local is not None and nhs != local:
                    if local in numbered:
                        out.problems[index] = LOCAL_ID_ELSEWHERE
                        continue
                    out.links[index] = (local, nhs)
                elif nhs is None and local is not None and local in numbered:
                    out.problems[index] = LOCAL_ID_ELSEWHERE
                    continue
            patient = nhs or local or uuid4()
            if n.nhs_number is not None and nhs is None:
                by_number[n.nhs_number] = new_numbers[n.nhs_number] = patient
                numbered.add(patient)
            if n.local_id is not None and local is None:
                by_local[n.local_id] = new_locals[n.local_id] = patient
            out.patients[index] = patient
        if new_numbers:
            conn.execute(
                "INSERT INTO identity_register (nhs_number, patient_id)"
                " SELECT * FROM unnest(%s::text[], %s::uuid[]) ON CONFLICT DO NOTHING",
                (list(new_numbers), list(new_numbers.values())),
            )
        if new_locals:
            conn.execute(
                "INSERT INTO local_identifiers (authority, value, patient_id)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::uuid[])"
                " ON CONFLICT DO NOTHING",
                (
                    [a for a, _ in new_locals],
                    [v for _, v in new_locals],
                    list(new_locals.values()),
                ),
            )
        raced = _numbers(conn, list(new_numbers)) != new_numbers or (
            _locals(conn, list(new_locals)) != new_locals
        )
    if raced:  # another writer registered one of them first: decide again on its rows
        return resolve_people(conn, named)
    return out


LOCAL_ID_ELSEWHERE: Final = (
    "the local identifier belongs to a person with another NHS number: correct the"
    " identifiers at the source (the ledger never merges people on a local id alone)"
)


def _numbers(conn: psycopg.Connection[DictRow], numbers: Sequence[str]) -> dict[str, UUID]:
    if not numbers:
        return {}
    rows = conn.execute(
        "SELECT nhs_number, patient_id FROM identity_register WHERE nhs_number = ANY(%s)",
        (list(numbers),),
    )
    return {r["nhs_number"]: r["patient_id"] for r in rows}


def _locals(conn: psycopg.Connection[DictRow], keys: Sequence[LocalKey]) -> dict[LocalKey, UUID]:
    if not keys:
        return {}
    rows = conn.execute(
        "SELECT l.authority, l.value, l.patient_id FROM local_identifiers l"
        " JOIN unnest(%s::text[], %s::text[]) AS k(a, v) ON l.authority = k.a AND l.value = k.v",
        ([a for a, _ in keys], [v for _, v in keys]),
    )
    return {(r["authority"], r["value"]): r["patient_id"] for r in rows}


def _people_with_numbers(conn: psycopg.Connection[DictRow], people: Iterable[UUID]) -> set[UUID]:
    wanted = list(set(people))
    if not wanted:
        return set()
    rows = conn.execute(
        "SELECT patient_id FROM identity_register WHERE patient_id = ANY(%s)", (wanted,)
    )
    return {r["patient_id"] for r in rows}


def lookup_local(conn: psycopg.Connection[DictRow], authority: str, value: str) -> UUID | None:
    row = conn.execute(
        "SELECT patient_id FROM local_identifiers WHERE authority = %s AND value = %s",
        (authority, value),
    ).fetchone()
    return None if row is None else row["patient_id"]
