"""Which people a coordinator principal may read: those their organisation cares for.

A coordinator key is bound to ODS codes. Its holder may read a person's coordinator,
journey and care plans, and see them on caseloads and the unassigned list, only when one
of those organisations has a *care relationship* with the person:

* it published a *standing* fact about them (the practice that registered them, a
  hospital that admitted them, a service that took a referral and recorded a
  contact...) that occurred within the last ``CAREJOURNEY_CARE_RELATIONSHIP_DAYS``
  (default 365) days; a fact retracted or cancelled (e.g. a contact recorded against the
  wrong patient) grants nothing, nor does a retraction itself; or
* it is the organisation of one of their coordinators (named, or the practice
  default) now, or was until less than that many days ago, which covers a handoff *to*
  a team that has not published anything yet.

So the relationship follows the standing facts and ends that many days after the last
one. This is the "legitimate relationship" rule of shared care records, checked on the
read models (``journey_timeline`` and ``coordinator_intervals``, by person), which
follow the ledger a little behind: a fact grants access once it is projected. Auditors
and admins are not limited; evaluators never read people at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any
from uuid import UUID

from psycopg import Connection

RELATED = """
    SELECT patient_id FROM journey_timeline
     WHERE patient_id = ANY(%(people)s) AND source_organisation = ANY(%(orgs)s)
       AND status = 'recorded' AND type <> 'EventRetracted'  -- recorded: standing
       AND occurred_at >= now() - make_interval(days => %(days)s)
    UNION
    SELECT patient_id FROM coordinator_intervals
     WHERE patient_id = ANY(%(people)s) AND organisation = ANY(%(orgs)s)
       AND (valid_to IS NULL OR valid_to >= now() - make_interval(days => %(days)s))
"""
DEFAULT_DAYS = 365


def related(
    conn: Connection[Any],
    people: Iterable[UUID],
    organisations: Collection[str],
    days: int = DEFAULT_DAYS,
) -> set[UUID]:
    """The people (of those given) with a care relationship to any of the organisations."""
    wanted = list(dict.fromkeys(people))
    if not wanted or not organisations:
        return set()
    params = {"people": wanted, "orgs": list(organisations), "days": days}
    rows = conn.execute(RELATED, params).fetchall()
    return {_first(r) for r in rows}


def has_care_relationship(
    conn: Connection[Any],
    patient_id: UUID,
    organisations: Collection[str],
    days: int = DEFAULT_DAYS,
) -> bool:
    return patient_id in related(conn, [patient_id], organisations, days)


def _first(row: Any) -> UUID:
    value = row["patient_id"] if isinstance(row, dict) else row[0]
    return UUID(str(value))
