"""Retractions read before the event they retract: held, retried, then dead-lettered.

Publishers key by NHS number, but not every client partitions alike, and a person's
numbers can be merged: a retraction can reach the consumer before its target. The
ledger refuses it ("no recorded event ... to retract (yet)"); dead-lettering it at
once would lose it for good. Instead, when the feed's ``retraction_hold`` is above
zero, the message is kept in ``consumer_held`` in the batch's own transaction (counted
as ``held``, its offset passed like any other), retried whenever newer events are
recorded, and after ``retraction_hold`` seconds dead-lettered with the ledger's reason
and how long it waited. Each retry is one ``Ledger.append_batch``: the held rows it
settles are deleted, counted and (if refused) kept as dead letters in the same
transaction as the events it records, so a crash or a second consumer can neither
lose nor double one (a row already settled by someone else aborts the retry).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import Cursor
from psycopg.rows import DictRow

from consumers import offsets
from consumers.outcome import Outcome, Status
from domain.contract import FieldError
from domain.ledger import ItemResult, Ledger

log = logging.getLogger(__name__)

TARGET_LOC = "data.retracted_event_id"
TARGET_UNKNOWN = "to retract (yet)"

INSERT = f"""
    INSERT INTO consumer_held ({offsets.KEPT_COLUMNS}, event_id, reason)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def waits_for_target(errors: Sequence[FieldError]) -> bool:
    """Refused only because the event it retracts is not recorded (yet)."""
    return len(errors) == 1 and errors[0].loc == TARGET_LOC and TARGET_UNKNOWN in errors[0].msg


def insert(curs: Cursor[DictRow], held: Sequence[Outcome], dead_letter_topic: str) -> None:
    """Keep the held messages of a batch (inside the batch's transaction)."""
    rows = [
        (*offsets.kept_message(o.message, dead_letter_topic), o.event_id, o.reason()) for o in held
    ]
    if rows:
        curs.executemany(INSERT, rows)


@dataclass(frozen=True, slots=True)
class HeldMessage:
    """A held row as a Kafka record again (what ``Feed.decode`` and dead letters read)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]]


@dataclass(slots=True)
class Retried:
    """What one retry settled, and how many stay held."""

    statuses: Counter[str] = field(default_factory=Counter)
    still_held: int = 0

    @property
    def dead_lettered(self) -> int:
        return self.statuses["rejected"] + self.statuses["conflict"]


def count_held(ledger: Ledger, topics: Sequence[str]) -> int:
    with ledger.connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM consumer_held WHERE topic = ANY(%s)", (list(topics),)
        ).fetchone()
    return int(row["n"])


def settle(
    curs: Cursor[DictRow],
    rows: Sequence[dict[str, Any]],
    judged: dict[int, ItemResult],
    hold: float,
    done: Retried,
) -> list[tuple[int, Status, tuple[FieldError, ...]]]:
    """Inside the retry's transaction: delete what is settled and move the counters;
    returns the refused (row index, status, errors) for the caller to keep as dead
    letters. A row already gone (another consumer settled it) aborts the whole retry
    (``offsets.Fenced``)."""
    done.statuses.clear()
    settled: list[int] = []
    kept: list[int] = []
    refused: list[tuple[int, Status, tuple[FieldError, ...]]] = []
    moves: dict[tuple[str, int], Counter[str]] = {}
    for i, row in enumerate(rows):
        item = judged.get(i)
        status = "recorded" if item is None else item.status
        errors = () if item is None else item.errors
        if status == "rejected" and waits_for_target(errors) and row["age"] < hold:
            kept.append(row["id"])
            continue
        if status == "rejected" and waits_for_target(errors):
            errors = (
                FieldError(
                    errors[0].loc,
                    f"{errors[0].msg}; held {row['age']:.0f} s while newer events were "
                    "recorded, and the event it retracts never came",
                ),
            )
        settled.append(row["id"])
        done.statuses[status] += 1
        tp = (row["topic"], row["partition"])
        moves.setdefault(tp, Counter())[status] += 1
        if status in ("rejected", "conflict"):
            refused.append((i, status, errors))
    done.still_held = len(kept)
    if kept:
        curs.execute("UPDATE consumer_held SET tries = tries + 1 WHERE id = ANY(%s)", (kept,))
    if not settled:
        return refused
    gone = curs.execute(
        "DELETE FROM consumer_held WHERE id = ANY(%s) RETURNING id", (settled,)
    ).fetchall()
    if len(gone) != len(settled):
        msg = "held messages settled by another consumer meanwhile"
        raise offsets.Fenced(msg)
    for (topic, partition), c in moves.items():
        curs.execute(
            "UPDATE consumer_partitions SET held = held - %s, recorded = recorded + %s,"
            " duplicates = duplicates + %s, conflicts = conflicts + %s,"
            " rejected = rejected + %s, updated_at = now()"
            " WHERE topic = %s AND partition = %s",
            (
                c.total(),
                c["recorded"],
                c["duplicate"],
                c["conflict"],
                c["rejected"],
                topic,
                partition,
            ),
        )
    return refused


def select(ledger: Ledger, partitions: Collection[tuple[str, int]], limit: int) -> list[Any]:
    """The oldest held rows of ``partitions`` (with their age in seconds)."""
    with ledger.connection() as conn:
        rows = conn.execute(
            'SELECT id, topic, partition, "offset", dead_letter_topic, key, header_keys,'
            " header_values, value, event_id, reason,"
            " extract(epoch FROM now() - held_at)::float AS age"
            " FROM consumer_held WHERE topic = ANY(%s) ORDER BY id LIMIT %s",
            (sorted({t for t, _ in partitions}), limit),
        ).fetchall()
    return [r for r in rows if (r["topic"], r["partition"]) in partitions]


def message(row: dict[str, Any]) -> HeldMessage:
    headers = [
        (k, bytes(v) if v is not None else None)
        for k, v in zip(row["header_keys"], row["header_values"], strict=True)
    ]
    return HeldMessage(
        row["topic"],
        row["partition"],
        row["offset"],
        bytes(row["key"]) if row["key"] is not None else None,
        bytes(row["value"]) if row["value"] is not None else None,
        headers,
    )
