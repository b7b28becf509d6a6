"""Data-quality findings: what the other folds noticed, in one list per person.

The ledger records every well-formed fact and flags inconsistencies instead of refusing
them (docs/architecture.md, "Never lose a well-formed fact"). Each fold reports what it could
not make sense of; this fold gathers them, ordered like the timeline (occurred time, then
position), so an auditor or a data-quality dashboard reads them in one place. Kinds:

===============================  ===========================================================
``retracted``                    the event was retracted (it counts nowhere else)
``cancel_without_target``        an A11/A12/A13 cancel with nothing (yet) to cancel
``corrected``                    a later-sent version of the admission/discharge replaced it
``uncoded_value``                a method, destination or class recorded as ``unknown``
``out_of_order``                 recorded after a later-occurring event of the person
``late_arrival``                 out of order by more than the configured days
``outside_journey``              occurred before registration or after the journey closed
``handoff_from_non_coordinator`` ``from_id`` was not the current coordinator (applied)
``assigned_while_coordinated``   assignment while someone was named (applied)
``release_of_non_coordinator``   release of someone not the named coordinator (ignored)
``discharge_without_admission``  no open admission of the encounter (ignored for spells)
``transfer_without_admission``   no open admission of the encounter (ignored for spells)
``admission_while_admitted``     the encounter was already admitted (ignored for spells)
``unknown_referral``             a response to a referral not made before it (ignored)
``repeated_referral``            the referral id was already made (ignored)
``unknown_plan``                 revision/review/closure of a plan not active (ignored)
``plan_agreed_again``            the plan id was agreed before (the new one replaces it)
``unknown_goal``                 a revision names a goal the plan does not have (ignored)
===============================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from projections import care_plans, coordinators, referrals, timeline
from projections.fold import Finding, PersonEvents
from projections.readmodel import EVERY_TYPE, Folds, ReadModel, Rows
from projections.tables import Index, Position, person_key, table


class QualityFinding(NamedTuple):
    """One row of ``quality_findings``."""

    patient_id: UUID
    seq: int
    kind: str
    event_id: UUID
    event_type: str
    position: Position
    occurred_at: datetime
    recorded_at: datetime
    detail: str


def fold(person: PersonEvents) -> tuple[QualityFinding, ...]:
    """Every finding about the person (runs the other folds; see ``collect``)."""
    return collect(
        person,
        coordinators.fold(person).findings,
        timeline.fold(person).findings,
        care_plans.fold(person).findings,
        referrals.fold(person).findings,
    )


def collect(person: PersonEvents, *found: Iterable[Finding]) -> tuple[QualityFinding, ...]:
    """The rows for findings the caller already has (the runner folds each model once)."""
    every = [*person.findings]
    for findings in found:
        every.extend(findings)
    every.sort(key=lambda f: (f.event.occurred_at, f.event.position, f.kind))
    return tuple(
        QualityFinding(
            person.patient_id,
            seq,
            f.kind,
            f.event.event_id,
            f.event.type,
            f.event.position,
            f.event.occurred_at,
            f.event.recorded_at,
            f.detail,
        )
        for seq, f in enumerate(every)
    )


def _fold(person: PersonEvents, folds: Folds) -> tuple[QualityFinding, ...]:
    return collect(
        person,
        folds.of(coordinators.MODEL).findings,
        folds.of(timeline.MODEL).findings,
        folds.of(care_plans.MODEL).findings,
        folds.of(referrals.MODEL).findings,
    )


FINDINGS = table(
    "quality_findings",
    QualityFinding,
    person_key("seq"),
    Index("kind", "kind"),
    Index("position", "position, seq"),  # a publisher's findings, in ledger order
)


def _rows(result: tuple[QualityFinding, ...]) -> Rows:
    return {FINDINGS.name: result}


# Every type: any fact may arrive late or out of order, be retracted or cancelled.
MODEL: ReadModel[tuple[QualityFinding, ...]] = ReadModel(
    "quality", (FINDINGS,), EVERY_TYPE, frozenset(), _fold, _rows
)
