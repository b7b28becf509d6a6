"""Where each Kafka partition stands, kept in PostgreSQL with the events it produced.

Two records per topic-partition, both written in the batch's one transaction:

* the eventsourcing tracking row ``notification_tracking("kafka:TOPIC:PARTITION")`` holding
  the last offset applied (the library refuses to move it backwards or repeat it), read
  on partition assignment to seek to ``offset + 1``;
* a ``consumer_partitions`` row with the same offset and exact counters (consumed,
  recorded, duplicates, conflicts, rejected, noted). Its offset doubles as a fence: the
  batch only commits if the row still holds the offset this consumer last saw, so a
  consumer that lost its partitions in a rebalance (a "zombie") can never commit over the
  new owner's work, whichever of them commits first.

Kafka's own committed offsets are advisory only (monitoring tools read them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import Cursor
from psycopg.rows import DictRow

from consumers.outcome import Outcome
from domain.ledger import Ledger

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS consumer_partitions (
        topic        text NOT NULL,
        partition    integer NOT NULL,
        last_offset  bigint NOT NULL,
        consumed     bigint NOT NULL DEFAULT 0,
        recorded     bigint NOT NULL DEFAULT 0,
        duplicates   bigint NOT NULL DEFAULT 0,
        conflicts    bigint NOT NULL DEFAULT 0,
        rejected     bigint NOT NULL DEFAULT 0,
        noted        bigint NOT NULL DEFAULT 0,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS consumer_rejections (
        id              bigserial PRIMARY KEY,
        topic           text NOT NULL,
        partition       integer NOT NULL,
        "offset"        bigint NOT NULL,
        dead_letter_topic text NOT NULL,
        key             bytea,
        header_keys     text[] NOT NULL,
        header_values   bytea[] NOT NULL,
        value           bytea,
        status          text NOT NULL,
        event_id        text,
        reason          text NOT NULL,
        errors          jsonb NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        sent_at         timestamptz,
        scrubbed_at     timestamptz,
        UNIQUE (topic, partition, "offset")
    )
    """,
    # The dead-letter sender and --stats read the unsent rows only.
    "CREATE INDEX IF NOT EXISTS consumer_rejections_unsent_idx"
    " ON consumer_rejections (topic, id) WHERE sent_at IS NULL",
)

_migrated: set[str] = set()


class Fenced(Exception):
    """Another consumer (or our own commit whose acknowledgement was lost) moved a
    partition's stored offset: the batch is abandoned and the partitions re-read."""


COUNTERS = ("consumed", "recorded", "duplicates", "conflicts", "rejected", "noted")
_COLUMN = {
    "recorded": "recorded",
    "duplicate": "duplicates",
    "conflict": "conflicts",
    "rejected": "rejected",
    "noted": "noted",
}

ADVANCE = """
    WITH batch AS (
        SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[],
            %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])
            AS u(topic, partition, expected, last_offset,
                 consumed, recorded, duplicates, conflicts, rejected, noted)
    ), moved AS (
        UPDATE consumer_partitions c SET
            last_offset = b.last_offset, consumed = c.consumed + b.consumed,
            recorded = c.recorded + b.recorded, duplicates = c.duplicates + b.duplicates,
            conflicts = c.conflicts + b.conflicts, rejected = c.rejected + b.rejected,
            noted = c.noted + b.noted, updated_at = now()
        FROM batch b
        WHERE c.topic = b.topic AND c.partition = b.partition AND c.last_offset = b.expected
        RETURNING 1
    ), started AS (
        INSERT INTO consumer_partitions (topic, partition, last_offset, consumed, recorded,
            duplicates, conflicts, rejected, noted)
        SELECT topic, partition, last_offset, consumed, recorded, duplicates, conflicts,
            rejected, noted
        FROM batch b WHERE NOT EXISTS (
            SELECT 1 FROM consumer_partitions c
            WHERE c.topic = b.topic AND c.partition = b.partition)
        ON CONFLICT (topic, partition) DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM moved) + (SELECT count(*) FROM started) AS n
"""


def migrate(conn: psycopg.Connection[Any]) -> None:
    """Create the consumer tables; safe to run any number of times, from any process."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('carejourney.migrate.consumers'))")
        for statement in SCHEMA:
            conn.execute(statement)


def ensure_tables(ledger: Ledger) -> None:
    """``migrate`` once per database per process (every batch calls this)."""
    if ledger.database_url in _migrated:
        return
    with ledger.connection() as conn:
        migrate(conn)
    _migrated.add(ledger.database_url)


def advance(
    curs: Cursor[DictRow],
    outcomes: Sequence[Outcome],
    expected: Mapping[tuple[str, int], int | None],
) -> None:
    """Move each partition of the batch to its last offset and add its counts, only if
    the partition still stands where this consumer last saw it (else ``Fenced``). A
    partition with no row yet starts one (its first batch, or counters reset by hand)."""
    last: dict[tuple[str, int], int] = {}
    counts: dict[tuple[str, int], Counter[str]] = {}
    for o in outcomes:
        tp = (o.message.topic, o.message.partition)
        last[tp] = max(o.message.offset, last.get(tp, -1))
        c = counts.setdefault(tp, Counter())
        c["consumed"] += 1
        c[_COLUMN[o.status]] += 1
    tps = sorted(last)
    row = curs.execute(
        ADVANCE,
        (
            [t for t, _ in tps],
            [p for _, p in tps],
            [expected.get(tp) for tp in tps],
            [last[tp] for tp in tps],
            *([counts[tp][name] for tp in tps] for name in COUNTERS),
        ),
    ).fetchone()
    if row is None or row["n"] != len(tps):
        stale = ", ".join(f"{t}:{p}" for t, p in tps)
        msg = f"stored offsets moved under this consumer (one of {stale})"
        raise Fenced(msg)


def stored_offsets(
    conn: psycopg.Connection[DictRow], partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The last applied offset of each partition that has one (tracking table)."""
    wanted = {f"kafka:{t}:{p}": (t, p) for t, p in partitions}
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT application_name, notification_id FROM notification_tracking"
        " WHERE application_name = ANY(%s)",
        (list(wanted),),
    ).fetchall()
    return {wanted[r["application_name"]]: int(r["notification_id"]) for r in rows}


@dataclass(frozen=True, slots=True)
class PartitionStats:
    """Exact counts for one topic-partition, as committed with the events."""

    topic: str
    partition: int
    last_offset: int
    consumed: int
    recorded: int
    duplicates: int
    conflicts: int
    rejected: int
    noted: int
    dead_letters_pending: int
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["updated_at"] = self.updated_at.isoformat()
        return out


def partition_stats(
    conn: psycopg.Connection[DictRow], topics: Sequence[str] | None = None
) -> list[PartitionStats]:
    """Every partition's counters and unsent dead letters (all topics when None)."""
    rows = conn.execute(
        """
        SELECT c.topic, c.partition, c.last_offset, c.consumed, c.recorded, c.duplicates,
            c.conflicts, c.rejected, c.noted, c.updated_at,
            (SELECT count(*) FROM consumer_rejections r
             WHERE r.sent_at IS NULL AND r.topic = c.topic AND r.partition = c.partition)
            AS pending
        FROM consumer_partitions c
        WHERE %s::text[] IS NULL OR c.topic = ANY(%s::text[])
        ORDER BY c.topic, c.partition
        """,
        (topics, topics),
    ).fetchall()
    return [
        PartitionStats(
            r["topic"],
            r["partition"],
            r["last_offset"],
            r["consumed"],
            r["recorded"],
            r["duplicates"],
            r["conflicts"],
            r["rejected"],
            r["noted"],
            int(r["pending"]),
            r["updated_at"],
        )
        for r in rows
    ]
