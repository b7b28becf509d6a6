"""Reads over the projection tables, JSON-ready, for the HTTP API and the CLI.

Every function takes an open psycopg connection (any row factory: each query uses its
own dict-row cursor) and returns plain dicts and lists: ids and times as strings (times
in UTC, ISO-8601), dates as ``YYYY-MM-DD``. Per-person reads accept any of a person's
patient ids: a merged person's id is resolved to the survivor (merges standing now),
whose rows hold both streams. Shapes are listed in docs/projections.md; the replay
(``projections/replay.py``) returns the same shapes computed from the folds instead.

"Today" (review overdue, days waiting, days unassigned) is the current date in the
configured zone unless the caller passes one.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from domain import merges
from domain.settings import get_settings
from projections.care_plans import CarePlan, review_overdue
from projections.referrals import Referral, is_open
from projections.tables import jsonable

COORDINATOR_FIELDS = ("id", "role", "organisation", "setting")


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _zone(zone: ZoneInfo | None) -> ZoneInfo:
    return zone or get_settings().zone


def _today(today: date | None, zone: ZoneInfo | None) -> date:
    return today or datetime.now(_zone(zone)).date()


def resolve(conn: psycopg.Connection[Any], patient_id: UUID | str) -> UUID:
    """The person a patient id stands for now: the survivor of any standing merges."""
    return merges.effective(conn, UUID(str(patient_id)))


def _person(conn: psycopg.Connection[Any], patient_id: UUID | str, resolved: bool) -> UUID:
    """``resolve``, unless the caller already did (the API resolves once per request)."""
    return UUID(str(patient_id)) if resolved else resolve(conn, patient_id)


def _clean(row: dict[str, Any], *drop: str) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in row.items() if k not in drop}


# -- coordinators ----------------------------------------------------------------------


def coordinator_view(row: dict[str, Any]) -> dict[str, Any]:
    """A ``coordination_status`` row (or the fold's) as the API shows it."""
    who = None
    if row.get("coordinator_id") is not None:
        who = {
            "id": row["coordinator_id"],
            "role": row["role"],
            "organisation": row["organisation"],
            "setting": row["setting"],
        }
    return {
        "patient_id": jsonable(row["patient_id"]),
        "journey": row["journey"],
        "coordinator": who,
        "named": bool(row["named"]),
        "since": jsonable(row["since"]),
        "unnamed_since": jsonable(row["unnamed_since"]),
        "practice": row["practice"],
        "gp_id": row["gp_id"],
        "opened_at": jsonable(row["opened_at"]),
        "closed_at": jsonable(row["closed_at"]),
        "first_named_at": jsonable(row["first_named_at"]),
        "handoffs": int(row["handoffs"]),
        "position": int(row["position"]),
    }


def current_coordinator(
    conn: psycopg.Connection[Any], patient_id: UUID | str, *, resolved: bool = False
) -> dict[str, Any] | None:
    """Who coordinates the person now (named, or the practice default), or None for a
    person the projection does not know."""
    rows = _rows(
        conn,
        "SELECT * FROM coordination_status WHERE patient_id = %s",
        (_person(conn, patient_id, resolved),),
    )
    return coordinator_view(rows[0]) if rows else None


def interval_view(row: dict[str, Any]) -> dict[str, Any]:
    return _clean(row, "patient_id")


def coordinator_intervals(
    conn: psycopg.Connection[Any], patient_id: UUID | str, *, resolved: bool = False
) -> list[dict[str, Any]]:
    """Every interval of the person's journeys, in order (``valid_to`` null: still open)."""
    rows = _rows(
        conn,
        "SELECT * FROM coordinator_intervals WHERE patient_id = %s ORDER BY seq",
        (_person(conn, patient_id, resolved),),
    )
    return [interval_view(r) for r in rows]


def as_of_view(patient_id: Any, at: datetime, row: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "patient_id": jsonable(patient_id),
        "at": jsonable(at),
        "coordinator": None,
        "named": False,
        "interval": None,
    }
    if row is not None:
        out["coordinator"] = {
            "id": row["coordinator_id"],
            "role": row["role"],
            "organisation": row["organisation"],
            "setting": row["setting"],
        }
        out["named"] = bool(row["named"])
        out["interval"] = interval_view(row)
    return out


def coordinator_as_of(
    conn: psycopg.Connection[Any], patient_id: UUID | str, at: datetime, *, resolved: bool = False
) -> dict[str, Any] | None:
    """Who coordinated the person at occurred time ``at`` (as the ledger knows now; the
    replay answers "as known at K"). ``coordinator`` is null outside any journey."""
    person = _person(conn, patient_id, resolved)
    if not _rows(conn, "SELECT 1 FROM coordination_status WHERE patient_id = %s", (person,)):
        return None
    rows = _rows(
        conn,
        "SELECT * FROM coordinator_intervals WHERE patient_id = %s"
        " AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"
        " ORDER BY seq DESC LIMIT 1",
        (person, at, at),
    )
    return as_of_view(person, at, rows[0] if rows else None)


def caseload(conn: psycopg.Connection[Any], coordinator_id: str) -> list[dict[str, Any]]:
    """The people this professional is the named coordinator of now (open journeys),
    longest-held first."""
    rows = _rows(
        conn,
        "SELECT patient_id, since, role, organisation, setting, opened_at"
        " FROM coordination_status WHERE coordinator_id = %s AND named"
        " AND journey = 'open' ORDER BY since, patient_id",
        (coordinator_id,),
    )
    return [_clean(r) for r in rows]


def unassigned(
    conn: psycopg.Connection[Any], *, limit: int | None = None, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Open journeys with no named coordinator, longest first: since when, and for how
    many whole days (``days``) as at ``now``."""
    moment = now or datetime.now(UTC)
    rows = _rows(
        conn,
        "SELECT patient_id, unnamed_since AS since, practice, gp_id, opened_at"
        " FROM coordination_status WHERE journey = 'open' AND NOT named"
        " ORDER BY unnamed_since, patient_id LIMIT %s",
        (limit,),
    )
    out = []
    for r in rows:
        item = _clean(r)
        item["days"] = (moment - r["since"]).days if r["since"] is not None else None
        out.append(item)
    return out


def handoff_count(
    conn: psycopg.Connection[Any], patient_id: UUID | str, *, resolved: bool = False
) -> dict[str, Any] | None:
    """``{"patient_id", "handoffs"}``: the handoffs applied over the person's journey."""
    person = _person(conn, patient_id, resolved)
    rows = _rows(conn, "SELECT handoffs FROM coordination_status WHERE patient_id = %s", (person,))
    return {"patient_id": str(person), "handoffs": int(rows[0]["handoffs"])} if rows else None


# -- timeline and spells ---------------------------------------------------------------


def _of_person(
    conn: psycopg.Connection[Any], table: str, person: UUID, order: str
) -> list[dict[str, Any]]:
    """Every column of one person's rows of a per-person read-model table, in ``order``
    (the timeline, spells, care plans and referrals are read alike)."""
    return _rows(conn, f"SELECT * FROM {table} WHERE patient_id = %s ORDER BY {order}", (person,))


def timeline(
    conn: psycopg.Connection[Any], patient_id: UUID | str, *, resolved: bool = False
) -> list[dict[str, Any]]:
    """Every event of the person in occurred order (ties by position), with status."""
    rows = _of_person(conn, "journey_timeline", _person(conn, patient_id, resolved), "seq")
    return [_clean(r, "patient_id") for r in rows]


def spells(
    conn: psycopg.Connection[Any], patient_id: UUID | str, *, resolved: bool = False
) -> list[dict[str, Any]]:
    """The person's admission spells in order of admission (cancelled ones removed)."""
    rows = _of_person(conn, "admission_spells", _person(conn, patient_id, resolved), "seq")
    return [_clean(r, "patient_id") for r in rows]


# -- care plans and referrals ----------------------------------------------------------


def plan_view(row: dict[str, Any], today: date) -> dict[str, Any]:
    out = _clean(row, "patient_id")
    out["review_overdue"] = review_overdue(CarePlan(**row), today)
    return out


def care_plans(
    conn: psycopg.Connection[Any],
    patient_id: UUID | str,
    *,
    today: date | None = None,
    zone: ZoneInfo | None = None,
    resolved: bool = False,
) -> list[dict[str, Any]]:
    """Each plan: status, goals, reviews, and whether its review is overdue today."""
    day = _today(today, zone)
    person = _person(conn, patient_id, resolved)
    rows = _of_person(conn, "care_plan_status", person, "agreed_at, plan_id")
    return [plan_view(r, day) for r in rows]


def referral_view(row: dict[str, Any], today: date, zone: ZoneInfo) -> dict[str, Any]:
    out = _clean(row, "patient_id")
    waiting = is_open(Referral(**row))
    out["open"] = waiting
    out["waiting_days"] = (today - row["made_at"].astimezone(zone).date()).days if waiting else None
    return out


def referrals(
    conn: psycopg.Connection[Any],
    patient_id: UUID | str,
    *,
    today: date | None = None,
    zone: ZoneInfo | None = None,
) -> list[dict[str, Any]]:
    """Each referral: status, steps, the wait to first contact, or the wait so far."""
    zone = _zone(zone)
    day = _today(today, zone)
    rows = _of_person(conn, "referral_status", resolve(conn, patient_id), "made_at, referral_id")
    return [referral_view(r, day, zone) for r in rows]


# -- data quality ----------------------------------------------------------------------


def quality_findings(
    conn: psycopg.Connection[Any],
    patient_id: UUID | str | None = None,
    *,
    kind: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Findings of one person (in timeline order) or of everyone, optionally one kind."""
    where: list[str] = []
    params: list[Any] = []
    if patient_id is not None:
        where.append("patient_id = %s")
        params.append(resolve(conn, patient_id))
    if kind is not None:
        where.append("kind = %s")
        params.append(kind)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = _rows(
        conn,
        "SELECT * FROM quality_findings" + clause + " ORDER BY patient_id, seq LIMIT %s",
        (*params, limit),
    )
    return [_clean(r) for r in rows]
