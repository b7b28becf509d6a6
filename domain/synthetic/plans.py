"""Personalised care plans: agreed, revised, reviewed (on time, late or never), closed.

Most coordinated people agree a plan with their coordinator a few weeks after
assignment: two to four goals, agreed with the patient, their carer or both, and a
review date three or six months on. Reviews mostly happen around the due date, some
late (so "reviewed within its review date" is not 100%), and some plans are never
reviewed again (overdue at the end). Between reviews goals are added, changed,
achieved or dropped; a few plans close (goals achieved, or replaced by a new plan).
"""

from __future__ import annotations

from domain.synthetic.clock import (
    DAY,
    Moment,
    Weighted,
    between,
    days_later,
    daytime,
    one_of,
    skip_small_hours,
)
from domain.synthetic.life import Life
from domain.synthetic.world import Staff

PLAN_IF_COORDINATED = 0.75
GOALS = (
    "Walk to the local shop independently",
    "Fewer falls at home",
    "Manage breathlessness at home",
    "Attend a weekly social group",
    "Understand and manage my medicines",
    "Stay well at home rather than in hospital",
    "Get back to gardening",
    "Feel less lonely",
    "Carer to have regular respite",
    "Sleep better",
    "Keep my diabetes in range",
    "Be able to wash and dress myself",
    "Plan for future care wishes",
    "Manage pain day to day",
)
AGREED_WITH = Weighted([("patient", 50), ("carer", 15), ("both", 35)])
REVIEW_TIMING = Weighted([("on_time", 70), ("late", 20), ("never", 10)])
CLOSE_REASONS = ("goals achieved", "replaced by a new plan")


def care_plans(life: Life) -> None:
    """Plans for coordinated people, one after another until the horizon."""
    rng = life.rng
    if not life.coordination or rng.random() >= PLAN_IF_COORDINATED:
        return
    agreed = days_later(rng, life.coordination[0][0], between(rng, 7, 60))
    while agreed < life.horizon:
        replaced = _plan(life, agreed)
        if replaced is None:
            return
        agreed = days_later(rng, replaced, between(rng, 0, 14))


def _recorder(life: Life, when: Moment) -> Staff:
    return life.coordinator_at(when) or life.gp


def _goal(life: Life, number: int, day: int, used: list[str]) -> dict[str, str]:
    rng = life.rng
    description = one_of(rng, [g for g in GOALS if g not in used])
    used.append(description)
    goal = {"goal_id": f"G{number}", "description": description}
    if rng.random() < 0.6:
        goal["target_date"] = life.clock.date_text(day + between(rng, 60, 365))
    return goal


def _plan(life: Life, agreed: Moment) -> Moment | None:
    """One plan's life; returns when it closed if a new plan replaces it, else None."""
    rng = life.rng
    plan_id = life.new_id("CP")
    used: list[str] = []
    goals = [_goal(life, n, agreed // DAY, used) for n in range(1, between(rng, 3, 6))]
    open_goals = [g["goal_id"] for g in goals]
    due = agreed // DAY + one_of(rng, (91, 182))
    staff = _recorder(life, agreed)
    life.add(
        agreed,
        "CarePlanAgreed",
        life.org_of(staff),
        life.by(staff),
        {
            "plan_id": plan_id,
            "goals": goals,
            "agreed_with": AGREED_WITH.pick(rng),
            "review_due": life.clock.date_text(due),
        },
    )
    life.plans.append((plan_id, agreed, None))
    last = agreed
    while True:
        timing = REVIEW_TIMING.pick(rng)
        if timing == "never":
            return None
        shift = between(rng, -14, 8) if timing == "on_time" else between(rng, 15, 120)
        reviewed = max(daytime(rng, due + shift), days_later(rng, last, 1))
        if rng.random() < 0.4:
            revised = skip_small_hours(last + int((reviewed - last) * rng.uniform(0.2, 0.8)))
            _revise(life, plan_id, revised, open_goals, used)
        if reviewed >= life.horizon:
            return None
        staff = _recorder(life, reviewed)
        due = reviewed // DAY + one_of(rng, (91, 182))
        life.add(
            reviewed,
            "CarePlanReviewed",
            life.org_of(staff),
            life.by(staff),
            {"plan_id": plan_id, "next_review_due": life.clock.date_text(due)},
        )
        last = reviewed
        if rng.random() < 0.08 or not open_goals:
            closed = days_later(rng, reviewed, 0)
            reason = one_of(rng, CLOSE_REASONS) if open_goals else "goals achieved"
            if closed >= life.horizon:
                return None
            life.add(
                closed,
                "CarePlanClosed",
                life.org_of(staff),
                life.by(staff),
                {"plan_id": plan_id, "reason": reason},
            )
            life.plans[-1] = (plan_id, agreed, closed)
            return closed if reason == "replaced by a new plan" else None


def _revise(life: Life, plan_id: str, when: Moment, open_goals: list[str], used: list[str]) -> None:
    """One revision: add a goal, change one, mark one achieved or drop one. Goal ids
    number the goals in the order they were written (``used``), so they never repeat."""
    rng = life.rng
    if when >= life.horizon:
        return
    data: dict[str, object] = {"plan_id": plan_id}
    kind = one_of(rng, ("added", "changed", "achieved", "dropped")) if open_goals else "added"
    if kind == "added" and len(used) < len(GOALS):
        goal = _goal(life, len(used) + 1, when // DAY, used)
        open_goals.append(goal["goal_id"])
        data["added"] = [goal]
    elif kind == "changed" and open_goals:
        goal_id = one_of(rng, open_goals)
        data["changed"] = [
            {
                "goal_id": goal_id,
                "description": one_of(rng, GOALS),
                "target_date": life.clock.date_text(when // DAY + between(rng, 30, 200)),
            }
        ]
    elif kind in ("achieved", "dropped") and open_goals:
        goal_id = one_of(rng, open_goals)
        open_goals.remove(goal_id)
        data[kind] = [goal_id]
    else:
        return
    staff = _recorder(life, when)
    life.add(when, "CarePlanRevised", life.org_of(staff), life.by(staff), data)
