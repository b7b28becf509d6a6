"""Personalised care plans: each plan's goals, status and reviews (a pure fold).

From the standing facts in occurred order, per ``plan_id``:

* ``CarePlanAgreed`` creates the plan (``active``) with its goals (each ``open``), who
  it was agreed with and when the first review is due. Agreeing a plan id that already
  exists is flagged and starts that plan afresh (a new agreement replaces the old one).
* ``CarePlanRevised`` adds goals (an added goal id that exists replaces it), changes
  goals' description or target date, marks goals ``achieved`` or ``dropped``.
* ``CarePlanReviewed`` records the review and moves ``review_due`` to the next one.
* ``CarePlanClosed`` closes the plan.

Revising, reviewing or closing a plan that is not active (never agreed, or closed) is
flagged (``unknown_plan``) and ignored; so is achieving, dropping or changing a goal the
plan does not have (``unknown_goal``).

"Review overdue" depends on the day it is asked, so it is not stored: it is an active
plan whose ``review_due`` is before that day (``queries.care_plans`` and the replay
compute it, the replay as at its ``as_of``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, NamedTuple, cast
from uuid import UUID

from domain.contract import EventType, by_type
from domain.event_data import (
    CarePlanAgreedData,
    CarePlanClosedData,
    CarePlanReviewedData,
    CarePlanRevisedData,
    Goal,
)
from domain.journey import RecordedEvent
from projections.fold import Finding, PersonEvents
from projections.readmodel import ReadModel, Rows, named
from projections.tables import JSONB, person_key, table


class CarePlan(NamedTuple):
    """One row of ``care_plan_status``."""

    patient_id: UUID
    plan_id: str
    status: str  # "active" or "closed"
    agreed_at: datetime
    agreed_with: str
    review_due: date
    last_reviewed_at: datetime | None
    reviews: int
    revisions: int
    goals: Annotated[
        tuple[dict[str, Any], ...], JSONB
    ]  # {goal_id, description, target_date?, status}
    closed_at: datetime | None
    close_reason: str | None
    agreed_event_id: UUID


class ReviewEpisode(NamedTuple):
    """One row of ``evaluation_plan_reviews``: a care-plan review that fell (or will
    fall) due, and how it ended: ``reviewed``, ``closed``, ``replaced`` or still open.
    Kept by the evaluation read model; decided here, by the plans' own rules."""

    patient_id: UUID
    seq: int
    plan_id: str
    due: date
    opened_at: datetime
    reviewed_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None


@dataclass(frozen=True, slots=True)
class CarePlanFold:
    plans: tuple[CarePlan, ...]
    findings: tuple[Finding, ...]
    episodes: tuple[ReviewEpisode, ...]  # every review that fell due, in order of opening


@dataclass(slots=True)
class _Plan:
    """A plan while the fold runs (its row is made from it at the end)."""

    agreed_at: datetime
    agreed_with: str
    review_due: date
    goals: dict[str, dict[str, Any]]  # goal id -> {goal_id, description, target_date?, status}
    agreed_event_id: UUID
    status: str = "active"
    last_reviewed_at: datetime | None = None
    reviews: int = 0
    revisions: int = 0
    closed_at: datetime | None = None
    close_reason: str | None = None


@dataclass(slots=True)
class _Episode:
    """A review episode while the fold runs."""

    plan_id: str
    due: date
    opened_at: datetime
    reviewed_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None


class _State:
    """The fold's running state: the plans by id, findings, and review episodes (an
    agreement opens one due on ``review_due``; a review ends it and opens the next, due
    on ``next_review_due``; closing ends it unreviewed; agreeing again replaces it)."""

    def __init__(self) -> None:
        self.plans: dict[str, _Plan] = {}
        self.findings: list[Finding] = []
        self.episodes: list[_Episode] = []
        self.open: dict[str, _Episode] = {}  # plan id -> its open review episode

    def start_episode(self, plan_id: str, due: date, at: datetime) -> None:
        episode = _Episode(plan_id, due, at)
        self.episodes.append(episode)
        self.open[plan_id] = episode

    def end_episode(self, plan_id: str, at: datetime, how: str) -> None:
        episode = self.open.pop(plan_id, None)
        if episode is not None:
            episode.ended_at = at
            episode.ended_by = how
            if how == "reviewed":
                episode.reviewed_at = at

    def active(self, event: RecordedEvent) -> _Plan | None:
        """The active plan the event names, or None (flagged: never agreed, or closed)."""
        plan_id = cast(_PlanFact, event.data)["plan_id"]
        plan = self.plans.get(plan_id)
        if plan is None or plan.status != "active":
            state = "is closed" if plan is not None else "was never agreed"
            self.findings.append(Finding("unknown_plan", event, f"care plan {plan_id} {state}"))
            return None
        return plan


_Handler = Callable[[_State, RecordedEvent], None]
# The facts about an agreed plan (each names it by ``plan_id``).
_PlanFact = CarePlanRevisedData | CarePlanReviewedData | CarePlanClosedData


def fold(person: PersonEvents) -> CarePlanFold:
    """The person's care plans in order of agreement, and findings (module docstring)."""
    state = _State()
    for event in person.effective:
        if event.type in ON:  # most events are not this model's: the cheapest test first
            ON[event.type](state, event)
    pid = person.patient_id
    rows = tuple(
        CarePlan(
            pid,
            plan_id,
            p.status,
            p.agreed_at,
            p.agreed_with,
            p.review_due,
            p.last_reviewed_at,
            p.reviews,
            p.revisions,
            tuple(dict(g) for g in p.goals.values()),
            p.closed_at,
            p.close_reason,
            p.agreed_event_id,
        )
        for plan_id, p in state.plans.items()
    )
    episodes = tuple(
        ReviewEpisode(
            pid, seq, e.plan_id, e.due, e.opened_at, e.reviewed_at, e.ended_at, e.ended_by
        )
        for seq, e in enumerate(state.episodes)
    )
    return CarePlanFold(rows, tuple(state.findings), episodes)


def _agree(state: _State, event: RecordedEvent) -> None:
    data = cast(CarePlanAgreedData, event.data)
    plan_id = data["plan_id"]
    if plan_id in state.plans:
        state.findings.append(
            Finding("plan_agreed_again", event, f"care plan {plan_id} was already agreed")
        )
        del state.plans[plan_id]  # re-agreed: it moves to its new place in the order
    plan = _agreed(event, data)
    state.plans[plan_id] = plan
    state.end_episode(plan_id, event.occurred_at, "replaced")
    state.start_episode(plan_id, plan.review_due, event.occurred_at)


def _revised(state: _State, event: RecordedEvent) -> None:
    plan = state.active(event)
    if plan is not None:
        _revise(plan, event, cast(CarePlanRevisedData, event.data), state.findings)


def _reviewed(state: _State, event: RecordedEvent) -> None:
    plan = state.active(event)
    if plan is not None:
        data = cast(CarePlanReviewedData, event.data)
        plan_id = data["plan_id"]
        plan.last_reviewed_at = event.occurred_at
        plan.review_due = date.fromisoformat(data["next_review_due"])
        plan.reviews += 1
        state.end_episode(plan_id, event.occurred_at, "reviewed")
        state.start_episode(plan_id, plan.review_due, event.occurred_at)


def _closed(state: _State, event: RecordedEvent) -> None:
    plan = state.active(event)
    if plan is not None:
        data = cast(CarePlanClosedData, event.data)
        plan.status = "closed"
        plan.closed_at = event.occurred_at
        plan.close_reason = data.get("reason")
        state.end_episode(data["plan_id"], event.occurred_at, "closed")


def _goal(goal: Goal, status: str = "open") -> dict[str, Any]:
    out = {"goal_id": goal["goal_id"], "description": goal["description"]}
    if goal.get("target_date") is not None:
        out["target_date"] = goal["target_date"]
    out["status"] = status
    return out


def _agreed(event: RecordedEvent, data: CarePlanAgreedData) -> _Plan:
    return _Plan(
        event.occurred_at,
        data["agreed_with"],
        date.fromisoformat(data["review_due"]),
        {g["goal_id"]: _goal(g) for g in data["goals"]},
        event.event_id,
    )


def _revise(
    plan: _Plan, event: RecordedEvent, data: CarePlanRevisedData, findings: list[Finding]
) -> None:
    goals = plan.goals
    for goal in data.get("added") or ():
        goals[goal["goal_id"]] = _goal(goal)
    for goal in data.get("changed") or ():
        known = goals.get(goal["goal_id"])
        if known is None:
            findings.append(_unknown_goal(event, data, goal["goal_id"]))
            continue
        goals[goal["goal_id"]] = _goal(goal, known["status"])
    for status, goal_ids in (("achieved", data.get("achieved")), ("dropped", data.get("dropped"))):
        for goal_id in goal_ids or ():
            known = goals.get(goal_id)
            if known is None:
                findings.append(_unknown_goal(event, data, goal_id))
                continue
            known["status"] = status
    plan.revisions += 1


def _unknown_goal(event: RecordedEvent, data: CarePlanRevisedData, goal_id: str) -> Finding:
    return Finding("unknown_goal", event, f"care plan {data['plan_id']} has no goal {goal_id}")


def review_overdue(plan: CarePlan, today: date) -> bool:
    """An active plan whose review was due before ``today``."""
    return plan.status == "active" and plan.review_due < today


# The dispatch table; every other fact says nothing about care plans.
ON: dict[str, _Handler] = by_type(
    {
        EventType.CARE_PLAN_AGREED: _agree,
        EventType.CARE_PLAN_REVISED: _revised,
        EventType.CARE_PLAN_REVIEWED: _reviewed,
        EventType.CARE_PLAN_CLOSED: _closed,
    }
)
IGNORES = named(
    """
    PatientRegistered CaseIdentified ReferralMade ReferralAccepted ReferralDeclined
    FirstContactMade CoordinatorAssigned CoordinatorHandedOff CoordinatorReleased Admitted
    Transferred Discharged AdmissionCancelled TransferCancelled DischargeCancelled
    ContactRecorded CareTeamMemberJoined CareTeamMemberLeft CarerRecorded OutcomeRecorded
    JourneyClosed EventRetracted PatientsMerged DischargeReady PersonInformed
    AlertAcknowledged
    """
)

CARE_PLANS = table(
    "care_plan_status",
    CarePlan,
    person_key("plan_id"),
)


def _rows(result: CarePlanFold) -> Rows:
    return {CARE_PLANS.name: result.plans}


MODEL: ReadModel[CarePlanFold] = ReadModel(
    "care_plans",
    (CARE_PLANS,),
    frozenset(ON),
    IGNORES,
    lambda person, _folds: fold(person),
    _rows,
)
