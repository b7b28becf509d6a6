"""Dead letters: refused Kafka messages, kept in PostgreSQL first, then produced.

A refused message (not JSON, contract failure, unauthorised source, retraction of an
unknown event, conflicting ``event_id``, a feed's own reasons) becomes a
``consumer_rejections`` row in the SAME transaction as the batch's events and offsets, so
it is never lost and ``--stats`` counts are exact. After the commit the row is produced
to the feed's dead-letter topic with the original key, value and headers plus:

=====================  =============================================================
header                 value
=====================  =============================================================
``dlq.reason``         the reasons, ``loc: msg; loc: msg`` (UTF-8)
``dlq.errors``         JSON ``[{"loc": ..., "msg": ...}]`` (the ledger's result shape)
``dlq.status``         ``rejected`` or ``conflict``
``dlq.event_id``       the envelope's ``event_id`` when one could be read
``dlq.source.topic``   topic the message came from
``dlq.source.partition``, ``dlq.source.offset``   where it was (decimal text)
``dlq.rejected_at``    when the consumer refused it (ISO 8601, UTC)
=====================  =============================================================

and the row is marked sent. Rows not yet marked (broker down, crash between commit and
send) are sent again by the next consumer of that topic, so the dead-letter topic is
at-least-once; ``(dlq.source.topic, dlq.source.partition, dlq.source.offset)`` identifies
a dead letter, so readers can drop repeats.

The rows keep the original bytes, which may hold an NHS number: ``scrub`` (called by
``carejourney erase``) removes key, value and header values of every row that mentions
an erased number, and masks the number in the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import psycopg
from kafka import KafkaProducer
from kafka.errors import KafkaError
from psycopg import Cursor
from psycopg.rows import DictRow

from consumers.outcome import Outcome
from domain import merges
from domain.ledger import Ledger

log = logging.getLogger(__name__)

SEND_LIMIT = 1_000
ERASED = "[erased]"

INSERT = """
    INSERT INTO consumer_rejections (topic, partition, "offset", dead_letter_topic, key,
        header_keys, header_values, value, status, event_id, reason, errors)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def insert(curs: Cursor[DictRow], refused: Sequence[Outcome], dead_letter_topic: str) -> None:
    """Keep the refused messages of a batch (inside the batch's transaction)."""
    if not refused:
        return
    rows = []
    for o in refused:
        m = o.message
        headers = list(m.headers or ())
        errors = [{"loc": e.loc, "msg": e.msg} for e in o.errors]
        rows.append(
            (
                m.topic,
                m.partition,
                m.offset,
                dead_letter_topic,
                m.key,
                [k for k, _ in headers],
                [v for _, v in headers],
                m.value,
                o.status,
                o.event_id,
                o.reason() or o.status,
                json.dumps(errors),
            )
        )
    curs.executemany(INSERT, rows)


def dead_letter_headers(row: dict[str, Any]) -> list[tuple[str, bytes]]:
    """The original headers, then ours (see the module docstring)."""
    headers: list[tuple[str, bytes]] = [
        (k, bytes(v) if v is not None else b"")
        for k, v in zip(row["header_keys"], row["header_values"], strict=True)
    ]
    ours = {
        "dlq.reason": row["reason"],
        "dlq.errors": json.dumps(row["errors"], ensure_ascii=False),
        "dlq.status": row["status"],
        "dlq.event_id": row["event_id"],
        "dlq.source.topic": row["topic"],
        "dlq.source.partition": str(row["partition"]),
        "dlq.source.offset": str(row["offset"]),
        "dlq.rejected_at": row["created_at"].isoformat(),
    }
    headers.extend((k, v.encode()) for k, v in ours.items() if v is not None)
    return headers


def send_pending(
    conn: psycopg.Connection[DictRow],
    producer: KafkaProducer,
    topics: Sequence[str],
    *,
    limit: int = SEND_LIMIT,
    timeout: float = 10.0,
) -> tuple[int, bool]:
    """Produce up to ``limit`` unsent dead letters of ``topics`` and mark the acknowledged
    ones sent. Returns (sent, all_done); a broker problem leaves rows for the next try."""
    rows = conn.execute(
        'SELECT id, topic, partition, "offset", dead_letter_topic, key, header_keys,'
        " header_values, value, status, event_id, reason, errors, created_at"
        " FROM consumer_rejections WHERE sent_at IS NULL AND topic = ANY(%s)"
        " ORDER BY topic, id LIMIT %s",
        (list(topics), limit),
    ).fetchall()
    if not rows:
        return 0, True
    futures = []
    try:
        for row in rows:
            future = producer.send(
                row["dead_letter_topic"],
                key=bytes(row["key"]) if row["key"] is not None else None,
                value=bytes(row["value"]) if row["value"] is not None else None,
                headers=dead_letter_headers(row),
            )
            futures.append((row["id"], future))
        producer.flush(timeout=timeout)
    except KafkaError as exc:
        log.warning("dead-letter topic unavailable (%s); will retry", exc)
    sent = [row_id for row_id, f in futures if f.is_done and f.succeeded()]
    if sent:
        with conn.transaction():
            conn.execute(
                "UPDATE consumer_rejections SET sent_at = now() WHERE id = ANY(%s)", (sent,)
            )
    return len(sent), len(sent) == len(rows) and len(rows) < limit


def numbers_of(conn: psycopg.Connection[DictRow], nhs_number: str) -> list[str]:
    """Every NHS number that identifies the same person now (merges count), so an erase
    scrubs the dead letters of all of them. Call before the register forgets them."""
    row = conn.execute(
        "SELECT patient_id FROM identity_register WHERE nhs_number = %s", (nhs_number,)
    ).fetchone()
    if row is None:
        return [nhs_number]
    people = merges.family(conn, merges.effective(conn, row["patient_id"]))
    rows = conn.execute(
        "SELECT nhs_number FROM identity_register WHERE patient_id = ANY(%s)", (people,)
    ).fetchall()
    return sorted({nhs_number, *(r["nhs_number"] for r in rows)})


def _spellings(nhs_number: str) -> list[str]:
    """How a publisher may have written the number: plain, or grouped 3-3-4."""
    a, b, c = nhs_number[:3], nhs_number[3:6], nhs_number[6:]
    return [nhs_number, f"{a} {b} {c}", f"{a}-{b}-{c}"]


def scrub(conn: psycopg.Connection[DictRow], nhs_numbers: Iterable[str]) -> int:
    """Remove what identifies the people from their kept dead letters; returns how many
    rows were scrubbed. The row (topic, partition, offset, status) stays, so counts hold;
    an unsent scrubbed row is still produced, without key, value or header values.
    Copies already produced to Kafka age out with the topics' retention (docs/kafka.md).
    """
    spellings = [s for n in nhs_numbers for s in _spellings(n)]
    if not spellings:
        return 0
    needles = [s.encode() for s in spellings]
    with conn.transaction():
        rows = conn.execute(
            """
            SELECT id, reason, errors FROM consumer_rejections r
            WHERE r.scrubbed_at IS NULL AND EXISTS (
                SELECT 1 FROM unnest(%s::bytea[]) AS n(needle)
                WHERE position(n.needle IN coalesce(r.value, ''::bytea)) > 0
                   OR position(n.needle IN coalesce(r.key, ''::bytea)) > 0
                   OR EXISTS (SELECT 1 FROM unnest(r.header_values) AS h(v)
                              WHERE position(n.needle IN coalesce(h.v, ''::bytea)) > 0)
                   OR position(convert_from(n.needle, 'UTF8') IN r.reason) > 0)
            FOR UPDATE
            """,
            (needles,),
        ).fetchall()
        for row in rows:
            reason, errors = row["reason"], json.dumps(row["errors"])
            for s in spellings:
                reason = reason.replace(s, ERASED)
                errors = errors.replace(s, ERASED)
            conn.execute(
                "UPDATE consumer_rejections SET key = NULL, value = NULL,"
                " header_values = array_fill(NULL::bytea, ARRAY[cardinality(header_keys)]),"
                " reason = %s, errors = %s::jsonb, scrubbed_at = now() WHERE id = %s",
                (reason, errors, row["id"]),
            )
    return len(rows)


def erase_person(ledger: Ledger, nhs_number: str) -> tuple[UUID | None, int]:
    """``Ledger.erase`` plus the dead letters: forget the person in the register, then
    scrub the kept rejections of every number that identified them. Returns the erased
    patient id (None if the number was not registered) and the rows scrubbed (rows are
    scrubbed even for a number never registered: its messages may all have been refused).
    """
    with ledger.connection() as conn:
        numbers = numbers_of(conn, nhs_number)
    patient = ledger.erase(nhs_number)
    with ledger.connection() as conn:
        if conn.execute("SELECT to_regclass('consumer_rejections') AS t").fetchone()["t"] is None:
            return patient, 0
        return patient, scrub(conn, numbers)
