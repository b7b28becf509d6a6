"""Personalised care plans: in place, and reviewed on time.

Plans come from ``care_plan_status`` (projections/care_plans.py); review episodes
(each review that fell due, and when it was done) from ``evaluation_plan_reviews``
(projections/evaluation.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from projections.care_plans import ReviewEpisode
from projections.measures.period import pct
from projections.measures.population import Person, Population
from projections.measures.result import Context, Figures, Shape, grouped, measure


@dataclass(frozen=True, slots=True)
class InPlace:
    person: Person
    has_plan: bool
    keys: dict[str, str]


@measure("Care plan in place", "people")
def care_plan_in_place(pop: Population, ctx: Context) -> Figures:
    """Care plan in place at the end of the period.

    Denominator (``people``): people with an open journey at 23:59 local on the
    period's last day (a coordinator interval, named or the practice default, holds
    then). Numerator (``with_plan``): those with an *active* care plan then: agreed
    (``CarePlanAgreed``) at or before that instant and not closed (``CarePlanClosed``)
    by it. ``with_plan_pct`` = 100 * with_plan / people.

    Split: the coordinator holding at that instant (role and setting ``none`` if nobody
    named; organisation the named coordinator's, else the registered practice); cohort.
    """
    period = ctx.period
    moment = period.at_2359(period.last)
    units = []
    for person in pop:
        if person.holder(moment) is None:
            continue
        active = any(
            p.agreed_at <= moment and (p.closed_at is None or p.closed_at > moment)
            for p in person.plans
        )
        units.append(InPlace(person, active, person.keys(period, moment)))

    def summarise(group: list[InPlace]) -> dict[str, Any]:
        with_plan = sum(1 for u in group if u.has_plan)
        return {
            "people": len(group),
            "with_plan": with_plan,
            "with_plan_pct": pct(with_plan, len(group)),
        }

    shape = Shape(counts=("people", "with_plan"), rates={"with_plan_pct": ("with_plan", "people")})
    per_person = ctx.person_rows(
        units, lambda u: u.person.patient_id, lambda u: {"care_plan_in_place": u.has_plan}
    )
    return Figures(shape, grouped(ctx, units, lambda u: u.keys, summarise), per_person)


@dataclass(frozen=True, slots=True)
class Review:
    person: Person
    episode: ReviewEpisode
    status: str  # "on_time", "late", "not_reviewed"
    keys: dict[str, str]


@measure("Care plans reviewed on time", "reviews due")
def care_plan_reviews(pop: Population, ctx: Context) -> Figures:
    """Care plans reviewed on time.

    Denominator (``reviews_due``): review due dates that fall in the period (a plan's
    ``review_due`` when agreed, then each ``next_review_due`` set by a
    ``CarePlanReviewed``), for plans still active on the due date, of people whose
    journey is open at 23:59 local on it: a plan closed, or agreed afresh, before its
    due date owes no review, nor does a person whose journey has closed.

    Numerator (``on_time``): reviews done (``CarePlanReviewed``) on or before the due
    date (local dates). ``late``: done after the due date but before the end of the
    period; ``not_reviewed``: not done by the end of the period (or the plan was closed
    after falling due without a review). ``on_time_pct`` = 100 * on_time / reviews_due.

    Split: the coordinator holding at 23:59 local on the due date; cohort.
    """
    period = ctx.period
    units = []
    for person in pop:
        for episode in person.reviews:
            if not period.contains_day(episode.due) or episode.opened_at >= period.end:
                continue
            ended = period.before_end(episode.ended_at)
            if (
                ended is not None
                and episode.ended_by in ("closed", "replaced")
                and period.day(ended) < episode.due
            ):
                continue
            due_at = period.at_2359(episode.due)
            if person.holder(due_at) is None:
                continue  # the journey had closed (or not opened) by the due date
            reviewed = period.before_end(episode.reviewed_at)
            if reviewed is None:
                status = "not_reviewed"
            else:
                status = "on_time" if period.day(reviewed) <= episode.due else "late"
            units.append(Review(person, episode, status, person.keys(period, due_at)))

    def summarise(group: list[Review]) -> dict[str, Any]:
        status = Counter(u.status for u in group)
        return {
            "reviews_due": len(group),
            "on_time": status["on_time"],
            "on_time_pct": pct(status["on_time"], len(group)),
            "late": status["late"],
            "not_reviewed": status["not_reviewed"],
        }

    shape = Shape(
        counts=("reviews_due", "on_time", "late", "not_reviewed"),
        rates={"on_time_pct": ("on_time", "reviews_due")},
    )
    per_person = ctx.person_rows(
        units, lambda u: u.person.patient_id, lambda u: {"status": u.status}
    )
    return Figures(shape, grouped(ctx, units, lambda u: u.keys, summarise), per_person)
