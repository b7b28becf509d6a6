"""The alert feed: every change of what coordinators are shown, in one total order.

The alerts read model (``projections/alerts.py``) is a pure fold: its rows are what the
ledger implies, recomputed per person and rebuilt at will, and an alert waiting for a
deadline is a row before it is visible. Live consumers (the SSE stream, the Kafka
publisher, a page) need something else: *changes*, in an order they can resume from.
``sync`` derives them by comparing the rows (as visible at the database clock) with
what has been announced so far (``alert_announced``), and appends one ``alert_feed``
row per difference:

* ``opened``: an alert became visible (its cause was recorded, or its deadline passed);
* ``closed`` / ``reopened``: its status changed (a resolving fact, or that fact's
  retraction);
* ``moved``: it is now held by someone else (a handoff of the person); the holder it
  left sees this change too (``previous_*``);
* ``withdrawn``: it no longer exists (a late fact showed it never should have, e.g. a
  contact recorded late that occurred within the 72 hours).

Changes are numbered 1, 2, 3... without gaps (``seq``), under a transaction-level
advisory lock, in the same transaction that updates ``alert_announced``: concurrent
syncs serialise, a crash leaves either both or neither, and sequence order is commit
order. So a reader that has seen everything up to ``seq`` N resumes with ``seq > N``
and neither misses nor repeats a change. ``sync`` is idempotent and cheap to call
often; the projections runner's follow loop, ``carejourney alerts publish`` and the SSE
stream all call it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb

LOCK = "carejourney.alerts.feed"

DDL = (
    """
    CREATE TABLE IF NOT EXISTS alert_feed (
        seq             bigint PRIMARY KEY,
        alert_id        uuid NOT NULL,
        patient_id      uuid NOT NULL,
        change          text NOT NULL,
        kind            text NOT NULL,
        coordinator_id  text,
        organisation    text NOT NULL,
        team_queue      boolean NOT NULL,
        status          text NOT NULL,
        alert           jsonb NOT NULL,
        announced_at    timestamptz NOT NULL DEFAULT now()
    )
    """,
    # A "moved" change is shown to the holder it left too.
    "ALTER TABLE alert_feed ADD COLUMN IF NOT EXISTS previous_coordinator_id text",
    "ALTER TABLE alert_feed ADD COLUMN IF NOT EXISTS previous_organisation text",
    "ALTER TABLE alert_feed ADD COLUMN IF NOT EXISTS previous_team_queue boolean",
    "CREATE INDEX IF NOT EXISTS alert_feed_coordinator ON alert_feed (coordinator_id, seq)",
    "CREATE INDEX IF NOT EXISTS alert_feed_queue ON alert_feed (organisation, seq)"
    " WHERE team_queue",
    """
    CREATE TABLE IF NOT EXISTS alert_announced (
        alert_id        uuid PRIMARY KEY,
        patient_id      uuid NOT NULL,
        kind            text NOT NULL,
        status          text NOT NULL,
        coordinator_id  text,
        organisation    text NOT NULL,
        team_queue      boolean NOT NULL,
        seq             bigint NOT NULL
    )
    """,
)

# The alert as the feed (and the HTTP reads) show it: no patient id, no NHS number.
ALERT_JSON = """
    jsonb_build_object(
        'alert_id', a.alert_id, 'kind', a.kind, 'coordinator_id', a.coordinator_id,
        'organisation', a.organisation, 'team_queue', a.team_queue,
        'opened_at', a.opened_at, 'opened_recorded_at', a.opened_recorded_at,
        'opened_position', a.opened_position, 'due', a.due, 'positions', a.positions,
        'detail', a.detail, 'status', a.status, 'closed_at', a.closed_at,
        'closed_recorded_at', a.closed_recorded_at, 'closed_position', a.closed_position,
        'close_reason', a.close_reason, 'acknowledged_at', a.acknowledged_at,
        'acknowledged_by', a.acknowledged_by)
"""

# Every visible alert that differs from what was announced, and every announced alert
# that is gone; in the order of the facts that changed them.
DIFF = f"""
    SELECT a.alert_id AS alert_id, a.patient_id, a.kind, a.coordinator_id, a.organisation,
           a.team_queue, a.status,
           CASE WHEN s.alert_id IS NULL THEN 'opened'
                WHEN s.status <> a.status AND a.status = 'closed' THEN 'closed'
                WHEN s.status <> a.status THEN 'reopened'
                ELSE 'moved' END AS change,
           {ALERT_JSON} AS alert,
           s.coordinator_id AS previous_coordinator_id, s.organisation AS previous_organisation,
           s.team_queue AS previous_team_queue,
           greatest(a.opened_position, coalesce(a.closed_position, 0)) AS position,
           a.opened_at AS at
      FROM alerts a
      LEFT JOIN alert_announced s ON s.alert_id = a.alert_id
     WHERE a.opened_at <= %(now)s
       AND (s.alert_id IS NULL OR s.status <> a.status
            OR s.coordinator_id IS DISTINCT FROM a.coordinator_id
            OR s.organisation <> a.organisation)
    UNION ALL
    SELECT s.alert_id, s.patient_id, s.kind, s.coordinator_id, s.organisation, s.team_queue,
           'withdrawn', 'withdrawn',
           jsonb_build_object('alert_id', s.alert_id, 'kind', s.kind,
                              'coordinator_id', s.coordinator_id,
                              'organisation', s.organisation, 'team_queue', s.team_queue,
                              'status', 'withdrawn'),
           NULL, NULL, NULL,
           2147483647, NULL
      FROM alert_announced s
      LEFT JOIN alerts a ON a.alert_id = s.alert_id
     WHERE a.alert_id IS NULL
    ORDER BY position, at NULLS LAST, alert_id
"""


def migrate(conn: psycopg.Connection[Any]) -> None:
    for statement in DDL:
        conn.execute(statement)


def sync(conn: psycopg.Connection[Any], now: datetime | None = None) -> int:
    """Append the changes since the last sync (module docstring); the number appended.
    ``now`` (default: the database clock) decides which deadlines have passed."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (LOCK,))
        if now is None:
            clock = cur.execute("SELECT now() AS now").fetchone()
            assert clock is not None
            now = clock["now"]
        changes = cur.execute(DIFF, {"now": now}).fetchall()
        if not changes:
            return 0
        top = cur.execute("SELECT coalesce(max(seq), 0) AS seq FROM alert_feed").fetchone()
        assert top is not None
        seq = int(top["seq"])
        feed, announced, gone = [], [], []
        for change in changes:
            seq += 1
            feed.append(
                (
                    seq,
                    change["alert_id"],
                    change["patient_id"],
                    change["change"],
                    change["kind"],
                    change["coordinator_id"],
                    change["organisation"],
                    change["team_queue"],
                    change["status"],
                    Jsonb(change["alert"]),
                    *(
                        (
                            change["previous_coordinator_id"],
                            change["previous_organisation"],
                            change["previous_team_queue"],
                        )
                        if change["change"] == "moved"
                        else (None, None, None)
                    ),
                )
            )
            if change["change"] == "withdrawn":
                gone.append(change["alert_id"])
            else:
                announced.append(
                    (
                        change["alert_id"],
                        change["patient_id"],
                        change["kind"],
                        change["status"],
                        change["coordinator_id"],
                        change["organisation"],
                        change["team_queue"],
                        seq,
                    )
                )
        cur.executemany(
            "INSERT INTO alert_feed (seq, alert_id, patient_id, change, kind, coordinator_id,"
            " organisation, team_queue, status, alert, previous_coordinator_id,"
            " previous_organisation, previous_team_queue)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            feed,
        )
        cur.executemany(
            "INSERT INTO alert_announced (alert_id, patient_id, kind, status, coordinator_id,"
            " organisation, team_queue, seq) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (alert_id) DO UPDATE SET status = excluded.status,"
            " coordinator_id = excluded.coordinator_id, organisation = excluded.organisation,"
            " team_queue = excluded.team_queue, seq = excluded.seq",
            announced,
        )
        if gone:
            cur.execute("DELETE FROM alert_announced WHERE alert_id = ANY(%s)", (gone,))
        return len(feed)


def changes(
    conn: psycopg.Connection[Any],
    after: int,
    *,
    limit: int = 500,
    coordinator_id: str | None = None,
    organisations: list[str] | None = None,
    anywhere: bool = False,
) -> list[dict[str, Any]]:
    """Feed rows after ``seq`` ``after``, oldest first; when ``coordinator_id`` is given,
    only theirs held within ``organisations`` (in any organisation with ``anywhere``)
    and those organisations' team queues, and the moves of alerts away from them."""
    where = "seq > %(after)s"
    params: dict[str, Any] = {"after": after, "limit": limit}
    if coordinator_id is not None:
        where += (
            " AND (coordinator_id = %(who)s AND NOT team_queue"
            " AND (%(anywhere)s OR organisation = ANY(%(orgs)s))"
            " OR team_queue AND organisation = ANY(%(orgs)s)"
            " OR previous_coordinator_id = %(who)s AND NOT previous_team_queue"
            " AND (%(anywhere)s OR previous_organisation = ANY(%(orgs)s))"
            " OR previous_team_queue AND previous_organisation = ANY(%(orgs)s))"
        )
        params.update(who=coordinator_id, orgs=organisations or [], anywhere=anywhere)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT seq, alert_id, patient_id, change, kind, coordinator_id, organisation,"
            f" team_queue, status, alert, announced_at FROM alert_feed WHERE {where}"
            " ORDER BY seq LIMIT %(limit)s",
            params,
        ).fetchall()


def head(conn: psycopg.Connection[Any]) -> int:
    """The last change's sequence number (0 before the first)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT coalesce(max(seq), 0) FROM alert_feed").fetchone()
    return int(row[0]) if row is not None else 0
