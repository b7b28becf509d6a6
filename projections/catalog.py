"""The read models: their names, their tables, and one person's rows for each.

Six projections, each tracked by its own position in ``projection_positions``:

===============  ==========================================  =============================
projection       tables                                      fold
===============  ==========================================  =============================
``coordinators`` ``coordinator_intervals``,                  ``projections/coordinators``
                 ``coordination_status``
``timeline``     ``journey_timeline``, ``admission_spells``  ``projections/timeline``
``care_plans``   ``care_plan_status``                        ``projections/care_plans``
``referrals``    ``referral_status``                         ``projections/referrals``
``quality``      ``quality_findings``                        ``projections/quality``
``evaluation``   ``evaluation_contacts``,                    ``projections/evaluation``
                 ``_outcomes``, ``_plan_reviews``,           (the measures' facts)
                 ``_people``
===============  ==========================================  =============================

``person_rows`` runs each needed fold once per person (the quality fold reuses the other
folds' findings), which is what the runner and the rebuild write.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from projections import care_plans, coordinators, evaluation, quality, referrals, timeline
from projections.fold import PersonEvents
from projections.tables import Index, Table, table

TS = "timestamptz"

INTERVALS = table(
    "coordinator_intervals",
    coordinators.Interval,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "valid_from": f"{TS} NOT NULL",
        "valid_to": TS,
        "coordinator_id": "text NOT NULL",
        "role": "text NOT NULL",
        "organisation": "text NOT NULL",
        "setting": "text NOT NULL",
        "named": "boolean NOT NULL",
        "opened_by": "uuid NOT NULL",
        "opened_by_type": "text NOT NULL",
        "closed_by": "uuid",
        "closed_by_type": "text",
    },
    Index("key", "patient_id, seq", unique=True),
)
STATUS = table(
    "coordination_status",
    coordinators.Coordination,
    {
        "patient_id": "uuid NOT NULL",
        "journey": "text NOT NULL",
        "opened_at": TS,
        "closed_at": TS,
        "practice": "text",
        "gp_id": "text",
        "coordinator_id": "text",
        "role": "text",
        "organisation": "text",
        "setting": "text",
        "named": "boolean NOT NULL",
        "since": TS,
        "unnamed_since": TS,
        "first_named_at": TS,
        "handoffs": "integer NOT NULL",
        "position": "bigint NOT NULL",
    },
    Index("key", "patient_id", unique=True),
    Index("caseload", "coordinator_id", where="named AND journey = 'open'"),
    Index("unassigned", "unnamed_since", where="journey = 'open' AND NOT named"),
)
TIMELINE = table(
    "journey_timeline",
    timeline.TimelineEntry,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "position": "bigint NOT NULL",
        "event_id": "uuid NOT NULL",
        "stream_patient_id": "uuid NOT NULL",
        "type": "text NOT NULL",
        "kind": "text NOT NULL",
        "setting": "text NOT NULL",
        "summary": "text NOT NULL",
        "source_organisation": "text NOT NULL",
        "source_system": "text NOT NULL",
        "occurred_at": f"{TS} NOT NULL",
        "recorded_at": f"{TS} NOT NULL",
        "status": "text NOT NULL",
        "voided_by": "uuid",
    },
    Index("key", "patient_id, seq", unique=True),
)
SPELLS = table(
    "admission_spells",
    timeline.Spell,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "encounter_id": "text NOT NULL",
        "hospital": "text NOT NULL",
        "ward": "text",
        "location": "text",
        "method": "text NOT NULL",
        "admitted_at": f"{TS} NOT NULL",
        "discharged_at": TS,
        "destination": "text",
        "length_of_stay_days": "integer",
        "transfers": "jsonb",
        "admitted_event_id": "uuid NOT NULL",
        "discharged_event_id": "uuid",
        "status": "text NOT NULL",
    },
    Index("key", "patient_id, seq", unique=True),
)
CARE_PLANS = table(
    "care_plan_status",
    care_plans.CarePlan,
    {
        "patient_id": "uuid NOT NULL",
        "plan_id": "text NOT NULL",
        "status": "text NOT NULL",
        "agreed_at": f"{TS} NOT NULL",
        "agreed_with": "text NOT NULL",
        "review_due": "date NOT NULL",
        "last_reviewed_at": TS,
        "reviews": "integer NOT NULL",
        "revisions": "integer NOT NULL",
        "goals": "jsonb",
        "closed_at": TS,
        "close_reason": "text",
        "agreed_event_id": "uuid NOT NULL",
    },
    Index("key", "patient_id, plan_id", unique=True),
)
REFERRALS = table(
    "referral_status",
    referrals.Referral,
    {
        "patient_id": "uuid NOT NULL",
        "referral_id": "text NOT NULL",
        "made_at": f"{TS} NOT NULL",
        "to_organisation": "text NOT NULL",
        "service": "text NOT NULL",
        "setting": "text NOT NULL",
        "priority": "text NOT NULL",
        "reason": "text",
        "status": "text NOT NULL",
        "accepted_at": TS,
        "declined_at": TS,
        "decline_reason": "text",
        "first_contact_at": TS,
        "wait_days": "integer",
        "made_event_id": "uuid NOT NULL",
    },
    Index("key", "patient_id, referral_id", unique=True),
)
FINDINGS = table(
    "quality_findings",
    quality.QualityFinding,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "kind": "text NOT NULL",
        "event_id": "uuid NOT NULL",
        "event_type": "text NOT NULL",
        "position": "bigint NOT NULL",
        "occurred_at": f"{TS} NOT NULL",
        "recorded_at": f"{TS} NOT NULL",
        "detail": "text NOT NULL",
    },
    Index("key", "patient_id, seq", unique=True),
    Index("kind", "kind"),
    Index("position", "position, seq"),  # a publisher's findings, in ledger order
)

PROJECTIONS: dict[str, tuple[Table, ...]] = {
    "coordinators": (INTERVALS, STATUS),
    "timeline": (TIMELINE, SPELLS),
    "care_plans": (CARE_PLANS,),
    "referrals": (REFERRALS,),
    "quality": (FINDINGS,),
    "evaluation": evaluation.TABLES,  # the measures' own facts (projections/evaluation.py)
}
NAMES: tuple[str, ...] = tuple(PROJECTIONS)


def tables(names: Collection[str]) -> list[Table]:
    return [t for name in NAMES if name in names for t in PROJECTIONS[name]]


def person_rows(person: PersonEvents, names: Collection[str]) -> dict[str, tuple[Any, ...]]:
    """Table name -> the person's rows, for the projections named (each fold run once)."""
    out: dict[str, tuple[Any, ...]] = {}
    need_all = "quality" in names
    coord = coordinators.fold(person) if need_all or "coordinators" in names else None
    line = timeline.fold(person) if need_all or "timeline" in names else None
    plans = care_plans.fold(person) if need_all or "care_plans" in names else None
    refs = referrals.fold(person) if need_all or "referrals" in names else None
    if coord is not None and "coordinators" in names:
        out[INTERVALS.name] = coord.intervals
        out[STATUS.name] = (coord.status,)
    if line is not None and "timeline" in names:
        out[TIMELINE.name] = line.entries
        out[SPELLS.name] = line.spells
    if plans is not None and "care_plans" in names:
        out[CARE_PLANS.name] = plans.plans
    if refs is not None and "referrals" in names:
        out[REFERRALS.name] = refs.referrals
    if "evaluation" in names:
        out.update(evaluation.fold(person))
    if need_all:
        assert coord and line and plans and refs
        out[FINDINGS.name] = quality.collect(
            person, coord.findings, line.findings, plans.findings, refs.findings
        )
    return out
