"""A coordinator's worklist: their alerts and their team queue's, read from ``alerts``.

What is visible depends on the reader's clock (a wait's alert opens at its deadline,
``projections/alerts.py``), so every read takes ``now``. Pages are ordered by due time
(an alert without one by its opening), then id, and continue from a keyset cursor: a
page never skips or repeats a row while alerts are added, even when many share a due
time.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row, tuple_row

from projections.alert_feed import ALERT_JSON

STATUSES = ("open", "closed", "all")

ORDER = "coalesce(a.due, a.opened_at)"


class BadCursor(ValueError):
    """A cursor this module did not make."""


def encode_cursor(due: datetime, alert_id: UUID) -> str:
    raw = json.dumps([due.isoformat(), str(alert_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        due, ident = json.loads(base64.urlsafe_b64decode(padded))
        return datetime.fromisoformat(due), UUID(ident)
    except (ValueError, TypeError) as exc:
        raise BadCursor("not a cursor from a previous page") from exc


def alerts(
    conn: psycopg.Connection[Any],
    coordinator_id: str,
    organisations: list[str],
    *,
    now: datetime | None = None,
    status: str = "open",
    cursor: str | None = None,
    limit: int = 50,
    anywhere: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """The coordinator's alerts held within ``organisations`` (in any organisation with
    ``anywhere``) and those organisations' team queues (``status``: open, closed or all,
    as visible at ``now``, by default the current time: every interface shows them as
    they stand), one page, and the cursor of the next page (None on the last)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
    if now is None:
        now = datetime.now(UTC)
    where = ["a.opened_at <= %(now)s"]
    params: dict[str, Any] = {
        "now": now,
        "who": coordinator_id,
        "orgs": organisations,
        "anywhere": anywhere,
        "limit": limit + 1,
    }
    if status != "all":
        where.append("a.status = %(status)s")
        params["status"] = status
    if cursor is not None:
        after_due, after_id = decode_cursor(cursor)
        where.append(f"({ORDER}, a.alert_id) > (%(after_due)s, %(after_id)s)")
        params.update(after_due=after_due, after_id=after_id)
    sql = f"""
        SELECT a.patient_id, {ORDER} AS sort_due, {ALERT_JSON} AS alert
          FROM alerts a
         WHERE (a.coordinator_id = %(who)s AND NOT a.team_queue
                AND (%(anywhere)s OR a.organisation = ANY(%(orgs)s))
                OR a.team_queue AND a.organisation = ANY(%(orgs)s))
           AND {" AND ".join(where)}
         ORDER BY {ORDER}, a.alert_id
         LIMIT %(limit)s
    """
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    more = len(rows) > limit
    page = rows[:limit]
    following = None
    if more and page:
        last = page[-1]
        following = encode_cursor(last["sort_due"], UUID(str(last["alert"]["alert_id"])))
    return [{"patient_id": r["patient_id"], **r["alert"]} for r in page], following


def alert(conn: psycopg.Connection[Any], alert_id: UUID) -> dict[str, Any] | None:
    """One alert by id, with its person's patient id (for the access check)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT a.patient_id, {ALERT_JSON} AS alert FROM alerts a WHERE a.alert_id = %s",
            (alert_id,),
        ).fetchone()
    return None if row is None else {"patient_id": row["patient_id"], **row["alert"]}


def organisations_of(conn: psycopg.Connection[Any], coordinator_id: str) -> list[str]:
    """The organisations a coordinator has held alerts or coordination in (whose team
    queues an administrator sees with theirs)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT organisation FROM alerts WHERE coordinator_id = %s AND NOT team_queue"
            " UNION SELECT organisation FROM coordinator_intervals"
            " WHERE coordinator_id = %s AND named",
            (coordinator_id, coordinator_id),
        ).fetchall()
    return sorted(str(r[0]) for r in rows)
