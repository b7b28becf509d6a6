"""Contacts across settings, and follow-up after discharge home.

Routine contacts come at the person's rate from a small circle: their registered GP
(their "usual" professional, seen with a person-specific probability, so continuity of
care varies between people), the practice nurses, now and then another GP, and whoever
was involved through referrals or coordination by then. That gives the Bice-Boxerman
COC and UPC measures a real spread.

Follow-up after a discharge home is generated against the measure's edges: a contact on
the discharge day itself (does not count), within 72 hours, within 7 days, later, or
none.
"""

from __future__ import annotations

from domain.synthetic.clock import DAY, Moment, Weighted, between, days_later, minutes_later, one_of
from domain.synthetic.life import Life
from domain.synthetic.world import Staff

CONTACTS_PER_YEAR = 1.6  # times need, plus a baseline
CONTACTS_BASELINE = 0.6
FOLLOW_UP = Weighted(
    [
        ("same_day", 10),
        ("within_72h", 30),
        ("within_7_days", 20),
        ("later", 15),
        ("none", 25),
    ]
)
MODES = {
    "primary_care": Weighted([("face_to_face", 55), ("phone", 35), ("video", 10)]),
    "community": Weighted([("home_visit", 70), ("face_to_face", 15), ("phone", 15)]),
    "mental_health": Weighted([("face_to_face", 50), ("phone", 30), ("video", 20)]),
    "social_care": Weighted([("home_visit", 55), ("phone", 45)]),
    "voluntary": Weighted([("face_to_face", 50), ("phone", 50)]),
    "acute": Weighted([("face_to_face", 90), ("phone", 10)]),
}


def contacts(life: Life) -> None:
    """Routine contacts from the registration to the horizon."""
    rng = life.rng
    rate = (CONTACTS_PER_YEAR * life.need + CONTACTS_BASELINE) / 365.25
    usual = rng.uniform(0.25, 0.9)  # this person's chance of seeing their usual GP
    when = days_later(rng, life.registered_at, max(1, int(rng.expovariate(rate))))
    while when < life.horizon:
        if not life.in_hospital(when):
            _contact(life, when, _routine_professional(life, when, usual))
        when = days_later(rng, when, max(1, int(rng.expovariate(rate))))
    for discharged in life.home_discharges:
        _follow_up(life, discharged)


def _routine_professional(life: Life, when: Moment, usual: float) -> Staff:
    rng = life.rng
    roll = rng.random()
    if roll < usual:
        return life.gp
    known = life.known_at(when)
    if known and roll < usual + (1 - usual) * 0.5:
        return one_of(rng, known)
    if rng.random() < 0.6:
        return one_of(rng, life.practice.nurses)
    return one_of(rng, life.practice.gps)


def _contact(life: Life, when: Moment, staff: Staff, mode: str | None = None) -> None:
    rng = life.rng
    org = life.org_of(staff)
    mode = mode or MODES[org.setting].pick(rng)
    setting = "home" if mode == "home_visit" and rng.random() < 0.5 else org.setting
    life.add(
        when,
        "ContactRecorded",
        org,
        life.by(staff),
        {"setting": setting, "mode": mode, "with": staff.contact_with},
    )


def _follow_up(life: Life, discharged: Moment) -> None:
    """One follow-up contact (or none) after a discharge home, by the coordinator of
    the moment or a practice or community nurse."""
    rng = life.rng
    kind = FOLLOW_UP.pick(rng)
    if kind == "none":
        return
    if kind == "same_day":
        when = minutes_later(rng, discharged, 30, 240)
        if when // DAY != discharged // DAY:
            return
    elif kind == "within_72h":
        when = days_later(rng, discharged, between(rng, 1, 3))
    elif kind == "within_7_days":
        when = days_later(rng, discharged, between(rng, 3, 8))
    else:
        when = days_later(rng, discharged, between(rng, 8, 30))
    if when >= life.horizon:
        return
    staff = life.coordinator_at(when)
    if staff is None or rng.random() < 0.3:
        community = life.practice.area.community.staff["community_nurse"]
        staff = one_of(rng, life.practice.nurses if rng.random() < 0.6 else community)
    _contact(life, when, staff, "phone" if rng.random() < 0.5 else None)
