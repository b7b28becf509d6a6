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
cancels and merges already applied), in occurred order. Care-plan episodes follow the
rules of ``projections/care_plans.py``: an agreement opens an episode due on its
``review_due``; a review closes the open episode (reviewed at its occurred time) and
opens the next, due on ``next_review_due``; closing the plan ends the open episode
unreviewed (``closed``); agreeing the same plan id again ends it (``replaced``) and
starts afresh; reviews or closures of a plan that is not active are ignored (the care
plans fold flags them).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NamedTuple
from uuid import UUID

from domain.contract import EventType
from domain.journey import RecordedEvent
from projections.fold import PersonEvents
from projections.readmodel import ReadModel, Rows
from projections.tables import TS, Index, Table, table

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


class ReviewEpisode(NamedTuple):
    """One row of ``evaluation_plan_reviews``: a care-plan review that fell (or will
    fall) due, and how it ended: ``reviewed``, ``closed``, ``replaced`` or still open."""

    patient_id: UUID
    seq: int
    plan_id: str
    due: date
    opened_at: datetime
    reviewed_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None


class Identification(NamedTuple):
    """One row of ``evaluation_people`` per person folded."""

    patient_id: UUID
    identified_at: datetime | None  # the first standing CaseIdentified
    position: int


CONTACTS = table(
    "evaluation_contacts",
    Contact,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "occurred_at": f"{TS} NOT NULL",
        "setting": "text NOT NULL",
        "mode": "text NOT NULL",
        "with_id": "text NOT NULL",
        "with_role": "text NOT NULL",
        "with_organisation": "text NOT NULL",
        "source_organisation": "text NOT NULL",
        "from_adt": "boolean NOT NULL",
        "event_id": "uuid NOT NULL",
    },
    Index("key", "patient_id, seq", unique=True),
    Index("occurred", "occurred_at"),
)
OUTCOMES = table(
    "evaluation_outcomes",
    Outcome,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "instrument": "text NOT NULL",
        "score": "double precision NOT NULL",
        "occurred_at": f"{TS} NOT NULL",
        "event_id": "uuid NOT NULL",
    },
    Index("key", "patient_id, seq", unique=True),
    Index("occurred", "occurred_at"),
)
REVIEWS = table(
    "evaluation_plan_reviews",
    ReviewEpisode,
    {
        "patient_id": "uuid NOT NULL",
        "seq": "integer NOT NULL",
        "plan_id": "text NOT NULL",
        "due": "date NOT NULL",
        "opened_at": f"{TS} NOT NULL",
        "reviewed_at": TS,
        "ended_at": TS,
        "ended_by": "text",
    },
    Index("key", "patient_id, seq", unique=True),
    Index("due", "due"),
)
PEOPLE = table(
    "evaluation_people",
    Identification,
    {"patient_id": "uuid NOT NULL", "identified_at": TS, "position": "bigint NOT NULL"},
    Index("key", "patient_id", unique=True),
)
TABLES: tuple[Table, ...] = (CONTACTS, OUTCOMES, REVIEWS, PEOPLE)


class _Facts:
    """The fold's running state: what the handlers of ``ON`` add to."""

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        self.contacts: list[Contact] = []
        self.outcomes: list[Outcome] = []
        self.episodes = _Episodes(patient_id)
        self.identified_at: datetime | None = None

    def contact(self, event: RecordedEvent) -> None:
        data = event.data
        who = data["with"]
        system = str(event.source.get("system", ""))
        self.contacts.append(
            Contact(
                self.patient_id,
                len(self.contacts),
                event.occurred_at,
                str(data["setting"]),
                str(data["mode"]),
                str(who["id"]),
                str(who["role"]),
                str(who["organisation"]),
                str(event.source.get("organisation")),
                system.startswith(ADT_SYSTEM_PREFIX),
                event.event_id,
            )
        )

    def outcome(self, event: RecordedEvent) -> None:
        data = event.data
        self.outcomes.append(
            Outcome(
                self.patient_id,
                len(self.outcomes),
                str(data["instrument"]),
                float(data["score"]),
                event.occurred_at,
                event.event_id,
            )
        )

    def identified(self, event: RecordedEvent) -> None:
        if self.identified_at is None:
            self.identified_at = event.occurred_at

    def plan(self, event: RecordedEvent) -> None:
        self.episodes.apply(event.type, event.data, event.occurred_at)


# The dispatch table; every other fact is kept by another read model, not here.
ON: dict[str, Callable[[_Facts, RecordedEvent], None]] = {
    EventType.CONTACT_RECORDED: _Facts.contact,
    EventType.OUTCOME_RECORDED: _Facts.outcome,
    EventType.CASE_IDENTIFIED: _Facts.identified,
    EventType.CARE_PLAN_AGREED: _Facts.plan,
    EventType.CARE_PLAN_REVIEWED: _Facts.plan,
    EventType.CARE_PLAN_CLOSED: _Facts.plan,
}
IGNORES = frozenset(
    {
        EventType.PATIENT_REGISTERED,
        EventType.REFERRAL_MADE,
        EventType.REFERRAL_ACCEPTED,
        EventType.REFERRAL_DECLINED,
        EventType.FIRST_CONTACT_MADE,
        EventType.COORDINATOR_ASSIGNED,
        EventType.COORDINATOR_HANDED_OFF,
        EventType.COORDINATOR_RELEASED,
        EventType.ADMITTED,
        EventType.TRANSFERRED,
        EventType.DISCHARGED,
        EventType.ADMISSION_CANCELLED,
        EventType.TRANSFER_CANCELLED,
        EventType.DISCHARGE_CANCELLED,
        EventType.CARE_PLAN_REVISED,  # goals change, review episodes do not
        EventType.CARE_TEAM_MEMBER_JOINED,
        EventType.CARE_TEAM_MEMBER_LEFT,
        EventType.CARER_RECORDED,
        EventType.JOURNEY_CLOSED,
        EventType.EVENT_RETRACTED,
        EventType.PATIENTS_MERGED,
        EventType.DISCHARGE_READY,
        EventType.PERSON_INFORMED,
        EventType.ALERT_ACKNOWLEDGED,
    }
)


def fold(person: PersonEvents) -> dict[str, tuple[Any, ...]]:
    """Table name -> the person's rows (module docstring)."""
    facts = _Facts(person.patient_id)
    for event in person.effective:
        handler = ON.get(event.type)
        if handler is not None:
            handler(facts, event)
    return {
        CONTACTS.name: tuple(facts.contacts),
        OUTCOMES.name: tuple(facts.outcomes),
        REVIEWS.name: facts.episodes.rows(),
        PEOPLE.name: (Identification(person.patient_id, facts.identified_at, person.position),),
    }


class _Episodes:
    """Review episodes per plan, following the care-plan rules (module docstring)."""

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        self.done: list[dict[str, Any]] = []
        self.open: dict[str, dict[str, Any]] = {}  # plan id -> its open episode
        self.active: set[str] = set()

    def _start(self, plan_id: str, due: str, at: datetime) -> None:
        episode = {
            "plan_id": plan_id,
            "due": date.fromisoformat(str(due)),
            "opened_at": at,
            "reviewed_at": None,
            "ended_at": None,
            "ended_by": None,
        }
        self.done.append(episode)
        self.open[plan_id] = episode

    def _end(self, plan_id: str, at: datetime, how: str) -> None:
        episode = self.open.pop(plan_id, None)
        if episode is not None:
            episode["ended_at"] = at
            episode["ended_by"] = how
            if how == "reviewed":
                episode["reviewed_at"] = at

    def apply(self, kind: str, data: dict[str, Any], at: datetime) -> None:
        plan_id = str(data["plan_id"])
        if kind == EventType.CARE_PLAN_AGREED:
            self._end(plan_id, at, "replaced")
            self.active.add(plan_id)
            self._start(plan_id, data["review_due"], at)
        elif plan_id not in self.active:
            return  # never agreed, or closed: the care plans fold flags it
        elif kind == EventType.CARE_PLAN_REVIEWED:
            self._end(plan_id, at, "reviewed")
            self._start(plan_id, data["next_review_due"], at)
        elif kind == EventType.CARE_PLAN_CLOSED:
            self._end(plan_id, at, "closed")
            self.active.discard(plan_id)

    def rows(self) -> tuple[ReviewEpisode, ...]:
        return tuple(
            ReviewEpisode(
                self.patient_id,
                seq,
                e["plan_id"],
                e["due"],
                e["opened_at"],
                e["reviewed_at"],
                e["ended_at"],
                e["ended_by"],
            )
            for seq, e in enumerate(self.done)
        )


def _rows(result: dict[str, tuple[Any, ...]]) -> Rows:
    return result


MODEL: ReadModel[dict[str, tuple[Any, ...]]] = ReadModel(
    "evaluation", TABLES, frozenset(ON), IGNORES, lambda person, _folds: fold(person), _rows
)
