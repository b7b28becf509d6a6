"""Named care coordinators: assignment, handoffs, releases and gaps.

Most identified people get a named coordinator days to weeks after identification (a
log-normal wait with a median of about two weeks and a long tail, so "time to named
coordinator" has a median and a 90th percentile worth reporting); some never do, and a
few people who were only referred get one too. Coordination then passes between
professionals (``CoordinatorHandedOff`` with ``from_id`` = the coordinator of the
moment) and occasionally ends (``CoordinatorReleased``), leaving an uncovered gap until
a later ``CoordinatorAssigned``, or for good. The spans are kept on the ``Life`` so care
plans, outcomes and contacts can ask who coordinated at a given moment.
"""

from __future__ import annotations

import math

from domain.synthetic.clock import Moment, Weighted, between, days_later, one_of
from domain.synthetic.life import Life
from domain.synthetic.world import Staff, staff_org

ASSIGNED_IF_IDENTIFIED = 0.9
ASSIGNED_IF_REFERRED = 0.15
MEDIAN_WAIT_DAYS = 14.0
MEAN_DAYS_BETWEEN_CHANGES = 240.0
RELEASE_SHARE = 0.2  # of changes: a release rather than a handoff
REASSIGNED_AFTER_RELEASE = 0.75
ROLES = (
    ("practice_nurse", 25),
    ("gp", 12),
    ("specialist_nurse", 14),
    ("community_nurse", 16),
    ("social_worker", 10),
    ("mental_health_professional", 8),
    ("occupational_therapist", 7),
    ("voluntary_sector_adviser", 8),
)
# Criteria that make a role more likely to coordinate.
ROLE_BOOST = {
    "mental_health": "mental_health_professional",
    "social_circumstances": "social_worker",
    "frailty": "community_nurse",
    "end_of_life": "specialist_nurse",
}
HANDOFF_REASONS = (
    "needs changed",
    "specialist input needed",
    "coordinator left post",
    "patient preference",
    "after hospital discharge",
    "caseload review",
)
RELEASE_REASONS = ("discharged from caseload", "coordinator left post", "no longer eligible")


def coordination(life: Life) -> None:
    """Assign, hand off, release and re-assign until the horizon."""
    rng = life.rng
    anchor = _anchor(life)
    if anchor is None:
        return
    wait = min(150, int(rng.lognormvariate(math.log(MEDIAN_WAIT_DAYS), 0.9)))
    when = days_later(rng, anchor, wait)
    roles = _role_table(life)
    current: Staff | None = None
    while when < life.horizon:
        if current is None:
            current = _pick(life, roles, None)
            if life.coordination:
                reason = "assigned after a gap"
            else:
                reason = "case identified" if life.identified_at is not None else "referred"
            _start(
                life,
                when,
                "CoordinatorAssigned",
                current,
                current,
                {"coordinator": current.professional, "reason": reason},
            )
            when = days_later(rng, when, _days_to_change(life))
            continue
        if rng.random() < RELEASE_SHARE:
            _end(life, when, current)
            life.add(
                when,
                "CoordinatorReleased",
                life.org_of(current),
                life.by(current),
                {"coordinator_id": current.id, "reason": one_of(rng, RELEASE_REASONS)},
            )
            life.leave_team(current, days_later(rng, when, 0), "no longer coordinating")
            current = None
            if rng.random() >= REASSIGNED_AFTER_RELEASE:
                return
            when = days_later(rng, when, max(1, int(rng.lognormvariate(math.log(30), 0.8))))
            continue
        successor = _pick(life, roles, current)
        _end(life, when, current)
        data: dict[str, object] = {"from_id": current.id, "to": successor.professional}
        if rng.random() < 0.8:
            data["reason"] = one_of(rng, HANDOFF_REASONS)
        _start(life, when, "CoordinatorHandedOff", successor, current, data)
        if rng.random() < 0.4:
            life.leave_team(
                current, days_later(rng, when, between(rng, 0, 15)), "handed off coordination"
            )
        current = successor
        when = days_later(rng, when, _days_to_change(life))


def _anchor(life: Life) -> Moment | None:
    """What starts the clock to a named coordinator: case identification, or (for a
    few) the first referral; None if this person never gets one."""
    rng = life.rng
    if life.identified_at is not None:
        return life.identified_at if rng.random() < ASSIGNED_IF_IDENTIFIED else None
    if life.first_referral is not None and rng.random() < ASSIGNED_IF_REFERRED:
        return life.first_referral
    return None


def _role_table(life: Life) -> Weighted[str]:
    boosted = {ROLE_BOOST[c] for c in life.criteria if c in ROLE_BOOST}
    return Weighted([(role, w * (3 if role in boosted else 1)) for role, w in ROLES])


def _pick(life: Life, roles: Weighted[str], current: Staff | None) -> Staff:
    """A coordinator from the person's local services, never the current one; someone
    already involved with the person is preferred half of the time."""
    rng = life.rng
    if current is not None and rng.random() < 0.5:
        known = [s for _, s in life.pool if s.id != current.id and s.role in _COORDINATING]
        if known:
            return one_of(rng, known)
    while True:
        role = roles.pick(rng)
        if role == "gp":
            staff = life.gp if rng.random() < 0.7 else one_of(rng, life.practice.gps)
        else:
            staff = one_of(rng, staff_org(life.practice.area, life.practice, role).staff[role])
        if current is None or staff.id != current.id:
            return staff


_COORDINATING = frozenset(role for role, _ in ROLES)


def _days_to_change(life: Life) -> int:
    return max(7, int(life.rng.expovariate(1 / MEAN_DAYS_BETWEEN_CHANGES)))


def _start(
    life: Life,
    when: Moment,
    type_: str,
    coordinator: Staff,
    recorder: Staff,
    data: dict[str, object],
) -> None:
    """Record the change (by the service handing over) and open the new span."""
    life.add(when, type_, life.org_of(recorder), life.by(recorder), data)
    life.coordination.append((when, None, coordinator))
    life.involve(coordinator, when + 1, join=0.45)


def _end(life: Life, when: Moment, current: Staff) -> None:
    since, _, staff = life.coordination[-1]
    life.coordination[-1] = (since, when, staff)
