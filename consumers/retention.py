"""How long refused messages are kept: ``CAREJOURNEY_REJECTION_RETENTION_DAYS`` (30).

A refused Kafka message (envelope or raw HL7 v2 ADT, with full demographics) is kept in
``consumer_rejections`` so it can be produced to the dead-letter topic and counted. Kept
whole for ever, it would be a second, unmanaged copy of people's data. ``purge``
(``carejourney retention run``, and every ``RUN_EVERY_SECONDS`` inside each running
``carejourney consume``) deletes the rows older than the retention that were already
produced to the dead-letter topic, and strips key, value and header values from older
rows still waiting to be produced (the dead letter then goes out without the message,
its reason and position intact). Partition counts (``consumer_partitions``) are apart
and stay. Copies already on the dead-letter topics age out with the topics' own
retention (set it no longer than this one, ``docs/governance.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

RUN_EVERY_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Purged:
    deleted: int
    stripped: int

    def as_dict(self) -> dict[str, int]:
        return {"deleted": self.deleted, "stripped": self.stripped}


def purge(conn: psycopg.Connection[Any], days: int) -> Purged:
    """Apply the retention once (idempotent; nothing to do when no row is older)."""
    exists = conn.execute("SELECT to_regclass('consumer_rejections') IS NOT NULL").fetchone()
    if not (exists and _first(exists)):
        return Purged(0, 0)
    with conn.transaction():
        deleted = conn.execute(
            "DELETE FROM consumer_rejections"
            " WHERE created_at < now() - make_interval(days => %s) AND sent_at IS NOT NULL",
            (days,),
        ).rowcount
        stripped = conn.execute(
            "UPDATE consumer_rejections SET key = NULL, value = NULL,"
            " header_values = array_fill(NULL::bytea, ARRAY[cardinality(header_keys)]),"
            " scrubbed_at = coalesce(scrubbed_at, now())"
            " WHERE created_at < now() - make_interval(days => %s) AND sent_at IS NULL"
            " AND (key IS NOT NULL OR value IS NOT NULL)",
            (days,),
        ).rowcount
    return Purged(deleted, stripped)


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]
