"""Which people a coordinator principal may read: those their organisation cares for.

A coordinator key is bound to ODS codes. Its holder may read a person's coordinator,
journey and care plans, and see them on caseloads and the unassigned list, only when one
of those organisations has a *care relationship* with the person:

* it published any event about them (the practice that registered them, a hospital that
  admitted them, a service that took a referral and recorded a contact...), or
* it is, or was, the organisation of one of their coordinators (named, or the practice
  default), which covers a handoff *to* a team that has not published anything yet.

This is the "legitimate relationship" rule of shared care records, checked on plain
indexed SQL (``ledger_events`` by person, ``coordinator_intervals`` by person). Auditors
and admins are not limited; evaluators never read people at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any
from uuid import UUID

from psycopg import Connection

RELATED = """
    SELECT patient_id FROM ledger_events
     WHERE patient_id = ANY(%(people)s) AND source_organisation = ANY(%(orgs)s)
    UNION
    SELECT patient_id FROM coordinator_intervals
     WHERE patient_id = ANY(%(people)s) AND organisation = ANY(%(orgs)s)
"""


def related(
    conn: Connection[Any], people: Iterable[UUID], organisations: Collection[str]
) -> set[UUID]:
    """The people (of those given) with a care relationship to any of the organisations."""
    wanted = list(dict.fromkeys(people))
    if not wanted or not organisations:
        return set()
    rows = conn.execute(RELATED, {"people": wanted, "orgs": list(organisations)}).fetchall()
    return {_first(r) for r in rows}


def has_care_relationship(
    conn: Connection[Any], patient_id: UUID, organisations: Collection[str]
) -> bool:
    return patient_id in related(conn, [patient_id], organisations)


def _first(row: Any) -> UUID:
    value = row["patient_id"] if isinstance(row, dict) else row[0]
    return UUID(str(value))
