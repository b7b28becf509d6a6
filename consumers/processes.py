"""What each running consumer process is doing or waiting for, kept in PostgreSQL.

A consumer that takes nothing in may be idle, or stuck: waiting for its group to
assign partitions (a join after a SIGKILL takes about a minute against tansu), for a
broker, for PostgreSQL, or with its dead letters undeliverable. The loop writes its
state here when it changes and as a heartbeat, so ``carejourney consume --stats`` (a
different process) can say which, and for how long.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import DictRow

if TYPE_CHECKING:
    from consumers.feed import Feed


def here() -> str:
    """This process, as an operator finds it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(
    conn: psycopg.Connection[Any],
    name: str,
    feed: Feed,
    group_id: str | None,
    state: str,
    since: float,
) -> None:
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO consumer_processes (consumer, feed, topics, group_id, state, since)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (consumer) DO UPDATE SET state = EXCLUDED.state,
                since = EXCLUDED.since, updated_at = now()
            """,
            (
                name,
                feed.name,
                list(feed.topics),
                group_id,
                state,
                datetime.fromtimestamp(since, UTC),
            ),
        )


def gone(conn: psycopg.Connection[Any], name: str) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM consumer_processes WHERE consumer = %s", (name,))


@dataclass(frozen=True, slots=True)
class ProcessState:
    consumer: str
    group_id: str | None
    state: str
    seconds: float  # in this state
    silent: float  # since the last heartbeat (a killed process stops beating)

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "group_id": self.group_id,
            "state": self.state,
            "seconds": round(self.seconds, 1),
            "since_heartbeat": round(self.silent, 1),
        }


def states(conn: psycopg.Connection[DictRow], topics: list[str]) -> list[ProcessState]:
    """The processes consuming any of ``topics``, most recently heard first."""
    rows = conn.execute(
        """
        SELECT consumer, group_id, state,
            extract(epoch FROM now() - since)::float AS seconds,
            extract(epoch FROM now() - updated_at)::float AS silent
        FROM consumer_processes WHERE topics && %s::text[] ORDER BY updated_at DESC
        """,
        (topics,),
    ).fetchall()
    return [
        ProcessState(r["consumer"], r["group_id"], r["state"], r["seconds"], r["silent"])
        for r in rows
    ]
