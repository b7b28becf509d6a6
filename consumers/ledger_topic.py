"""Every recorded event to ``CAREJOURNEY_LEDGER_TOPIC`` in position order, exactly once in
effect (``carejourney log publish``): the ledger as a Kafka subscription for systems that
build their own views.

Each message is the event as ``GET /v1/log`` shows it (``projections/subscription.py``:
as recorded, no identifiers, the person as a keyed pseudonym), keyed by that pseudonym
so one person's events stay in order on one partition, with the ledger position as its
``seq`` header. The position and partition offsets are kept in PostgreSQL and the topic
is read back on start (``consumers/topic_publisher.py``), so a restart neither loses nor
repeats an event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg

from consumers.broker import Broker
from consumers.topic_publisher import BATCH, Outgoing, TopicPublisher
from projections import subscription


def ledger_publisher(
    database_url: str,
    broker: Broker,
    topic: str,
    pseudonym_key: str,
    loads: Callable[[bytes], Any] = json.loads,
    batch: int = BATCH,
) -> TopicPublisher:
    def events(conn: psycopg.Connection[Any], after: int, limit: int) -> list[Outgoing]:
        with conn.transaction():
            conn.execute("SET LOCAL TIME ZONE 'UTC'")
            found, _head = subscription.after(conn, after, limit, loads)
        out = []
        for event in found:
            shown = subscription.public(event, pseudonym_key)
            out.append(
                Outgoing(
                    event.position,
                    shown["person"],
                    json.dumps(shown, separators=(",", ":"), default=str).encode(),
                    (("event_id", str(event.event_id).encode()), ("type", event.type.encode())),
                )
            )
        return out

    return TopicPublisher(database_url, broker, topic, events, batch)
