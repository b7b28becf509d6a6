"""The ledger's events as subscribers outside it see them: as recorded, no identifiers.

Shared by ``GET /v1/log`` and the ledger topic (``consumers/ledger_topic.py``). The NHS
number is never in the ledger; the patient id is replaced by the keyed pseudonym the
measures use (HMAC-SHA-256 under ``CAREJOURNEY_PSEUDONYM_KEY``), and so is a merge's
``merged_patient_id`` (``merged_person``): a subscriber groups a person's events without
learning who they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from domain.journey import RecordedEvent
from projections import log
from projections.measures.privacy import pseudonym


def public(event: RecordedEvent, key: str) -> dict[str, Any]:
    """The event as a subscriber sees it (module docstring)."""
    data = dict(event.data)
    merged = data.pop("merged_patient_id", None)
    if merged is not None:
        data["merged_person"] = pseudonym(merged, key)
    return {
        "position": event.position,
        "event_id": str(event.event_id),
        "person": pseudonym(event.patient_id, key),
        "version": event.version,
        "type": event.type,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "source": event.source,
        "recorded_by": event.recorded_by,
        "data": data,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
    }


def after(
    conn: psycopg.Connection[Any], position: int, limit: int, loads: Callable[[bytes], Any]
) -> tuple[list[RecordedEvent], int]:
    """Up to ``limit`` events after ``position`` in position order, and the head, in one
    snapshot (``conn``: a ``projections.log.connect`` connection, inside a transaction)."""
    head = log.head(conn)
    events: Iterator[RecordedEvent] = log.read_log(
        conn, position, head, loads, itersize=min(limit, 10_000)
    )
    out: list[RecordedEvent] = []
    for event in events:
        out.append(event)
        if len(out) >= limit:
            break
    return out, head
