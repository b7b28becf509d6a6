"""Auditors: a person's complete record, its replay at any two times, its verification.

The person is named by NHS number in the path (422 with the reason for a bad one, 404
when no journey is registered). Each read is written to the access log first
(``api.deps.PersonRead.admit``, once every parameter is valid). Replay is computed
from the recorded events by ``projections.replay`` — never from the live projection
tables — so it shows what the ledger knew at ``known_at`` about ``as_of`` even if
projections are behind or rebuilt.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api import problems
from api.deps import LedgerDep, PersonRead, PersonRef, SettingsDep, person_read
from api.models.records import PatientRecords, Verification
from api.models.replay import Replay
from api.security import Role
from api.times import AsOf, KnownAt
from domain.ledger import Ledger
from projections.fold import FoldConfig
from projections.replay import replay as replay_events

# Every route here reads one person, named in the path.
router = APIRouter(prefix="/v1/patients/{nhs}", tags=["auditors"], responses=problems.PERSON)

AuditedPerson = Annotated[
    PersonRead, Depends(person_read(Role.AUDITOR, purpose="read person-level records"))
]


@router.get("/events", summary="A person's complete record", response_model=PatientRecords)
def person_events(
    admitted: AuditedPerson,
    ledger: LedgerDep,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="Only events after this ledger position.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> dict[str, Any]:
    """Every event recorded for the person, in ledger (position) order: both clocks, type,
    source, recorded_by, data, hash and previous hash, a page at a time."""
    person = admitted.admit()
    events = [e for e in ledger.history(person.patient_id) if e.position > after]
    page = events[:limit]
    more = len(events) > limit
    return {
        "patient_id": person.patient_id,
        "events": [e.as_dict() for e in page],
        "next_after": page[-1].position if more else None,
    }


@router.get(
    "/replay",
    summary="The person's journey as it was, as the ledger knew it",
    response_model=Replay,
)
def person_replay(
    admitted: AuditedPerson,
    ledger: LedgerDep,
    settings: SettingsDep,
    as_of: AsOf = None,
    known_at: KnownAt = None,
) -> dict[str, Any]:
    """Coordinator, open spells, care plans and timeline at occurred-time ``as_of``,
    computed from only the events recorded by ``known_at``."""
    person = admitted.admit()
    events = ledger.history(person.patient_id, known_at=known_at)
    return replay_events(
        events,
        as_of=as_of,
        known_at=known_at,
        patient_id=person.patient_id,
        config=FoldConfig.from_settings(settings),
    )


@router.get("/verify", summary="Verify the person's hash chain", response_model=Verification)
def person_verify(admitted: AuditedPerson, ledger: LedgerDep) -> dict[str, Any]:
    """Recompute the chain from storage; ``ok`` is false and ``break`` names the first
    altered, removed or re-ordered event if anything changed. ``head`` is the person's
    chain head as the ledger keeps it apart (so a deleted last event is caught); the
    whole ledger's head digest is ``carejourney verify``'s."""
    person = admitted.admit()
    return verification(ledger, person)


def verification(ledger: Ledger, person: PersonRef) -> dict[str, Any]:
    broken = ledger.verify(person.patient_id)
    with ledger.connection() as conn:
        events = conn.execute(
            "SELECT count(*) AS n FROM ledger_events WHERE patient_id = %s", (person.patient_id,)
        ).fetchone()["n"]
        head = conn.execute(
            "SELECT version, hash, position FROM ledger_heads WHERE patient_id = %s",
            (person.patient_id,),
        ).fetchone()
    return {
        "patient_id": person.patient_id,
        "ok": broken is None,
        "events": events,
        "break": None
        if broken is None
        else {
            "event_id": broken.event_id,
            "position": broken.position,
            "reason": broken.reason,
            "expected": broken.expected,
            "found": broken.found,
        },
        "head": head,
    }
