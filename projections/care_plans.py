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
from typing import Any, NamedTuple
from uuid import UUID

from domain.contract import EventType
from domain.journey import RecordedEvent
from projections.fold import Finding, PersonEvents
from projections.readmodel import ReadModel, Rows
from projections.tables import TS, Index, table


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
    goals: tuple[dict[str, Any], ...]  # {goal_id, description, target_date?, status}
    closed_at: datetime | None
    close_reason: str | None
    agreed_event_id: UUID


@dataclass(frozen=True, slots=True)
class CarePlanFold:
    plans: tuple[CarePlan, ...]
    findings: tuple[Finding, ...]


_Plans = dict[str, dict[str, Any]]
_Handler = Callable[[_Plans, RecordedEvent, list[Finding]], None]


def fold(person: PersonEvents) -> CarePlanFold:
    """The person's care plans in order of agreement, and findings (module docstring)."""
    plans: _Plans = {}
    findings: list[Finding] = []
    for event in person.effective:
        handler = ON.get(event.type)
        if handler is not None:
            handler(plans, event, findings)
    rows = tuple(
        CarePlan(
            person.patient_id,
            plan_id,
            p["status"],
            p["agreed_at"],
            p["agreed_with"],
            p["review_due"],
            p["last_reviewed_at"],
            p["reviews"],
            p["revisions"],
            tuple(dict(g) for g in p["goals"].values()),
            p["closed_at"],
            p["close_reason"],
            p["agreed_event_id"],
        )
        for plan_id, p in plans.items()
    )
    return CarePlanFold(rows, tuple(findings))


def _agree(plans: _Plans, event: RecordedEvent, findings: list[Finding]) -> None:
    plan_id = str(event.data["plan_id"])
    if plan_id in plans:
        findings.append(
            Finding("plan_agreed_again", event, f"care plan {plan_id} was already agreed")
        )
        del plans[plan_id]  # re-agreed: it moves to its new place in the order
    plans[plan_id] = _agreed(event)


def _active(plans: _Plans, event: RecordedEvent, findings: list[Finding]) -> dict[str, Any] | None:
    """The active plan the event names, or None (flagged: never agreed, or closed)."""
    plan_id = str(event.data["plan_id"])
    plan = plans.get(plan_id)
    if plan is None or plan["status"] != "active":
        state = "is closed" if plan is not None else "was never agreed"
        findings.append(Finding("unknown_plan", event, f"care plan {plan_id} {state}"))
        return None
    return plan


def _revised(plans: _Plans, event: RecordedEvent, findings: list[Finding]) -> None:
    plan = _active(plans, event, findings)
    if plan is not None:
        _revise(plan, event, findings)


def _reviewed(plans: _Plans, event: RecordedEvent, findings: list[Finding]) -> None:
    plan = _active(plans, event, findings)
    if plan is not None:
        plan["last_reviewed_at"] = event.occurred_at
        plan["review_due"] = date.fromisoformat(str(event.data["next_review_due"]))
        plan["reviews"] += 1


def _closed(plans: _Plans, event: RecordedEvent, findings: list[Finding]) -> None:
    plan = _active(plans, event, findings)
    if plan is not None:
        plan["status"] = "closed"
        plan["closed_at"] = event.occurred_at
        plan["close_reason"] = event.data.get("reason")


def _goal(goal: dict[str, Any], status: str = "open") -> dict[str, Any]:
    out = {"goal_id": str(goal["goal_id"]), "description": goal["description"]}
    if goal.get("target_date") is not None:
        out["target_date"] = goal["target_date"]
    out["status"] = status
    return out


def _agreed(event: RecordedEvent) -> dict[str, Any]:
    data = event.data
    return {
        "status": "active",
        "agreed_at": event.occurred_at,
        "agreed_with": data["agreed_with"],
        "review_due": date.fromisoformat(str(data["review_due"])),
        "last_reviewed_at": None,
        "reviews": 0,
        "revisions": 0,
        "goals": {str(g["goal_id"]): _goal(g) for g in data["goals"]},
        "closed_at": None,
        "close_reason": None,
        "agreed_event_id": event.event_id,
    }


def _revise(plan: dict[str, Any], event: RecordedEvent, findings: list[Finding]) -> None:
    data = event.data
    goals: dict[str, dict[str, Any]] = plan["goals"]
    for goal in data.get("added") or ():
        goals[str(goal["goal_id"])] = _goal(goal)
    for goal in data.get("changed") or ():
        known = goals.get(str(goal["goal_id"]))
        if known is None:
            findings.append(_unknown_goal(event, goal["goal_id"]))
            continue
        goals[str(goal["goal_id"])] = _goal(goal, known["status"])
    for key, status in (("achieved", "achieved"), ("dropped", "dropped")):
        for goal_id in data.get(key) or ():
            known = goals.get(str(goal_id))
            if known is None:
                findings.append(_unknown_goal(event, goal_id))
                continue
            known["status"] = status
    plan["revisions"] += 1


def _unknown_goal(event: RecordedEvent, goal_id: Any) -> Finding:
    return Finding(
        "unknown_goal", event, f"care plan {event.data['plan_id']} has no goal {goal_id}"
    )


def review_overdue(plan: CarePlan, today: date) -> bool:
    """An active plan whose review was due before ``today``."""
    return plan.status == "active" and plan.review_due < today


# The dispatch table; every other fact says nothing about care plans.
ON: dict[str, _Handler] = {
    EventType.CARE_PLAN_AGREED: _agree,
    EventType.CARE_PLAN_REVISED: _revised,
    EventType.CARE_PLAN_REVIEWED: _reviewed,
    EventType.CARE_PLAN_CLOSED: _closed,
}
IGNORES = frozenset(
    {
        EventType.PATIENT_REGISTERED,
        EventType.CASE_IDENTIFIED,
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
        EventType.CONTACT_RECORDED,
        EventType.CARE_TEAM_MEMBER_JOINED,
        EventType.CARE_TEAM_MEMBER_LEFT,
        EventType.CARER_RECORDED,
        EventType.OUTCOME_RECORDED,
        EventType.JOURNEY_CLOSED,
        EventType.EVENT_RETRACTED,
        EventType.PATIENTS_MERGED,
        EventType.DISCHARGE_READY,
        EventType.PERSON_INFORMED,
        EventType.ALERT_ACKNOWLEDGED,
    }
)

CARE_PLANS = table(
    "care_plan_status",
    CarePlan,
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
