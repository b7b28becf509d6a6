"""Publishing the alert feed to Kafka, exactly once in effect (``carejourney alerts publish``).

The alert feed (``projections/alert_feed.py``) numbers every change coordinators are
shown, 1, 2, 3... This publisher sends them to ``CAREJOURNEY_ALERTS_TOPIC`` in that
order, keyed by who holds the alert (the coordinator's id, or ``team:<ODS code>`` for a
practice's team queue, so one holder's changes stay in order on one partition), and
keeps in PostgreSQL (``alert_publications``) the last sequence number it knows is on the
topic and each partition's end offset at that moment.

A crash can land between the broker accepting a batch and PostgreSQL recording it, or in
the middle of a batch. So on start the publisher first reads the topic from the stored
end offsets to its end and collects the sequence numbers already there (each message
carries its ``seq`` in a header): those are not sent again; every later change is.
Within a partition the producer keeps order (one request in flight, acks from all
in-sync replicas), so what reached the topic of a batch is a prefix per partition and a
resend never reorders one holder's changes. The effect: every change of the feed is on
the topic once, whatever point the publisher was killed at; a consumer that also
dedupes by ``(alert_id, seq)`` is safe against anything else.

Messages carry no NHS number and no patient id: the alert's id, kind, holder, times,
positions and detail. Who the person is, a coordinator reads over HTTP, where every read
is in the access log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka import KafkaProducer, TopicPartition
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from consumers.broker import Broker
from projections import alert_feed

log = logging.getLogger(__name__)

DDL = """
    CREATE TABLE IF NOT EXISTS alert_publications (
        topic       text PRIMARY KEY,
        seq         bigint NOT NULL,
        offsets     jsonb NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now()
    )
"""
BATCH = 500


def key_of(change: dict[str, Any]) -> str:
    """The message key: who holds the alert."""
    if change["team_queue"]:
        return f"team:{change['organisation']}"
    return str(change["coordinator_id"])


def message(change: dict[str, Any]) -> bytes:
    body = {"seq": change["seq"], "change": change["change"], **change["alert"]}
    return json.dumps(body, default=str, separators=(",", ":")).encode()


@dataclass(slots=True)
class Published:
    """What one pass sent."""

    sent: int
    skipped: int  # found on the topic already (sent before a crash)
    seq: int


class AlertPublisher:
    """Sends the feed after the stored position; ``run`` loops until stopped."""

    def __init__(self, database_url: str, broker: Broker, topic: str, batch: int = BATCH) -> None:
        self.database_url = database_url
        self.batch = batch
        self.broker = broker
        self.topic = topic
        self.producer: KafkaProducer | None = None
        self.partitions: list[int] = []
        self.recovered = False
        self.there: set[int] = set()  # on the topic already, found when recovering

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.database_url, autocommit=True)

    def migrate(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(DDL)
        alert_feed.migrate(conn)

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
                "SELECT seq, offsets FROM alert_publications WHERE topic = %s", (self.topic,)
            ).fetchone()
        if row is None:
            return 0, {}
        return int(row["seq"]), {int(p): int(o) for p, o in row["offsets"].items()}

    def _store(self, conn: psycopg.Connection[Any], seq: int, offsets: dict[int, int]) -> None:
        conn.execute(
            "INSERT INTO alert_publications (topic, seq, offsets) VALUES (%s, %s, %s)"
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
        """Sync the feed and send everything after the stored position (one batch)."""
        with self.connect() as conn:
            alert_feed.sync(conn)
            seq, offsets = self._state(conn)
            if not self.recovered:
                self.there = {s for s in self.on_topic_since(offsets) if s > seq}
                self.recovered = True
            there = self.there
            batch = alert_feed.changes(conn, seq, limit=self.batch)
            if not batch:
                return Published(0, 0, seq)
            producer = self._producer()
            futures = []
            skipped = 0
            for change in batch:
                if change["seq"] in there:
                    skipped += 1
                    continue
                futures.append(
                    producer.send(
                        self.topic,
                        key=key_of(change).encode(),
                        value=message(change),
                        headers=[
                            ("seq", str(change["seq"]).encode()),
                            ("alert_id", str(change["alert_id"]).encode()),
                            ("change", change["change"].encode()),
                        ],
                    )
                )
            producer.flush(60)
            for future in futures:
                future.get(timeout=60)  # raises if any was not accepted
            last = int(batch[-1]["seq"])
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
