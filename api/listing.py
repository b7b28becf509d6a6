"""What a list of people shows a coordinator (the caseload, the unassigned, alerts): each
person's NHS number, the position of the projection it was read from, and, for alerts,
whose organisations it spans.

A coordinator needs to know who is on a list, so lists carry the register's number; an
erased person has none any more, and is on no list rather than shown with a null number.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg import Connection

from api.security import Principal, Role
from projections import worklist


def nhs_numbers(conn: Connection[Any], people: list[UUID]) -> dict[UUID, str]:
    """The register's number for each patient id (none after an erasure)."""
    if not people:
        return {}
    rows = conn.execute(
        "SELECT patient_id, nhs_number FROM identity_register WHERE patient_id = ANY(%s)", (people,)
    ).fetchall()
    return {r["patient_id"]: r["nhs_number"] for r in rows}


def projected_to(conn: Connection[Any], projection: str) -> int:
    """The projection's tracked position (one primary-key read of the runner's table;
    ``runner.status`` also scans for the head, which these hot reads do not need)."""
    row = conn.execute(
        "SELECT position FROM projection_positions WHERE name = %s", (projection,)
    ).fetchone()
    return 0 if row is None else int(row["position"])


def alert_scope(
    conn: Connection[Any], principal: Principal, coordinator_id: str
) -> tuple[list[str], bool]:
    """The organisations whose team queues come with a coordinator's alerts, and whether
    their own alerts in other organisations are shown too (``anywhere``): a coordinator
    key sees within its own organisations; auditors and admins every organisation the
    coordinator has worked in."""
    if principal.role is Role.COORDINATOR:
        return sorted(principal.organisations), False
    return worklist.organisations_of(conn, coordinator_id), True
