"""Hospital spells as a PAS/EPR feed reports them (ADT-like, usually no ``recorded_by``).

Each spell: ``Admitted`` (mostly emergency, some elective), sometimes a ward
``Transferred`` (occasionally cancelled, HL7 A12), ``Discharged`` with a destination.
Edge cases the measures must get right are generated on purpose:

* discharge to ``other_hospital`` followed within hours by ``Admitted`` with method
  ``transfer`` elsewhere (one continuous spell, not a readmission);
* discharge by death, followed by ``JourneyClosed`` (died);
* emergency readmissions on London day 0 (same day), day 29 (the last counted) and
  day 30 (the first not counted), besides ordinary ones;
* an admission entered in error and cancelled (A11), and a premature discharge cancelled
  (A13) before the real one, each with the same ``encounter_id``, after its target.

Discharges home are remembered for the follow-up contacts of the contacts theme.
"""

from __future__ import annotations

import math

from domain.synthetic.clock import (
    DAY,
    Moment,
    Weighted,
    any_hour,
    between,
    days_later,
    daytime,
    minutes_later,
    one_of,
    skip_small_hours,
)
from domain.synthetic.life import Life
from domain.synthetic.world import WARDS, Org

EMERGENCY_PER_YEAR = 0.35  # times the person's need, plus a baseline
EMERGENCY_BASELINE = 0.04
ELECTIVE_PER_YEAR = 0.07
READMISSION = 0.14  # chance an index discharge is followed by a planned readmission
READMISSION_DAY = Weighted([(0, 12), (29, 12), (30, 12), (-1, 64)])  # -1: days 1-28
DESTINATION = Weighted(
    [
        ("usual_residence", 84),
        ("care_home", 6),
        ("other_hospital", 5),
        ("died", 2.5),
        ("other", 2.5),
    ]
)
WRONG_ADMISSION = 0.025
PREMATURE_DISCHARGE = 0.05
WARD_TRANSFER = 0.2
TRANSFER_CANCELLED = 0.2


def admissions(life: Life) -> None:
    """The person's spells, one after another, until the horizon or a death."""
    rng = life.rng
    rate = (EMERGENCY_PER_YEAR * life.need + EMERGENCY_BASELINE + ELECTIVE_PER_YEAR) / 365.25
    elective_share = ELECTIVE_PER_YEAR / (rate * 365.25)
    admitted, method = _fresh_arrival(life, life.registered_at, rate, elective_share)
    while admitted < life.horizon:
        hospital = life.practice.area.hospital
        if rng.random() < 0.25:  # a quarter of spells are away from the local hospital
            hospital = one_of(rng, life.world.hospitals)
        if rng.random() < WRONG_ADMISSION:
            _wrong_admission(life, hospital, admitted)
            admitted, method = _fresh_arrival(life, admitted, rate, elective_share)
            continue
        outcome = _spell(life, hospital, admitted, method)
        if outcome is None:
            return
        discharged, destination = outcome
        if destination == "died":
            _death(life, discharged)
            return
        if rng.random() < READMISSION:
            admitted, method = _readmission(life, discharged), "emergency"
        else:
            admitted, method = _fresh_arrival(life, discharged, rate, elective_share)


def _fresh_arrival(
    life: Life, after: Moment, rate: float, elective_share: float
) -> tuple[Moment, str]:
    """The next admission from the person's rate, at least a day after ``after``;
    electives arrive in the morning, emergencies at any hour."""
    rng = life.rng
    day = (after + int(max(1.0, rng.expovariate(rate)) * DAY)) // DAY
    if rng.random() < elective_share:
        return daytime(rng, day, 7, 11), "elective"
    return any_hour(rng, day), "emergency"


def _readmission(life: Life, discharged: Moment) -> Moment:
    """An emergency readmission on a chosen London day after the discharge: 0 (later the
    same day), 29 (the last day counted), 30 (the first not counted) or 1-28."""
    rng = life.rng
    day = READMISSION_DAY.pick(rng)
    if day < 0:
        day = between(rng, 1, 29)
    if day == 0:
        return days_later(rng, discharged, 0, 8, 22)
    return any_hour(rng, discharged // DAY + day)


def _adt_by(life: Life, hospital: Org) -> dict[str, str] | None:
    """ADT events usually carry no recorder; some EPR feeds name themselves."""
    return hospital.system_recorder if life.rng.random() < 0.2 else None


def _spell(life: Life, hospital: Org, admitted: Moment, method: str) -> tuple[Moment, str] | None:
    """One spell at one hospital; returns (discharge time, destination), following a
    transfer to another hospital into its own spell; None if still in at the horizon."""
    rng = life.rng
    encounter = life.new_id(hospital.code, 40)
    ward = one_of(rng, WARDS)
    data = {"encounter_id": encounter, "hospital": hospital.code, "method": method}
    if rng.random() < 0.8:
        data["ward"] = ward
    life.add(admitted, "Admitted", hospital, _adt_by(life, hospital), data)
    discharged = _discharge_time(life, admitted, method)
    if discharged >= life.horizon:
        return None
    location = ward if "ward" in data else "Emergency Department"
    _ward_moves(life, hospital, encounter, admitted, discharged, location)
    if (discharged - admitted) // DAY >= 2 and rng.random() < PREMATURE_DISCHARGE:
        _premature_discharge(life, hospital, encounter, admitted, discharged)
    destination = DESTINATION.pick(rng)
    if destination == "died" and "end_of_life" not in life.criteria and rng.random() < 0.5:
        destination = "usual_residence"
    life.add(
        discharged,
        "Discharged",
        hospital,
        _adt_by(life, hospital),
        {"encounter_id": encounter, "destination": destination},
    )
    life.spells.append((admitted, discharged))
    if destination == "other_hospital":
        others = [h for h in life.world.hospitals if h.code != hospital.code]
        arrived = minutes_later(rng, discharged, 30, 180)
        return _spell(life, one_of(rng, others), arrived, "transfer")
    if destination == "usual_residence":
        life.home_discharges.append(discharged)
    return discharged, destination


def _discharge_time(life: Life, admitted: Moment, method: str) -> Moment:
    """Length of stay: elective 0-3 days (day cases leave the same afternoon); emergency
    log-normal with a median of about four days; discharges happen 09:00-19:00."""
    rng = life.rng
    if method == "elective":
        days = one_of(rng, (0, 0, 1, 1, 2, 3))
    else:
        days = min(90, int(rng.lognormvariate(math.log(4), 0.9)))
    if days == 0:
        return days_later(rng, admitted, 0, 9, 20)
    return daytime(rng, admitted // DAY + days, 9, 19)


def _ward_moves(
    life: Life,
    hospital: Org,
    encounter: str,
    admitted: Moment,
    discharged: Moment,
    ward: str,
) -> None:
    """Sometimes a transfer between wards in the spell, now and then cancelled (A12)."""
    rng = life.rng
    if (discharged - admitted) // DAY < 1 or rng.random() >= WARD_TRANSFER:
        return
    moved = skip_small_hours(admitted + int((discharged - admitted) * rng.uniform(0.1, 0.6)))
    to_location = one_of(rng, [w for w in WARDS if w != ward])
    life.add(
        moved,
        "Transferred",
        hospital,
        _adt_by(life, hospital),
        {"encounter_id": encounter, "from_location": ward, "to_location": to_location},
    )
    if rng.random() < TRANSFER_CANCELLED:
        cancelled = minutes_later(rng, moved, 20, 180)
        if cancelled < discharged:
            life.add(
                cancelled,
                "TransferCancelled",
                hospital,
                _adt_by(life, hospital),
                {"encounter_id": encounter},
            )


def _premature_discharge(
    life: Life, hospital: Org, encounter: str, admitted: Moment, discharged: Moment
) -> None:
    """A discharge keyed in too early, then cancelled (A13); the real one comes later."""
    rng = life.rng
    wrong = daytime(rng, (admitted + (discharged - admitted) // 2) // DAY, 9, 17)
    cancelled = minutes_later(rng, wrong, 10, 240)
    if not admitted < wrong < cancelled < discharged:
        return
    life.add(
        wrong,
        "Discharged",
        hospital,
        _adt_by(life, hospital),
        {"encounter_id": encounter, "destination": "usual_residence"},
    )
    life.add(
        cancelled,
        "DischargeCancelled",
        hospital,
        _adt_by(life, hospital),
        {"encounter_id": encounter},
    )


def _wrong_admission(life: Life, hospital: Org, admitted: Moment) -> None:
    """An admission recorded against the wrong person, cancelled (A11) hours later."""
    rng = life.rng
    encounter = life.new_id(hospital.code, 40)
    life.add(
        admitted,
        "Admitted",
        hospital,
        _adt_by(life, hospital),
        {"encounter_id": encounter, "hospital": hospital.code, "method": "emergency"},
    )
    cancelled = minutes_later(rng, admitted, 20, 360)
    if cancelled < life.horizon:
        life.add(
            cancelled,
            "AdmissionCancelled",
            hospital,
            _adt_by(life, hospital),
            {"encounter_id": encounter},
        )


def _death(life: Life, died: Moment) -> None:
    """A death in hospital closes the journey: the practice records it a day or so later
    (sooner if the window is ending); nothing else happens after the death."""
    rng = life.rng
    closed = days_later(rng, died, between(rng, 1, 4))
    if closed >= life.end:
        closed = min(minutes_later(rng, died, 30, 120), life.end - 1)
    life.horizon = died + 1
    life.closing = (closed, "died")
