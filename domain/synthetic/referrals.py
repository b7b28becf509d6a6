"""Referrals from the practice to community, mental-health, social-care, voluntary and
hospital outpatient services, with realistic responses and waits.

``ReferralMade`` -> (days later) ``ReferralAccepted`` or ``ReferralDeclined`` or no answer
(an open referral) -> for accepted ones ``FirstContactMade`` after a wait that depends on
priority (two-week-wait within a fortnight, urgent days, routine weeks), or never (still
open: waits must report it as incomplete). The professional met at the first contact
joins the person's circle (and often the care team), so later contacts can return to them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.synthetic.clock import Moment, Weighted, between, days_later, minutes_later, one_of
from domain.synthetic.life import Life
from domain.synthetic.world import Org, Staff

REFERRALS_PER_YEAR = 0.5  # times need, plus a baseline
REFERRALS_BASELINE = 0.08
NO_ANSWER = 0.07
DECLINED = 0.13
NEVER_SEEN = 0.08
DECLINE_REASONS = (
    "does not meet criteria",
    "referred to wrong service",
    "already known to service",
    "out of area",
)
# Median wait (days) and log-normal spread by priority.
WAITS = {"two_week_wait": (8.0, 0.25), "urgent": (5.0, 0.6), "routine": (24.0, 0.7)}


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    kind: str  # which local organisation: community, mental_health, social_care, ...
    role: str  # who the person meets there
    priorities: tuple[float, float, float]  # routine, urgent, two-week-wait weights
    reason: str

    @property
    def priority(self) -> Weighted[str]:
        return _PRIORITY[self.priorities]


SERVICES = Weighted(
    [
        (Service("district nursing", "community", "community_nurse", (6, 4, 0), "wound care"), 14),
        (
            Service(
                "community therapy",
                "community",
                "occupational_therapist",
                (8, 2, 0),
                "difficulty with daily activities",
            ),
            10,
        ),
        (
            Service("falls service", "community", "specialist_nurse", (7, 3, 0), "recurrent falls"),
            8,
        ),
        (
            Service(
                "heart failure nursing",
                "community",
                "specialist_nurse",
                (6, 4, 0),
                "breathlessness",
            ),
            6,
        ),
        (
            Service(
                "community mental health team",
                "mental_health",
                "mental_health_professional",
                (6, 4, 0),
                "low mood",
            ),
            9,
        ),
        (
            Service(
                "memory assessment",
                "mental_health",
                "mental_health_professional",
                (9, 1, 0),
                "memory concerns",
            ),
            5,
        ),
        (
            Service(
                "adult social care assessment",
                "social_care",
                "social_worker",
                (7, 3, 0),
                "needs assessment",
            ),
            10,
        ),
        (
            Service(
                "reablement",
                "social_care",
                "occupational_therapist",
                (5, 5, 0),
                "regain independence",
            ),
            5,
        ),
        (
            Service(
                "social prescribing",
                "voluntary",
                "voluntary_sector_adviser",
                (10, 0, 0),
                "loneliness",
            ),
            10,
        ),
        (
            Service(
                "carers support",
                "voluntary",
                "voluntary_sector_adviser",
                (10, 0, 0),
                "carer strain",
            ),
            4,
        ),
        (Service("frailty clinic", "acute", "specialist_nurse", (7, 3, 0), "frailty review"), 5),
        (Service("suspected cancer clinic", "acute", "other", (0, 1, 9), "weight loss"), 4),
    ]
)
PRIORITIES = ("routine", "urgent", "two_week_wait")
_PRIORITY = {
    service.priorities: Weighted(list(zip(PRIORITIES, service.priorities, strict=True)))
    for service in SERVICES.values
}


def referrals(life: Life) -> None:
    """Referrals at the person's rate; identified people's mostly follow identification."""
    rng = life.rng
    rate = (REFERRALS_PER_YEAR * life.need + REFERRALS_BASELINE) / 365.25
    since = life.identified_at or life.registered_at
    when = days_later(rng, since, int(rng.expovariate(rate)))
    while when < life.horizon:
        _referral(life, when)
        when = days_later(rng, when, max(1, int(rng.expovariate(rate))))


def _target(life: Life, service: Service) -> Org:
    area = life.practice.area
    if service.kind == "acute":
        return area.hospital
    org: Org = getattr(area, service.kind)
    return org


def _referral(life: Life, made: Moment) -> None:
    rng = life.rng
    service = SERVICES.pick(rng)
    if "mental_health" in life.criteria and rng.random() < 0.3:
        service = SERVICES.values[4]  # community mental health team
    to = _target(life, service)
    priority = service.priority.pick(rng)
    referral_id = life.new_id("REF")
    data: dict[str, object] = {
        "referral_id": referral_id,
        "to": {"organisation": to.code, "service": service.name, "setting": to.setting},
        "priority": priority,
    }
    if rng.random() < 0.6:
        data["reason"] = service.reason
    referrer = (
        life.gp if rng.random() < 0.6 else one_of(rng, (*life.practice.gps, *life.practice.nurses))
    )
    life.add(made, "ReferralMade", life.practice.org, life.by(referrer), data)
    if life.first_referral is None:
        life.first_referral = made

    roll = rng.random()
    if roll < NO_ANSWER:
        return
    answered = days_later(rng, made, between(rng, 0, 3 if priority != "routine" else 11))
    staff = one_of(rng, to.staff[service.role])
    if roll < NO_ANSWER + DECLINED:
        life.add(
            answered,
            "ReferralDeclined",
            to,
            life.by(staff),
            {"referral_id": referral_id, "reason": one_of(rng, DECLINE_REASONS)},
        )
        return
    life.add(answered, "ReferralAccepted", to, life.by(staff), {"referral_id": referral_id})
    if rng.random() < NEVER_SEEN:
        return
    median, spread = WAITS[priority]
    wait = int(rng.lognormvariate(math.log(median), spread))
    if priority == "two_week_wait":
        wait = min(wait, 13)
    seen = days_later(rng, made, wait)
    if seen <= answered:
        seen = minutes_later(rng, answered, 30, 240)
    _first_contact(life, to, staff, referral_id, seen)


def _first_contact(life: Life, to: Org, staff: Staff, referral_id: str, seen: Moment) -> None:
    """The referral's clock stops; usually the contact itself is recorded too."""
    rng = life.rng
    life.add(seen, "FirstContactMade", to, life.by(staff), {"referral_id": referral_id})
    life.involve(staff, seen, join=0.4 if to.setting != "acute" else 0.1)
    if rng.random() < 0.6:
        mode = "home_visit" if to.setting in ("community", "social_care") else "face_to_face"
        life.add(
            minutes_later(rng, seen, 1, 5),
            "ContactRecorded",
            to,
            life.by(staff),
            {
                "setting": "home" if mode == "home_visit" and rng.random() < 0.5 else to.setting,
                "mode": mode,
                "with": staff.contact_with,
            },
        )
    if rng.random() < 0.3:
        life.leave_team(
            staff, days_later(rng, seen, between(rng, 30, 150)), "episode of care completed"
        )
