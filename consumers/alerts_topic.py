"""The alert feed to Kafka (``carejourney alerts publish``), exactly once in effect.

The alert feed (``projections/alert_feed.py``) numbers every change coordinators are
shown, 1, 2, 3... The publisher (``consumers/topic_publisher.py``: position and offsets
in PostgreSQL, the topic read back on start) sends them to ``CAREJOURNEY_ALERTS_TOPIC``
in that order, keyed by who holds the alert (the coordinator's id, or
``team:<ODS code>`` for a practice's team queue, so one holder's changes stay in order on
one partition), after syncing the feed. Consumers that also dedupe by
``(alert_id, seq)`` are safe against anything else.

Messages carry no NHS number and no patient id: the alert's id, kind, holder, times,
positions and detail. Who the person is, a coordinator reads over HTTP, where every read
is in the access log.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from consumers.broker import Broker
from consumers.topic_publisher import BATCH, Outgoing, Published, TopicPublisher
from projections import alert_feed

__all__ = ["Published", "alert_publisher", "key_of", "message"]


def key_of(change: dict[str, Any]) -> str:
    """The message key: who holds the alert."""
    if change["team_queue"]:
        return f"team:{change['organisation']}"
    return str(change["coordinator_id"])


def message(change: dict[str, Any]) -> bytes:
    body = {"seq": change["seq"], "change": change["change"], **change["alert"]}
    return json.dumps(body, default=str, separators=(",", ":")).encode()


def changes(conn: psycopg.Connection[Any], after: int, limit: int) -> list[Outgoing]:
    """The feed after ``after`` (synced first, so passed deadlines are in it)."""
    alert_feed.sync(conn)
    return [
        Outgoing(
            c["seq"],
            key_of(c),
            message(c),
            (("alert_id", str(c["alert_id"]).encode()), ("change", c["change"].encode())),
        )
        for c in alert_feed.changes(conn, after, limit=limit)
    ]


def alert_publisher(
    database_url: str, broker: Broker, topic: str, batch: int = BATCH
) -> TopicPublisher:
    return TopicPublisher(
        database_url, broker, topic, changes, batch, migrations=(alert_feed.migrate,)
    )
