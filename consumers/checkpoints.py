"""Checkpoints outward: every signed checkpoint to a Kafka topic, so copies live outside
the database (an auditor subscribes and keeps them).

Publication is tracked like a projection (``checkpoint_publications``: the last
checkpoint id each topic has had), moved only after the broker acknowledged, so a
restart neither loses a checkpoint nor (beyond one re-send after a crash between the
acknowledgement and the mark) repeats one; consumers dedupe by the note's tree size.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaProducer

from consumers.broker import Broker
from domain import transparency
from domain.ledger import Ledger
from domain.settings import Settings


@dataclass(slots=True)
class CheckpointFeed:
    topic: str
    broker: Broker
    producer: KafkaProducer | None = None

    def publish(self, ledger: Ledger) -> int:
        if self.producer is None:
            self.producer = self.broker.producer()
        producer = self.producer

        def send(checkpoint: transparency.StoredCheckpoint) -> None:
            future = producer.send(
                self.topic,
                key=checkpoint.origin.encode(),
                value=checkpoint.note.encode(),
                headers=[("tree_size", str(checkpoint.size).encode())],
            )
            future.get(timeout=self.broker.timeout_ms / 1000)

        with ledger.connection() as conn:
            return transparency.publish_pending(conn, self.topic, send)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.close(timeout=5)


def for_settings(settings: Settings) -> CheckpointFeed | None:
    """The feed when Kafka is configured; None otherwise."""
    if not settings.kafka_bootstrap_servers:
        return None
    return CheckpointFeed(settings.checkpoint_topic, Broker.from_settings(settings))
