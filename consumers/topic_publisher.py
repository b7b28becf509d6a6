"""Publishing a numbered sequence from PostgreSQL to a Kafka topic, exactly once in effect.

Used for the alert feed (``consumers/alerts_topic.py``) and the ledger itself
(``consumers/ledger_topic.py``). ``source(conn, after, limit)`` gives the next items in
their order, each with its sequence number (``seq``: the feed's, or the ledger position;
gaps are fine), key and value. The publisher keeps in PostgreSQL
(``topic_publications``) the last ``seq`` it knows is on the topic and each partition's
end offset at that moment.

A crash can land between the broker accepting a batch and PostgreSQL recording it, or in
the middle of a batch. So on start the publisher first reads the topic from the stored
end offsets to its end and collects the sequence numbers already there (each message
carries its ``seq`` in a header): those are not sent again; every later item is. Within
a partition the producer keeps order (one request in flight, acks from all in-sync
replicas), so what reached the topic of a batch is a prefix per partition and a resend
never reorders one key's items. The effect: every item is on the topic once, whatever
point the publisher was killed at.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from kafka import KafkaProducer, TopicPartition
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from consumers.broker import Broker
from domain.database import SESSION_OPTIONS

log = logging.getLogger(__name__)

DDL = """
    CREATE TABLE IF NOT EXISTS topic_publications (
        topic       text PRIMARY KEY,
        seq         bigint NOT NULL,
        offsets     jsonb NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
"""
BATCH = 500


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send: its sequence number, key, value and further headers."""

    seq: int
    key: str
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = field(default=())


Source = Callable[[psycopg.Connection[Any], int, int], Sequence[Outgoing]]


@dataclass(slots=True)
class Published:
    """What one pass sent."""

    sent: int
    skipped: int  # found on the topic already (sent before a crash)
    seq: int


@dataclass(eq=False, repr=False)
class TopicPublisher:
    """Sends what ``source`` gives after the stored position; ``run`` loops until
    stopped. (A dataclass for its constructor only: compared by identity, and no repr
    that would show the database URL with its password.)"""

    database_url: str
    broker: Broker
    topic: str
    source: Source
    batch: int = BATCH
    migrations: tuple[Callable[[psycopg.Connection[Any]], None], ...] = ()
    producer: KafkaProducer | None = field(default=None, init=False)
    partitions: list[int] = field(default_factory=list, init=False)
    recovered: bool = field(default=False, init=False)
    # on the topic already, found when recovering
    there: set[int] = field(default_factory=set, init=False)

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True, options=SESSION_OPTIONS)

    def migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(DDL)
        for migrate in self.migrations:
            migrate(conn)

    def _producer(self) -> KafkaProducer:
        if self.producer is None:
            self.producer = KafkaProducer(
                **self.broker._common(),
                acks="all",
                linger_ms=5,
                max_in_flight_requests_per_connection=1,
                retries=5,
                max_block_ms=self.broker.timeout_ms,
                bootstrap_timeout_ms=self.broker.timeout_ms,
            )
        return self.producer

    def _state(self, conn: psycopg.Connection[Any]) -> tuple[int, dict[int, int]]:
        with conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                "SELECT seq, offsets FROM topic_publications WHERE topic = %s", (self.topic,)
            ).fetchone()
        if row is None:
            return 0, {}
        return int(row["seq"]), {int(p): int(o) for p, o in row["offsets"].items()}

    def _store(self, conn: psycopg.Connection[Any], seq: int, offsets: dict[int, int]) -> None:
        conn.execute(
            "INSERT INTO topic_publications (topic, seq, offsets) VALUES (%s, %s, %s)"
            " ON CONFLICT (topic) DO UPDATE SET seq = excluded.seq,"
            " offsets = excluded.offsets, updated_at = now()",
            (self.topic, seq, Jsonb({str(p): o for p, o in offsets.items()})),
        )

    def _end_offsets(self) -> dict[int, int]:
        consumer = self.broker.consumer(None, 1)
        try:
            parts = [TopicPartition(self.topic, p) for p in self._partitions()]
            ends = consumer.end_offsets(parts)
            return {tp.partition: int(o) for tp, o in ends.items()}
        finally:
            consumer.close()

    def _partitions(self) -> list[int]:
        if not self.partitions:
            count = self.broker.partitions([self.topic]).get(self.topic)
            if not count:
                msg = f"topic {self.topic} does not exist (create it first)"
                raise RuntimeError(msg)
            self.partitions = list(range(count))
        return self.partitions

    def on_topic_since(self, offsets: dict[int, int]) -> set[int]:
        """The feed sequence numbers on the topic after the given offsets (from the
        beginning for a partition not in ``offsets``)."""
        consumer = self.broker.consumer(None, 1000)
        found: set[int] = set()
        try:
            parts = [TopicPartition(self.topic, p) for p in self._partitions()]
            consumer.assign(parts)
            ends = consumer.end_offsets(parts)
            for tp in parts:
                if tp.partition in offsets:
                    consumer.seek(tp, offsets[tp.partition])
                else:
                    consumer.seek_to_beginning(tp)
            remaining = {tp for tp in parts if consumer.position(tp) < ends[tp]}
            deadline = time.monotonic() + 60
            while remaining and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        headers = dict(record.headers or [])
                        if "seq" in headers:
                            found.add(int(headers["seq"]))
                for tp in list(remaining):
                    if consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
            if remaining:
                msg = f"could not read {self.topic} to its end to recover"
                raise RuntimeError(msg)
        finally:
            consumer.close()
        return found

    def publish_once(self) -> Published:
        """Send everything after the stored position (one batch)."""
        with self.connect() as conn:
            seq, offsets = self._state(conn)
            if not self.recovered:
                self.there = {s for s in self.on_topic_since(offsets) if s > seq}
                self.recovered = True
            there = self.there
            batch = self.source(conn, seq, self.batch)
            if not batch:
                return Published(0, 0, seq)
            producer = self._producer()
            futures = []
            skipped = 0
            for item in batch:
                if item.seq in there:
                    skipped += 1
                    continue
                futures.append(
                    producer.send(
                        self.topic,
                        key=item.key.encode(),
                        value=item.value,
                        headers=[("seq", str(item.seq).encode()), *item.headers],
                    )
                )
            producer.flush(60)
            for future in futures:
                future.get(timeout=60)  # raises if any was not accepted
            last = batch[-1].seq
            self.there = {s for s in there if s > last}
            self._store(conn, last, self._end_offsets())
            return Published(len(futures), skipped, last)

    def run(
        self,
        stop: threading.Event,
        poll_seconds: float = 0.5,
        on_batch: Callable[[Published], None] | None = None,
    ) -> None:
        """Publish until ``stop``; waits ``poll_seconds`` when there is nothing new."""
        with self.connect() as conn:
            self.migrate(conn)
        try:
            while not stop.is_set():
                done = self.publish_once()
                if on_batch is not None and (done.sent or done.skipped):
                    on_batch(done)
                if not done.sent and not done.skipped:
                    stop.wait(poll_seconds)
        finally:
            if self.producer is not None:
                self.producer.close(10)
                self.producer = None
