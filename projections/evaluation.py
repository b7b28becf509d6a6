"""The facts the evaluation measures need that no other read model keeps (a pure fold).

The other read models answer coordinators' and auditors' questions; the measures
(``projections/measures/``) also need, per person:

* **contacts** with *whom* (continuity of care counts contacts per professional) and
  from which system (a ``ContactRecorded`` made by the HL7 v2 ADT adapter from an A04
  registration/attendance is never a follow-up contact: docs/adt.md);
* **outcome recordings** (instrument and score: the change from first to last);
* **care-plan review episodes**: each review that fell due, and when (if ever) it was
  done, where ``care_plan_status`` keeps only the latest due date;
* **identification**: when the person was first identified for coordinated care
  (``CaseIdentified``), the cohort flag and the start of "time to named coordinator".

Rows come from the standing facts only (``PersonEvents.effective``: retractions,
cancels and merges already applied), in occurred order. Care-plan review episodes are
decided by the care plans fold (``projections/care_plans.py``), so the plan lifecycle is
written once: an agreement opens an episode due on its ``review_due``; a review closes
the open episode (reviewed at its occurred time) and opens the next, due on
``next_review_due``; closing the plan ends the open episode unreviewed (``closed``);
agreeing the same plan id again ends it (``replaced``) and starts afresh; reviews or
closures of a plan that is not active change nothing (and are flagged there).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, cast
from uuid import UUID

from domain.contract import EventType, by_type
from domain.event_data import ContactRecordedData, DischargeReadyData, OutcomeRecordedData
from domain.journey import RecordedEvent
from projections import care_plans
from projections.care_plans import CarePlanFold, ReviewEpisode
from projections.fold import PersonEvents
from projections.readmodel import ReadModel, Rows, named
from projections.tables import Index, Position, Table, person_key, table

# Every event the HL7 v2 ADT adapter makes carries a source.system with this prefix
# (consumers/adt_codes.py ADT_SYSTEM_PREFIX; docs/adt.md). Projections may not import
# consumers, so the convention is restated here and a test holds the two equal.
ADT_SYSTEM_PREFIX = "hl7v2:"


class Contact(NamedTuple):
    """One row of ``evaluation_contacts``: a standing ``ContactRecorded``."""

    patient_id: UUID
    seq: int
    occurred_at: datetime
    setting: str
    mode: str
    with_id: str
    with_role: str
    with_organisation: str
    source_organisation: str
    from_adt: bool  # made from an HL7 v2 A04 registration/attendance: never a follow-up
    event_id: UUID


class Outcome(NamedTuple):
    """One row of ``evaluation_outcomes``: a standing ``OutcomeRecorded``."""

    patient_id: UUID
    seq: int
    instrument: str
    score: float
    occurred_at: datetime
    event_id: UUID


class Ready(NamedTuple):
    """One row of ``evaluation_discharge_ready``: a standing ``DischargeReady`` (the
    hospital's decision that the person no longer needs to be there)."""

    patient_id: UUID
    seq: int
    encounter_id: str
    occurred_at: datetime
    delay_reason: str | None
    source_organisation: str
    event_id: UUID


class Identification(NamedTuple):
    """One row of ``evaluation_people`` per person folded."""

    patient_id: UUID
    identified_at: datetime | None  # the first standing CaseIdentified
    position: Position


def _dated(name: str, row: Any, period: str) -> Table:
    """A table of one person's dated facts: keyed by ``seq`` (their order in the fold),
    indexed on the column the measures select a period by (the index is named after the
    column, less any ``_at``)."""
    return table(name, row, person_key("seq"), Index(period.removesuffix("_at"), period))


CONTACTS = _dated("evaluation_contacts", Contact, "occurred_at")
OUTCOMES = _dated("evaluation_outcomes", Outcome, "occurred_at")
REVIEWS = _dated("evaluation_plan_reviews", ReviewEpisode, "due")
PEOPLE = table(
    "evaluation_people",
    Identification,
    person_key(),
)
READY = table(
    "evaluation_discharge_ready",
    Ready,
    person_key("seq"),
)
TABLES: tuple[Table, ...] = (CONTACTS, OUTCOMES, REVIEWS, PEOPLE, READY)


class _Facts:
    """The fold's running state: what the handlers of ``ON`` add to."""

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        self.contacts: list[Contact] = []
        self.outcomes: list[Outcome] = []
        self.identified_at: datetime | None = None
        self.ready: list[Ready] = []

    def discharge_ready(self, event: RecordedEvent) -> None:
        data = cast(DischargeReadyData, event.data)
        self.ready.append(
            Ready(
                self.patient_id,
                len(self.ready),
                data["encounter_id"],
                event.occurred_at,
                data.get("delay_reason"),
                str(event.source.get("organisation")),
                event.event_id,
            )
        )

    def contact(self, event: RecordedEvent) -> None:
        data = cast(ContactRecordedData, event.data)
        who = data["with"]
        system = str(event.source.get("system", ""))
        self.contacts.append(
            Contact(
                self.patient_id,
                len(self.contacts),
                event.occurred_at,
                data["setting"],
                data["mode"],
                who["id"],
                who["role"],
                who["organisation"],
                str(event.source.get("organisation")),
                system.startswith(ADT_SYSTEM_PREFIX),
                event.event_id,
            )
        )

    def outcome(self, event: RecordedEvent) -> None:
        data = cast(OutcomeRecordedData, event.data)
        self.outcomes.append(
            Outcome(
                self.patient_id,
                len(self.outcomes),
                data["instrument"],
                float(data["score"]),  # a whole number is stored as a JSON integer
                event.occurred_at,
                event.event_id,
            )
        )

    def identified(self, event: RecordedEvent) -> None:
        if self.identified_at is None:
            self.identified_at = event.occurred_at


# The dispatch table; every other fact is kept by another read model, not here.
ON: dict[str, Callable[[_Facts, RecordedEvent], None]] = by_type(
    {
        EventType.CONTACT_RECORDED: _Facts.contact,
        EventType.OUTCOME_RECORDED: _Facts.outcome,
        EventType.CASE_IDENTIFIED: _Facts.identified,
        EventType.DISCHARGE_READY: _Facts.discharge_ready,
    }
)
# Review episodes follow the care plans' own rules: that fold decides them.
FROM_CARE_PLANS = frozenset(
    {EventType.CARE_PLAN_AGREED, EventType.CARE_PLAN_REVIEWED, EventType.CARE_PLAN_CLOSED}
)
# CarePlanRevised: goals change, review episodes do not
IGNORES = named(
    """
    PatientRegistered ReferralMade ReferralAccepted ReferralDeclined FirstContactMade
    CoordinatorAssigned CoordinatorHandedOff CoordinatorReleased Admitted Transferred
    Discharged AdmissionCancelled TransferCancelled DischargeCancelled CarePlanRevised
    CareTeamMemberJoined CareTeamMemberLeft CarerRecorded JourneyClosed EventRetracted
    PatientsMerged PersonInformed AlertAcknowledged
    """
)


def fold(person: PersonEvents, plans: CarePlanFold | None = None) -> dict[str, tuple[Any, ...]]:
    """Table name -> the person's rows (module docstring); ``plans``: the care plans
    fold of the same person, when the caller has it already."""
    if plans is None:
        plans = care_plans.fold(person)
    facts = _Facts(person.patient_id)
    for event in person.effective:
        if event.type in ON:  # most events are not this model's: the cheapest test first
            ON[event.type](facts, event)
    return {
        CONTACTS.name: tuple(facts.contacts),
        OUTCOMES.name: tuple(facts.outcomes),
        REVIEWS.name: plans.episodes,
        PEOPLE.name: (Identification(person.patient_id, facts.identified_at, person.position),),
        READY.name: tuple(facts.ready),
    }


def _rows(result: dict[str, tuple[Any, ...]]) -> Rows:
    return result


MODEL: ReadModel[dict[str, tuple[Any, ...]]] = ReadModel(
    "evaluation",
    TABLES,
    frozenset(ON) | FROM_CARE_PLANS,
    IGNORES,
    lambda person, folds: fold(person, folds.of(care_plans.MODEL)),
    _rows,
)
