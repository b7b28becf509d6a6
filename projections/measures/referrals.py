"""Referral waits: referral to first contact (``referral_status``, projections/referrals.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.measures.period import median, p90, pct
from projections.measures.population import Person, Population
from projections.measures.result import Context, Figures, Shape, grouped, measure
from projections.referrals import Referral


@dataclass(frozen=True, slots=True)
class Wait:
    person: Person
    referral: Referral
    status: str  # "completed", "declined", "incomplete"
    days: int  # completed: the wait; incomplete: waited so far at the period's last day
    keys: dict[str, str]


@measure("Referral to first contact", "referrals")
def referral_waits(pop: Population, ctx: Context) -> Figures:
    """Referral waits: calendar days from referral to first contact.

    Population (``referrals``): standing ``ReferralMade`` events that occurred in the
    period. A referral is ``completed`` when its ``FirstContactMade`` occurred before
    the end of the period; its wait is the local date of the first contact minus the
    local date of the referral, in days. ``declined``: declined (and not contacted)
    before the end of the period: excluded from the waits. ``incomplete``: still open
    (made or accepted, no first contact) at the end of the period: reported, never
    dropped; ``incomplete_over_threshold`` of them had already waited longer than the
    threshold by the period's last day.

    ``median_days`` and ``p90_days`` summarise completed waits; ``within_threshold``:
    completed waits of at most ``threshold_days`` (default 28:
    ``CAREJOURNEY_REFERRAL_WAIT_THRESHOLD_DAYS``, or the request's);
    ``within_threshold_pct`` = 100 * within_threshold / completed.

    Split: organisation = the receiving organisation (``to.organisation``); setting = the
    receiving service's setting (``to.setting``); role = the coordinator holding when
    the referral was made (``none`` if nobody named); cohort.
    """
    period = ctx.period
    threshold = ctx.wait_threshold_days
    units: list[Wait] = []
    for person in pop:
        for referral in person.referrals:
            if not period.contains(referral.made_at):
                continue
            made_day = period.day(referral.made_at)
            contact = period.before_end(referral.first_contact_at)
            keys = person.keys(period, referral.made_at) | {
                "organisation": referral.to_organisation,
                "setting": referral.setting,
            }
            if contact is not None:
                units.append(
                    Wait(person, referral, "completed", (period.day(contact) - made_day).days, keys)
                )
            elif period.before_end(referral.declined_at) is not None:
                units.append(Wait(person, referral, "declined", 0, keys))
            else:
                units.append(
                    Wait(person, referral, "incomplete", (period.last - made_day).days, keys)
                )

    def summarise(group: list[Wait]) -> dict[str, Any]:
        done = [w.days for w in group if w.status == "completed"]
        within = sum(1 for d in done if d <= threshold)
        waiting = [w for w in group if w.status == "incomplete"]
        return {
            "referrals": len(group),
            "completed": len(done),
            "median_days": median(done),
            "p90_days": p90(done),
            "within_threshold": within,
            "within_threshold_pct": pct(within, len(done)),
            "threshold_days": threshold,
            "incomplete": len(waiting),
            "incomplete_over_threshold": sum(1 for w in waiting if w.days > threshold),
            "declined": sum(1 for w in group if w.status == "declined"),
        }

    shape = Shape(
        counts=(
            "referrals",
            "completed",
            "within_threshold",
            "incomplete",
            "incomplete_over_threshold",
            "declined",
        ),
        rates={"within_threshold_pct": ("within_threshold", "completed")},
        stats={"median_days": "completed", "p90_days": "completed"},
        labels=("threshold_days",),
    )
    per_person = ctx.person_rows(
        units,
        lambda w: w.person.patient_id,
        lambda w: {
            "organisation": w.referral.to_organisation,
            "setting": w.referral.setting,
            "status": w.status,
            "wait_days": w.days if w.status != "declined" else None,
        },
    )
    return Figures(shape, grouped(ctx, units, lambda w: w.keys, summarise), per_person)
