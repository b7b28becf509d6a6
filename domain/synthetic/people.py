"""Person-level facts: registration, case identification, carers, outcomes, closing.

About 60% of people are identified for coordinated care (``CaseIdentified``); they carry
most of the activity (``need``), the rest are lower-need comparators, so the measures can
be split by cohort (docs/measures.md, "Groups"). A few journeys close: moved away, no longer needed,
or died (in the community here; deaths in hospital come from the hospital theme).
"""

from __future__ import annotations

from domain.synthetic.clock import (
    DAY,
    Weighted,
    between,
    days_later,
    daytime,
    minutes_later,
    one_of,
)
from domain.synthetic.life import Life

IDENTIFIED_SHARE = 0.6
CRITERIA = Weighted(
    [
        ("multimorbidity", 35),
        ("frailty", 25),
        ("recent_admissions", 12),
        ("mental_health", 10),
        ("social_circumstances", 8),
        ("end_of_life", 4),
        ("other", 6),
    ]
)
# Chance per person of each kind of closure during the window (hospital deaths aside).
MOVED_AWAY = 0.03
NO_LONGER_NEEDED = 0.02
DIED_AT_HOME = 0.012
RELATIONSHIPS = ("spouse", "partner", "daughter", "son", "friend", "neighbour", "parent")


def register(life: Life) -> None:
    """``PatientRegistered`` opens the journey: many in the first weeks (the existing
    caseload being loaded), the rest spread over the first three quarters of the window."""
    rng = life.rng
    span = life.end // DAY
    day = between(rng, 0, 45) if rng.random() < 0.45 else int(rng.uniform(0, 0.75 * span))
    life.practice = one_of(rng, life.world.practices)
    life.gp = one_of(rng, life.practice.gps)
    when = daytime(rng, day)
    life.registered_at = when
    data = {"practice": life.practice.org.code}
    if rng.random() < 0.85:
        data["gp_id"] = life.gp.id
    roll = rng.random()
    org = life.practice.org
    if roll < 0.6:
        recorded_by = {"id": life.practice.admin_id, "role": "administrator"}
    elif roll < 0.75:
        recorded_by = life.gp.recorded_by
    else:
        recorded_by = org.system_recorder
    life.add(when, "PatientRegistered", org, recorded_by, data)


def identify(life: Life) -> None:
    """``CaseIdentified`` for about 60%: often within a week of registration (a risk
    stratification run), otherwise weeks to months later."""
    rng = life.rng
    if rng.random() >= IDENTIFIED_SHARE:
        return
    days = between(rng, 0, 8) if rng.random() < 0.3 else int(rng.lognormvariate(3.8, 0.9))
    when = days_later(rng, life.registered_at, days)
    if when >= life.horizon:
        return
    criteria: list[str] = []
    for _ in range(one_of(rng, (1, 1, 1, 2, 2, 3))):
        criterion = CRITERIA.pick(rng)
        if criterion not in criteria:
            criteria.append(criterion)
    life.identified_at = when
    life.criteria = tuple(criteria)
    data: dict[str, object] = {"criteria": criteria}
    if rng.random() < 0.7:
        risk = min(0.99, 0.25 + 0.75 * rng.betavariate(2.0, 2.5))
        data["risk_score"] = round(risk, 3)
        life.need = 0.6 + risk
    else:
        life.need = 1.0
    if "end_of_life" in criteria or "frailty" in criteria:
        life.need += 0.3
    org = life.practice.org
    by = org.system_recorder if rng.random() < 0.3 else life.by(life.gp)
    life.add(when, "CaseIdentified", org, by, data)


def plan_closure(life: Life) -> None:
    """Decide up front whether the journey closes (not by a hospital death), so every
    theme stops at the same horizon."""
    rng = life.rng
    roll = rng.random()
    died_share = DIED_AT_HOME * (4 if "end_of_life" in life.criteria else 1)
    if roll < MOVED_AWAY:
        reason = "moved_away"
    elif roll < MOVED_AWAY + NO_LONGER_NEEDED:
        if life.identified_at is None:  # only an identified person's need can end
            return
        reason = "no_longer_needed"
    elif roll < MOVED_AWAY + NO_LONGER_NEEDED + died_share:
        reason = "died"
    else:
        return
    earliest = (life.identified_at or life.registered_at) // DAY + 30
    latest = life.end // DAY - 3
    if earliest >= latest:
        return
    when = daytime(rng, between(rng, earliest, latest))
    life.horizon = when
    life.closing = (when, reason)


def carers(life: Life) -> None:
    """``CarerRecorded`` for about a third (more when frail or at end of life); a few
    change their consent to share later, re-recorded with the same ``carer_id``."""
    rng = life.rng
    share = 0.5 if {"frailty", "end_of_life"} & set(life.criteria) else 0.3
    if rng.random() >= share:
        return
    when = days_later(rng, life.registered_at, between(rng, 1, 240))
    carer_id = f"CR{between(rng, 10**6, 10**7)}"
    data: dict[str, object] = {"carer_id": carer_id}
    if rng.random() < 0.85:
        data["relationship"] = one_of(rng, RELATIONSHIPS)
    consent = rng.random() < 0.85
    data["consent_to_share"] = consent
    if when >= life.horizon:
        return
    org = life.practice.org
    life.add(when, "CarerRecorded", org, life.by(one_of(rng, life.practice.nurses)), data)
    if rng.random() < 0.1:
        later = days_later(rng, when, between(rng, 20, 300))
        if later < life.horizon:
            changed = dict(data, consent_to_share=not consent)
            life.add(later, "CarerRecorded", org, life.by(life.gp), changed)


def outcomes(life: Life) -> None:
    """``OutcomeRecorded`` for identified people: P3CEQ (0-30) and EQ-5D-5L (index 0-1,
    often with its five item levels) at baseline and roughly every six months, with a
    modest average improvement so before/after evaluation has a signal."""
    rng = life.rng
    if life.identified_at is None or rng.random() >= 0.7:
        return
    p3ceq = min(30.0, max(0.0, rng.gauss(15, 5)))
    eq5d = min(1.0, max(0.0, rng.gauss(0.58, 0.18)))
    when = days_later(rng, life.identified_at, between(rng, 0, 30))
    while when < life.horizon:
        staff = life.coordinator_at(when) or one_of(rng, life.practice.nurses)
        org = life.org_of(staff)
        life.add(
            when,
            "OutcomeRecorded",
            org,
            life.by(staff),
            {"instrument": "P3CEQ", "score": round(p3ceq)},
        )
        after = minutes_later(rng, when, 1, 20)
        if after < life.horizon and rng.random() < 0.7:
            life.add(after, "OutcomeRecorded", org, life.by(staff), _eq5d(life, eq5d))
        p3ceq = min(30.0, max(0.0, p3ceq + rng.gauss(1.2, 3)))
        eq5d = min(1.0, max(0.0, eq5d + rng.gauss(0.02, 0.08)))
        if rng.random() < 0.55:
            return
        when = days_later(rng, when, between(rng, 150, 220))


def _eq5d(life: Life, index: float) -> dict[str, object]:
    """An EQ-5D-5L record: the index, and (usually) levels 1-5 that roughly agree."""
    rng = life.rng
    data: dict[str, object] = {"instrument": "EQ-5D-5L", "score": round(index, 3)}
    if rng.random() < 0.6:
        base = 1 + (1 - index) * 4
        data["items"] = {
            name: min(5, max(1, round(base + rng.gauss(0, 0.7))))
            for name in (
                "mobility",
                "self_care",
                "usual_activities",
                "pain_discomfort",
                "anxiety_depression",
            )
        }
    return data


def close_journey(life: Life) -> None:
    """After the horizon: end coordination and any open plan (sometimes), then
    ``JourneyClosed``, the person's last event."""
    if life.closing is None:
        return
    rng = life.rng
    when, reason = life.closing
    base = life.horizon
    coordinator = life.coordinator_at(base)
    if coordinator is not None and rng.random() < 0.6:
        base = minutes_later(rng, base, 1, 30)
        life.add(
            base,
            "CoordinatorReleased",
            life.org_of(coordinator),
            life.by(coordinator),
            {"coordinator_id": coordinator.id, "reason": reason.replace("_", " ")},
        )
    for plan_id, agreed, closed in life.plans:
        still_open = agreed < life.horizon and (closed is None or closed >= life.horizon)
        if still_open and rng.random() < 0.6:
            base = minutes_later(rng, base, 1, 30)
            staff = coordinator or life.gp
            life.add(
                base,
                "CarePlanClosed",
                life.org_of(staff),
                life.by(staff),
                {"plan_id": plan_id, "reason": reason.replace("_", " ")},
            )
    when = max(when, minutes_later(rng, base, 5, 60))
    org = life.practice.org
    life.add(when, "JourneyClosed", org, life.by(life.gp), {"reason": reason})
