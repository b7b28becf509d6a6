"""The walk up the standing merges to the person who stands for a patient id.

A standing merge (``domain/merges.py``) points from the merged person to the survivor,
and chains are transitive, so the person a patient id stands for is the root of its
chain. The walk is written once for each place the merges are held:

* ``chain_root``: survivors already in memory (the batch being placed, the folds);
* ``walk_up``: the ``person_merges`` table, as the recursive CTE every query that
  resolves a person is built on (the ledger's person reads, the opt-out register, the
  read side's ``resolve``).

Neither loops on bad data: the rules never make a cycle, ``chain_root`` stops at a
repeat and the SQL walk at depth 1000. This module imports nothing of ours, so both
``merges`` and ``optout`` (which ``merges`` uses) can build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg


def chain_root(patient: UUID, survivor: Callable[[UUID], UUID | None]) -> UUID:
    """Up the chain of standing merges (``survivor(p)``: who ``p`` was merged into, or
    None) to the person who stands for ``patient``."""
    seen = {patient}
    while (up := survivor(patient)) is not None and up not in seen:
        patient = up
        seen.add(up)
    return patient


def walk_up(start: str) -> str:
    """``WITH RECURSIVE up(patient_id, depth, merge_event_id, merged_patient_id)``: each
    patient id the query ``start`` selects (one column; depth 0), then one row per
    standing merge up its chain (``patient_id`` the survivor reached, ``merge_event_id``
    and ``merged_patient_id`` the merge taken). The caller appends its SELECT from ``up``;
    with one start, the row of greatest depth is the root (``ROOT``)."""
    return f"""
    WITH RECURSIVE up(patient_id, depth, merge_event_id, merged_patient_id) AS (
        SELECT start.patient_id, 0, NULL::uuid, NULL::uuid FROM ({start}) AS start(patient_id)
        UNION ALL
        SELECT m.survivor_patient_id, up.depth + 1, m.merge_event_id, m.merged_patient_id
        FROM person_merges m JOIN up ON m.merged_patient_id = up.patient_id
        WHERE m.standing AND up.depth < 1000
    )
    """


# The end of a walk from one patient id: the person who stands for it.
ROOT = "SELECT patient_id FROM up ORDER BY depth DESC LIMIT 1"


def root_of(conn: psycopg.Connection[Any], start: str, params: Any) -> UUID | None:
    """The root of the walk from the one patient id ``start`` selects (None when it
    selects none), whatever the connection's row factory."""
    row = conn.execute(walk_up(start) + ROOT, params).fetchone()
    if row is None:
        return None
    patient: UUID = row["patient_id"] if isinstance(row, dict) else row[0]
    return patient
