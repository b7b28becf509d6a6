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

from consumers.outcome import Message, Outcome
from domain import database
from domain.ledger import Ledger

# A Kafka message kept to be sent on later (refused: ``consumer_rejections``; held back:
# ``consumer_held``): where it came from and all of it, for the dead-letter topic.
KEPT_MESSAGE = """\
        id              bigserial PRIMARY KEY,
        topic           text NOT NULL,
        partition       integer NOT NULL,
        "offset"        bigint NOT NULL,
        dead_letter_topic text NOT NULL,
        key             bytea,
        header_keys     text[] NOT NULL,
        header_values   bytea[] NOT NULL,
        value           bytea,"""
KEPT_COLUMNS = (
    'topic, partition, "offset", dead_letter_topic, key, header_keys, header_values, value'
)


def kept_message(m: Message, dead_letter_topic: str) -> tuple[Any, ...]:
    """The ``KEPT_COLUMNS`` values of a message."""
    headers = list(m.headers or ())
    return (
        m.topic,
        m.partition,
        m.offset,
        dead_letter_topic,
        m.key,
        [k for k, _ in headers],
        [v for _, v in headers],
        m.value,
    )


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
    f"""
    CREATE TABLE IF NOT EXISTS consumer_rejections (
{KEPT_MESSAGE}
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
    # The topic's id when the offset was stored: a topic made again has another.
    "ALTER TABLE consumer_partitions ADD COLUMN IF NOT EXISTS topic_id text",
    # Messages judged but held back (a retraction read before its target): consumed,
    # counted here until they are recorded or dead-lettered (consumers/held.py).
    "ALTER TABLE consumer_partitions ADD COLUMN IF NOT EXISTS held bigint NOT NULL DEFAULT 0",
    f"""
    CREATE TABLE IF NOT EXISTS consumer_held (
{KEPT_MESSAGE}
        event_id        text,
        reason          text NOT NULL,
        held_at         timestamptz NOT NULL DEFAULT now(),
        tries           integer NOT NULL DEFAULT 0,
        scrubbed_at     timestamptz,
        UNIQUE (topic, partition, "offset")
    )
    """,
    # A partition the consumer refused to read on (its stored offset lies past the
    # partition's end, or the topic was made again): until `consume --reset-partition`.
    """
    CREATE TABLE IF NOT EXISTS consumer_stopped (
        topic           text NOT NULL,
        partition       integer NOT NULL,
        stored_offset   bigint,
        partition_end   bigint,
        stored_topic_id text,
        topic_id        text,
        reason          text NOT NULL,
        stopped_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition)
    )
    """,
    # What each running consumer process is doing or waiting for (its heartbeat).
    """
    CREATE TABLE IF NOT EXISTS consumer_processes (
        consumer        text PRIMARY KEY,
        feed            text NOT NULL,
        topics          text[] NOT NULL,
        group_id        text,
        state           text NOT NULL,
        since           timestamptz NOT NULL,
        updated_at      timestamptz NOT NULL DEFAULT now()
    )
    """,
)


class Fenced(Exception):
    """Another consumer (or our own commit whose acknowledgement was lost) moved a
    partition's stored offset: the batch is abandoned and the partitions re-read."""


COUNTERS = ("consumed", "recorded", "duplicates", "conflicts", "rejected", "noted", "held")
_COLUMN = {
    "recorded": "recorded",
    "duplicate": "duplicates",
    "conflict": "conflicts",
    "rejected": "rejected",
    "noted": "noted",
    "held": "held",
}

ADVANCE = """
    WITH batch AS (
        SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[], %s::text[],
            %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[],
            %s::bigint[])
            AS u(topic, partition, expected, last_offset, topic_id,
                 consumed, recorded, duplicates, conflicts, rejected, noted, held)
    ), moved AS (
        UPDATE consumer_partitions c SET
            last_offset = b.last_offset, consumed = c.consumed + b.consumed,
            recorded = c.recorded + b.recorded, duplicates = c.duplicates + b.duplicates,
            conflicts = c.conflicts + b.conflicts, rejected = c.rejected + b.rejected,
            noted = c.noted + b.noted, held = c.held + b.held,
            topic_id = coalesce(b.topic_id, c.topic_id), updated_at = now()
        FROM batch b
        WHERE c.topic = b.topic AND c.partition = b.partition AND c.last_offset = b.expected
        RETURNING 1
    ), started AS (
        INSERT INTO consumer_partitions (topic, partition, last_offset, topic_id, consumed,
            recorded, duplicates, conflicts, rejected, noted, held)
        SELECT topic, partition, last_offset, topic_id, consumed, recorded, duplicates,
            conflicts, rejected, noted, held
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
    database.create_tables(conn, "consumers", SCHEMA)


def ensure_tables(ledger: Ledger) -> None:
    """``migrate`` once per database per process (every batch calls this)."""
    database.ensure_tables(ledger.database_url, ledger.connection, "consumers", SCHEMA)


def advance(
    curs: Cursor[DictRow],
    outcomes: Sequence[Outcome],
    expected: Mapping[tuple[str, int], int | None],
    topic_ids: Mapping[str, str] | None = None,
) -> None:
    """Move each partition of the batch to its last offset and add its counts, only if
    the partition still stands where this consumer last saw it (else ``Fenced``). A
    partition with no row yet starts one (its first batch, or counters reset by hand).
    ``topic_ids`` (the topics' ids as the broker said at assignment) are kept with the
    offsets, so a topic made again under the same name is noticed."""
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
            [(topic_ids or {}).get(t) for t, _ in tps],
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
    """Exact counts for one topic-partition, as committed with the events; ``stopped``
    is why the consumer refuses to read on there (None: it does not)."""

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
    held: int = 0
    stopped: str | None = None

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
            c.conflicts, c.rejected, c.noted, c.held, c.updated_at,
            (SELECT count(*) FROM consumer_rejections r
             WHERE r.sent_at IS NULL AND r.topic = c.topic AND r.partition = c.partition)
            AS dead_letters_pending,
            s.reason AS stopped
        FROM consumer_partitions c
        LEFT JOIN consumer_stopped s ON s.topic = c.topic AND s.partition = c.partition
        WHERE %s::text[] IS NULL OR c.topic = ANY(%s::text[])
        ORDER BY c.topic, c.partition
        """,
        (topics, topics),
    ).fetchall()
    return [PartitionStats(**r) for r in rows]  # the columns are named as the fields


# -- partitions the consumer refuses to read on ------------------------------------------


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a partition must not be read on: reading would skip messages silently."""

    topic: str
    partition: int
    stored_offset: int | None
    partition_end: int | None
    stored_topic_id: str | None
    topic_id: str | None
    reason: str


def stop_partition(conn: psycopg.Connection[Any], stop: Stop) -> None:
    """Record the stop (kept across restarts until ``reset_partition``)."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO consumer_stopped (topic, partition, stored_offset, partition_end,
                stored_topic_id, topic_id, reason)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (topic, partition) DO NOTHING
            """,
            (
                stop.topic,
                stop.partition,
                stop.stored_offset,
                stop.partition_end,
                stop.stored_topic_id,
                stop.topic_id,
                stop.reason,
            ),
        )


def stopped_partitions(
    conn: psycopg.Connection[DictRow], topics: Sequence[str]
) -> dict[tuple[str, int], str]:
    """The stopped partitions of ``topics`` and why."""
    rows = conn.execute(
        "SELECT topic, partition, reason FROM consumer_stopped WHERE topic = ANY(%s)",
        (list(topics),),
    ).fetchall()
    return {(r["topic"], r["partition"]): r["reason"] for r in rows}


def stored_topic_ids(
    conn: psycopg.Connection[DictRow], partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], str]:
    """The topic id kept with each partition's offset (where one was learnt)."""
    wanted = list(partitions)
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT topic, partition, topic_id FROM consumer_partitions"
        " WHERE topic_id IS NOT NULL AND (topic, partition) IN"
        " (SELECT * FROM unnest(%s::text[], %s::int[]))",
        ([t for t, _ in wanted], [p for _, p in wanted]),
    ).fetchall()
    return {(r["topic"], r["partition"]): r["topic_id"] for r in rows}


def reset_partition(
    conn: psycopg.Connection[DictRow], topic: str, partition: int, to: int | None
) -> int | None:
    """The operator's decision for a partition: resume at offset ``to`` (None: the
    partition's earliest). Moves the tracking row and the counters' offset (the counts
    stay), forgets the topic id, lifts any stop. Returns the offset stored before."""
    name = f"kafka:{topic}:{partition}"
    last = -1 if to is None else to - 1
    with conn.transaction():
        before = conn.execute(
            "SELECT notification_id FROM notification_tracking WHERE application_name = %s"
            " FOR UPDATE",
            (name,),
        ).fetchone()
        conn.execute(
            "INSERT INTO notification_tracking (application_name, notification_id)"
            " VALUES (%s, %s) ON CONFLICT (application_name)"
            " DO UPDATE SET notification_id = EXCLUDED.notification_id",
            (name, last),
        )
        conn.execute(
            "INSERT INTO consumer_partitions (topic, partition, last_offset) VALUES (%s, %s, %s)"
            " ON CONFLICT (topic, partition) DO UPDATE SET last_offset = EXCLUDED.last_offset,"
            " topic_id = NULL, updated_at = now()",
            (topic, partition, last),
        )
        conn.execute(
            "DELETE FROM consumer_stopped WHERE topic = %s AND partition = %s",
            (topic, partition),
        )
    return None if before is None else int(before["notification_id"])


def health(conn: psycopg.Connection[DictRow]) -> list[dict[str, Any]]:
    """Per source topic: stopped partitions, held messages, unsent dead letters (for
    ``/metrics``; empty when no consumer ever ran here)."""
    found = conn.execute("SELECT to_regclass('consumer_stopped') AS t").fetchone()
    if found is None or found["t"] is None:
        return []
    rows = conn.execute(
        """
        SELECT c.topic,
            count(s.topic) AS stopped,
            coalesce(sum(c.held), 0) AS held,
            (SELECT count(*) FROM consumer_rejections r
             WHERE r.sent_at IS NULL AND r.topic = c.topic) AS unsent
        FROM consumer_partitions c
        LEFT JOIN consumer_stopped s ON s.topic = c.topic AND s.partition = c.partition
        GROUP BY c.topic ORDER BY c.topic
        """
    ).fetchall()
    return [dict(r) for r in rows]
