"""The ``AlertAcknowledged`` fact a coordinator's acknowledgement records (the HTTP route
and the worklist page make the same one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid5

from psycopg import Connection

from api.security import Principal
from projections import worklist
from projections.alerts import NAMESPACE


class NotAcknowledgeable(Exception):
    """Why this caller cannot acknowledge this alert: ``kind`` is a problem kind."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def event_id(alert_id: UUID, principal: Principal, who: str) -> UUID:
    """The same caller acknowledging again names the same fact (a duplicate)."""
    return uuid5(NAMESPACE, f"ack:{alert_id}:{principal.label}:{who}")


def prepare(
    conn: Connection[Any],
    principal: Principal,
    alert_id: UUID,
    coordinator_id: str | None = None,
    note: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The alert and the envelope recording its acknowledgement, after the checks."""
    alert = worklist.alert(conn, alert_id)
    if alert is None:
        raise NotAcknowledgeable("not-found", "no alert with this id")
    if principal.organisations and alert["organisation"] not in principal.organisations:
        raise NotAcknowledgeable(
            "forbidden", "this alert is held by another organisation than yours"
        )
    row = conn.execute(
        "SELECT nhs_number FROM identity_register WHERE patient_id = %s",
        (alert["patient_id"],),
    ).fetchone()
    if row is None:
        raise NotAcknowledgeable("conflict", "the person's NHS number was erased from the register")
    who = coordinator_id or alert["coordinator_id"] or principal.name
    professional: dict[str, Any] = {}
    if alert["coordinator_id"] is not None:
        found = conn.execute(
            "SELECT role, setting FROM coordinator_intervals WHERE coordinator_id = %s"
            " ORDER BY valid_from DESC LIMIT 1",
            (alert["coordinator_id"],),
        ).fetchone()
        professional = dict(found) if found is not None else {}
    data: dict[str, Any] = {"alert_id": str(alert_id), "coordinator_id": who}
    if note:
        data["note"] = note
    envelope = {
        "event_id": str(event_id(alert_id, principal, who)),
        "type": "AlertAcknowledged",
        "schema_version": 1,
        "nhs_number": row["nhs_number"],
        "occurred_at": datetime.now(UTC).isoformat(),
        "source": {
            "organisation": alert["organisation"],
            "system": "carejourney-api",
            "setting": professional.get("setting") or "primary_care",
        },
        "recorded_by": {"id": who, "role": professional.get("role") or "other"},
        "data": data,
    }
    return alert, envelope
