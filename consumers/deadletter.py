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

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from kafka import KafkaProducer
from kafka.errors import (
    InvalidProducerEpochError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from psycopg import Cursor
from psycopg.rows import DictRow

from consumers import offsets
from consumers.outcome import Outcome
from domain import merges
from domain.ledger import Ledger

log = logging.getLogger(__name__)

SEND_LIMIT = 1_000
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes when the broker says none
RECORD_OVERHEAD = 512  # record and batch framing, generously
RECREATE_AFTER_FAILURES = 3
FATAL_PRODUCER_ERRORS = (
    UnknownProducerIdError,
    OutOfOrderSequenceNumberError,
    InvalidProducerEpochError,
)
ERASED = "[erased]"

INSERT = f"""
    INSERT INTO consumer_rejections ({offsets.KEPT_COLUMNS}, status, event_id, reason, errors)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


def insert(curs: Cursor[DictRow], refused: Sequence[Outcome], dead_letter_topic: str) -> None:
    """Keep the refused messages of a batch (inside the batch's transaction)."""
    if not refused:
        return
    rows = [
        (
            *offsets.kept_message(o.message, dead_letter_topic),
            o.status,
            o.event_id,
            o.reason() or o.status,
            json.dumps([{"loc": e.loc, "msg": e.msg} for e in o.errors]),
        )
        for o in refused
    ]
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


@dataclass(slots=True)
class SendResult:
    """What one ``send_pending`` call achieved; ``failure`` names the last problem."""

    sent: int = 0
    done: bool = True
    failure: str | None = None
    fatal: bool = False  # the producer itself is stuck: make a new one


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """An upper bound of the record's size in a batch (what the broker's limit applies to)."""
    return (
        RECORD_OVERHEAD
        + len(key or b"")
        + len(value or b"")
        + sum(len(k.encode()) + len(v) + 10 for k, v in headers)
    )


def fit(
    row: dict[str, Any], limit: int
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter to produce for ``row`` within ``limit`` bytes: as kept when it
    fits; else its value cut to fit with ``dlq.truncated`` saying why and where the
    whole message is kept (``dlq.rejection_id``); if even the key and original headers
    do not fit, only a reference (no value, only our headers)."""
    key = bytes(row["key"]) if row["key"] is not None else None
    value = bytes(row["value"]) if row["value"] is not None else None
    headers = dead_letter_headers(row)
    if record_size(key, value, headers) <= limit:
        return key, value, headers
    original = len(value or b"")
    note = [
        (
            "dlq.truncated",
            (
                f"message of {original} bytes is over the dead-letter topic's limit of "
                f"{limit} bytes; the whole message is kept in consumer_rejections id "
                f"{row['id']}"
            ).encode(),
        ),
        ("dlq.original_size", str(original).encode()),
        ("dlq.rejection_id", str(row["id"]).encode()),
    ]
    budget = limit - record_size(key, b"", headers + note)
    if budget >= 0:
        return key, (value or b"")[:budget], headers + note
    ours = [(k, v) for k, v in headers if k.startswith("dlq.")]
    return None, None, ours + note


def send_pending(
    conn: psycopg.Connection[DictRow],
    producer: KafkaProducer,
    topics: Sequence[str],
    *,
    limit: int = SEND_LIMIT,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    timeout: float = 10.0,
) -> SendResult:
    """Produce up to ``limit`` unsent dead letters of ``topics`` (each fitted to
    ``max_bytes``, see ``fit``) and mark the acknowledged ones sent. One row the broker
    refuses never holds back the others; what failed stays for the next try."""
    rows = conn.execute(
        'SELECT id, topic, partition, "offset", dead_letter_topic, key, header_keys,'
        " header_values, value, status, event_id, reason, errors, created_at"
        " FROM consumer_rejections WHERE sent_at IS NULL AND topic = ANY(%s)"
        " ORDER BY topic, id LIMIT %s",
        (list(topics), limit),
    ).fetchall()
    result = SendResult()
    if not rows:
        return result
    futures = []
    for row in rows:
        try:
            key, value, headers = fit(row, max_bytes)
            future = producer.send(row["dead_letter_topic"], key=key, value=value, headers=headers)
        except MessageSizeTooLargeError:  # the headers alone: send the reference only
            key, value, headers = fit(row, 0)
            try:
                future = producer.send(row["dead_letter_topic"], value=None, headers=headers)
            except KafkaError as exc:
                result.failure = f"dead letter {row['id']}: {exc}"
                continue
        except KafkaError as exc:
            result.failure = str(exc)
            result.fatal = result.fatal or isinstance(exc, FATAL_PRODUCER_ERRORS)
            break  # the producer cannot take more now (buffer full, no metadata)
        futures.append((row["id"], future))
    try:
        producer.flush(timeout=timeout)
    except KafkaError as exc:
        result.failure = f"flush: {exc}"
    sent = []
    for row_id, f in futures:
        if f.is_done and f.succeeded():
            sent.append(row_id)
        elif f.is_done:
            error = f.exception
            result.failure = f"dead letter {row_id}: {error}"
            result.fatal = result.fatal or isinstance(error, FATAL_PRODUCER_ERRORS)
    if sent:
        with conn.transaction():
            conn.execute(
                "UPDATE consumer_rejections SET sent_at = now() WHERE id = ANY(%s)", (sent,)
            )
    result.sent = len(sent)
    result.done = len(sent) == len(rows) and len(rows) < limit
    return result


class Sender:
    """Produces the kept dead letters from a thread of its own, so a dead-letter topic
    that is slow, full or unreachable never holds up consumption (the rows wait in
    PostgreSQL). A producer that keeps failing, or fails with an error it cannot get
    over by itself (``UnknownProducerIdError`` after the broker lost its state), is
    closed and made anew. ``waiting`` says what it waits for, for the loop's log."""

    def __init__(
        self,
        ledger: Ledger,
        make_producer: Callable[[], tuple[KafkaProducer, int]],
        topics: Sequence[str],
        retry_seconds: float = 5.0,
    ) -> None:
        self.ledger = ledger
        self.make_producer = make_producer
        self.topics = topics
        self.retry_seconds = retry_seconds
        self.sent = 0
        self.recreated = 0
        self.waiting: str | None = None
        self._due = threading.Event()
        self._due.set()  # rows an earlier run could not send
        self._closing = threading.Event()
        self._producer: tuple[KafkaProducer, int] | None = None
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name="dead-letters", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """New refusals were committed: send them soon."""
        self._due.set()

    def close(self, timeout: float = 5.0) -> None:
        """One last try (bounded), then close the producer."""
        self._closing.set()
        self._due.set()
        self._thread.join(timeout + 15)
        if self._producer is not None:
            try:
                self._producer[0].close(timeout=timeout)
            except KafkaError as exc:
                log.warning("closing the dead-letter producer: %s", exc)
            self._producer = None

    def _run(self) -> None:
        while True:
            self._due.wait(self.retry_seconds)
            self._due.clear()
            closing = self._closing.is_set()
            try:
                self._send_all()
            except Exception as exc:  # the thread must not die: rows wait in PostgreSQL
                self.waiting = f"dead-letter topic ({exc})"
                log.warning("dead letters not sent (%s); will retry", exc)
                self._due.set()
            if closing:
                return

    def _send_all(self) -> None:
        while True:
            if self._producer is None:
                self._producer = self.make_producer()
            producer, max_bytes = self._producer
            with self.ledger.connection() as conn:
                result = send_pending(conn, producer, self.topics, max_bytes=max_bytes, timeout=5.0)
            self.sent += result.sent
            if result.failure is None:
                self._failures = 0
                self.waiting = None
                if result.done:
                    return
                continue
            self._failures += 1
            self.waiting = f"the dead-letter topic ({result.failure})"
            log.warning("dead letters not all sent (%s); will retry", result.failure)
            if result.fatal or self._failures >= RECREATE_AFTER_FAILURES:
                log.warning("dead-letter producer stuck: closing it and making a new one")
                with contextlib.suppress(KafkaError):
                    producer.close(timeout=0)
                self._producer = None
                self._failures = 0
                self.recreated += 1
            self._due.set()  # retry after retry_seconds (or at once when woken)
            return


def _family_of(
    conn: psycopg.Connection[DictRow], nhs_number: str | None, local_id: tuple[str, str] | None
) -> list[UUID]:
    """Everyone one person is made of now (merges count), from either identifier."""
    patient = merges.person_now(conn, nhs_number, local_id)
    return [] if patient is None else merges.family(conn, patient)


def numbers_of(
    conn: psycopg.Connection[DictRow],
    nhs_number: str | None,
    local_id: tuple[str, str] | None = None,
) -> list[str]:
    """Every NHS number that identifies the same person now (merges count), so an erase
    scrubs the dead letters of all of them. Call before the register forgets them."""
    given = [nhs_number] if nhs_number is not None else []
    people = _family_of(conn, nhs_number, local_id)
    if not people:
        return given
    rows = conn.execute(
        "SELECT nhs_number FROM identity_register WHERE patient_id = ANY(%s)", (people,)
    ).fetchall()
    return sorted({*given, *(r["nhs_number"] for r in rows)})


def local_values_of(
    conn: psycopg.Connection[DictRow],
    nhs_number: str | None,
    local_id: tuple[str, str] | None = None,
) -> list[str]:
    """The local identifier values (hospital MRNs) of the person named now, merges
    counted, so an erase scrubs dead letters naming them too. Values shorter than
    ``LOCAL_SCRUB_MIN`` are left out: a short code would match strangers' letters."""
    people = _family_of(conn, nhs_number, local_id)
    if not people:
        return []
    rows = conn.execute(
        "SELECT value FROM local_identifiers WHERE patient_id = ANY(%s)", (people,)
    ).fetchall()
    return sorted({r["value"] for r in rows if len(r["value"]) >= LOCAL_SCRUB_MIN})


LOCAL_SCRUB_MIN = 5


def _spellings(nhs_number: str) -> list[str]:
    """How a publisher may have written the number: plain, or grouped 3-3-4."""
    a, b, c = nhs_number[:3], nhs_number[3:6], nhs_number[6:]
    return [nhs_number, f"{a} {b} {c}", f"{a}-{b}-{c}"]


def scrub(
    conn: psycopg.Connection[DictRow], nhs_numbers: Iterable[str], local_values: Iterable[str] = ()
) -> int:
    """Remove what identifies the people from their kept dead letters; returns how many
    rows were scrubbed. The row (topic, partition, offset, status) stays, so counts hold;
    an unsent scrubbed row is still produced, without key, value or header values. A
    held retraction of theirs is scrubbed the same way (its next retry dead-letters it).
    Copies already produced to Kafka age out with the topics' retention (docs/kafka.md).
    """
    spellings = [s for n in nhs_numbers for s in _spellings(n)] + list(local_values)
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
        held = conn.execute(
            """
            UPDATE consumer_held h SET key = NULL, value = NULL,
                header_values = array_fill(NULL::bytea, ARRAY[cardinality(header_keys)]),
                reason = %s, scrubbed_at = now()
            WHERE h.scrubbed_at IS NULL AND EXISTS (
                SELECT 1 FROM unnest(%s::bytea[]) AS n(needle)
                WHERE position(n.needle IN coalesce(h.value, ''::bytea)) > 0
                   OR position(n.needle IN coalesce(h.key, ''::bytea)) > 0
                   OR EXISTS (SELECT 1 FROM unnest(h.header_values) AS x(v)
                              WHERE position(n.needle IN coalesce(x.v, ''::bytea)) > 0))
            RETURNING 1
            """,
            (f"erased while held ({ERASED})", needles),
        ).fetchall()
    return len(rows) + len(held)


def erase_person(
    ledger: Ledger, nhs_number: str | None, local_id: tuple[str, str] | None = None
) -> tuple[UUID | None, int]:
    """``Ledger.erase`` plus the dead letters: forget the person in the register, then
    scrub the kept rejections of every number that identified them. Returns the erased
    patient id (None if the number was not registered) and the rows scrubbed (rows are
    scrubbed even for a number never registered: its messages may all have been refused).
    """
    with ledger.connection() as conn:
        numbers = numbers_of(conn, nhs_number, local_id)
        local_values = local_values_of(conn, nhs_number, local_id)
        people = _family_of(conn, nhs_number, local_id)
    patient = ledger.erase(nhs_number, local_id)
    with ledger.connection() as conn:
        forget_identity_updates(conn, people)
        if conn.execute("SELECT to_regclass('consumer_rejections') AS t").fetchone()["t"] is None:
            return patient, 0
        offsets.migrate(conn)  # tables added since the consumer last ran (consumer_held)
        return patient, scrub(conn, numbers, local_values)


def forget_identity_updates(conn: psycopg.Connection[DictRow], people: list[UUID]) -> int:
    """On erasure: the person's HL7 A08 identity updates go (which demographic fields
    their hospital sent, linked to them); returns how many."""
    if not people:
        return 0
    found = conn.execute("SELECT to_regclass('adt_identity_updates') AS t").fetchone()
    if found is None or found["t"] is None:
        return 0
    return conn.execute(
        "DELETE FROM adt_identity_updates WHERE patient_id = ANY(%s)", (people,)
    ).rowcount
