"""Hospital transitions: 30-day emergency readmission, follow-up after discharge, and
delayed discharge days.

Both start from *index discharges*, built from ``admission_spells``
(projections/timeline.py; cancelled and retracted admissions, transfers and discharges
are already gone):

* **Transfer chains.** A spell discharged to ``other_hospital`` continues into the
  person's next spell when that spell's admission method is ``transfer`` and it was
  admitted on the discharge's local date or the next day: one continuous spell across
  hospitals, never a discharge and a readmission. The chain's last discharge is the
  index discharge; its hospital is the *discharging hospital*.
* A chain ending in a discharge to ``other_hospital`` with no transfer admission to
  continue it left the ledger's sight still in hospital: not an index discharge
  (``transferred_out``). A discharge by death (``died``) is never followed by a
  readmission: not an index discharge (``deaths``).
* A discharge at or after the end of the period is not known yet: the spell counts as
  still open.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from projections.measures.period import Period, mean, median, pct
from projections.measures.population import Person, Population
from projections.measures.result import Context, Figures, Shape, grouped, measure
from projections.timeline import Spell

READMISSION_DAYS = 29  # days 0-29 inclusive
FOLLOW_UP_DAYS = 7  # days 1-7
FOLLOW_UP_HOURS = 72


@dataclass(frozen=True, slots=True)
class Discharge:
    """The end of a chain of spells (module docstring)."""

    person: Person
    spell: Spell  # the chain's last spell
    chain: tuple[Spell, ...]
    at: datetime
    destination: str
    keys: dict[str, str]


def chains(person: Person, period: Period) -> list[tuple[Spell, ...]]:
    """The person's spells joined into transfer chains, in admission order."""
    spells = person.spells
    out: list[tuple[Spell, ...]] = []
    i = 0
    while i < len(spells):
        chain = [spells[i]]
        i += 1
        while i < len(spells):
            last, following = chain[-1], spells[i]
            discharged = period.before_end(last.discharged_at)
            if (
                discharged is None
                or last.destination != "other_hospital"
                or following.method != "transfer"
                or following.admitted_at >= period.end
                or not 0 <= (period.day(following.admitted_at) - period.day(discharged)).days <= 1
            ):
                break
            chain.append(following)
            i += 1
        out.append(tuple(chain))
    return out


def discharges(pop: Population, period: Period) -> list[Discharge]:
    """Every chain ending in a discharge in the period (any destination)."""
    found = []
    for person in pop:
        for chain in chains(person, period):
            last = chain[-1]
            at = period.before_end(last.discharged_at)
            if at is None or not period.contains(at):
                continue
            keys = person.keys(period, at, attribute=True) | {"organisation": last.hospital}
            found.append(Discharge(person, last, chain, at, str(last.destination), keys))
    return found


def data_until(pop: Population, period: Period) -> datetime:
    """How far past the period a discharge's window may be judged: as far as the
    ledger's data reaches (the latest occurred time of any recorded fact), at least the
    period's end, at most ``LOOK_AHEAD_DAYS`` past it."""
    reach = pop.horizon or period.end
    return max(period.end, min(reach, period.look_ahead_end))


def _admissions_after(discharge: Discharge, until: datetime, *, emergency: bool) -> list[datetime]:
    """Admissions of the person from the discharge on, before ``until``."""
    return sorted(
        s.admitted_at
        for s in discharge.person.spells
        if s not in discharge.chain
        and discharge.at <= s.admitted_at < until
        and (not emergency or s.method == "emergency")
    )


@dataclass(frozen=True, slots=True)
class AtDischarge:
    """A unit counted at an index discharge: split by the discharge's keys and listed,
    for the auditor, with its hospital and status (``discharge_figures``)."""

    discharge: Discharge
    status: str


A = TypeVar("A", bound=AtDischarge)


def discharge_figures(
    ctx: Context,
    shape: Shape,
    units: list[A],
    summarise: Callable[[list[A]], dict[str, Any]],
    fields: Callable[[A], dict[str, Any]] = lambda _u: {},
) -> Figures:
    """The figures of a measure counted at index discharges; ``fields``: the per-person
    row's values after the hospital and the status."""
    per_person = ctx.person_rows(
        units,
        lambda u: u.discharge.person.patient_id,
        lambda u: {"hospital": u.discharge.spell.hospital, "status": u.status, **fields(u)},
    )
    return Figures(shape, grouped(ctx, units, lambda u: u.discharge.keys, summarise), per_person)


@dataclass(frozen=True, slots=True)
class Readmission(AtDischarge):
    """status: "complete", "incomplete", "death", "transferred_out"."""

    day: int | None  # the first readmission's day (0-29), if readmitted


@measure("30-day emergency readmission", "index discharges")
def readmission_30d(pop: Population, ctx: Context) -> Figures:
    """30-day emergency readmission (NHS definition).

    Denominator (``discharges``): index discharges (see "index discharges" above: the end
    of a transfer chain, not by death, not to another hospital's unseen care) whose local
    discharge date D lies in the period and whose 30-day window is complete: the window
    (to the end of local day D + 29) may run past the period's end, and is complete when
    the ledger's data reaches its end — the latest occurred time of any recorded fact is
    at or after it — looking at most 31 days past the period. Index discharges whose
    window the ledger does not cover yet are counted in ``incomplete`` instead
    (reported, not dropped); discharges by death in
    ``deaths``; chains ending in a discharge to another hospital with no transfer
    admission in ``transferred_out``.

    Numerator (``readmitted``): those followed by at least one admission with method
    ``emergency`` admitted at or after the discharge time on local days 0-29 after D
    inclusive (day 0 = the discharge date itself: an emergency admission later the same
    day is a day-0 readmission; day 29 counts, day 30 does not). Elective, maternity
    and transfer admissions are not readmissions.
    ``readmission_pct`` = 100 * readmitted / discharges.

    Split: organisation = the discharging hospital; role and setting = the coordinator
    holding at the discharge (``none`` if nobody named); cohort.
    """
    period = ctx.period
    covered = data_until(pop, period)
    units = []
    for d in ctx.memo("discharges", lambda: discharges(pop, period)):
        day = period.day(d.at)
        if d.destination == "died":
            units.append(Readmission(d, "death", None))
        elif d.destination == "other_hospital":
            units.append(Readmission(d, "transferred_out", None))
        elif period.midnight(day + timedelta(days=READMISSION_DAYS)) > covered:
            units.append(Readmission(d, "incomplete", None))
        else:
            window_end = period.midnight(day + timedelta(days=READMISSION_DAYS + 1))
            after = _admissions_after(d, window_end, emergency=True)
            first = (period.day(after[0]) - day).days if after else None
            units.append(Readmission(d, "complete", first))

    def summarise(group: list[Readmission]) -> dict[str, Any]:
        status = Counter(u.status for u in group)
        done = [u for u in group if u.status == "complete"]
        readmitted = sum(1 for u in done if u.day is not None)
        return {
            "discharges": len(done),
            "readmitted": readmitted,
            "readmission_pct": pct(readmitted, len(done)),
            "incomplete": status["incomplete"],
            "deaths": status["death"],
            "transferred_out": status["transferred_out"],
        }

    shape = Shape(
        counts=("discharges", "readmitted", "incomplete", "deaths", "transferred_out"),
        rates={"readmission_pct": ("readmitted", "discharges")},
    )
    return discharge_figures(
        ctx,
        shape,
        units,
        summarise,
        lambda u: {
            "readmitted": None if u.status != "complete" else u.day is not None,
            "readmission_day": u.day,
        },
    )


@dataclass(frozen=True, slots=True)
class FollowUp(AtDischarge):
    """status: "followed_up", "readmitted_first", "none", "incomplete"."""


def _follow_up(d: Discharge, window_start: datetime, window_end: datetime, period: Period) -> str:
    """Followed up, readmitted first, or neither, within [window_start, window_end):
    contacts after the discharge, not on its local date, not made from an ADT A04."""
    discharge_day = period.day(d.at)
    contacts = [
        c.occurred_at
        for c in d.person.contacts
        if not c.from_adt
        and window_start <= c.occurred_at < window_end
        and c.occurred_at > d.at
        and period.day(c.occurred_at) != discharge_day
    ]
    admissions = _admissions_after(d, window_end, emergency=False)
    first_contact = min(contacts) if contacts else None
    if admissions and (first_contact is None or admissions[0] < first_contact):
        return "readmitted_first"
    return "followed_up" if first_contact is not None else "none"


def _follow_up_measure(pop: Population, ctx: Context, hours: bool) -> list[FollowUp]:
    period = ctx.period
    covered = data_until(pop, period)
    units = []
    for d in ctx.memo("discharges", lambda: discharges(pop, period)):
        if d.destination != "usual_residence":
            continue
        day = period.day(d.at)
        if hours:
            start, end = d.at, d.at + timedelta(hours=FOLLOW_UP_HOURS)
            complete = end <= covered
            end += timedelta(microseconds=1)  # the 72nd hour is inside the window
        else:
            start = period.midnight(day + timedelta(days=1))
            end = period.midnight(day + timedelta(days=FOLLOW_UP_DAYS + 1))
            complete = end <= covered
        status = _follow_up(d, start, end, period) if complete else "incomplete"
        units.append(FollowUp(d, status))
    return units


def _follow_up_result(units: list[FollowUp], ctx: Context) -> Figures:
    def summarise(group: list[FollowUp]) -> dict[str, Any]:
        status = Counter(u.status for u in group)
        done = len(group) - status["incomplete"]
        return {
            "discharges": done,
            "followed_up": status["followed_up"],
            "follow_up_pct": pct(status["followed_up"], done),
            "readmitted_first": status["readmitted_first"],
            "incomplete": status["incomplete"],
        }

    shape = Shape(
        counts=("discharges", "followed_up", "readmitted_first", "incomplete"),
        rates={"follow_up_pct": ("followed_up", "discharges")},
    )
    return discharge_figures(ctx, shape, units, summarise)


@measure("Follow-up within 7 days of discharge home", "discharges home")
def follow_up_7d(pop: Population, ctx: Context) -> Figures:
    """Follow-up within 7 days of a discharge home.

    Denominator (``discharges``): index discharges (as for readmission) to
    ``usual_residence`` with local discharge date D in the period whose window (to the
    end of local day D + 7) the ledger's data covers, as for readmission (it may run
    past the period's end); the others are ``incomplete`` (reported, not in the rate).

    Numerator (``followed_up``): those with a contact (a standing ``ContactRecorded``,
    any setting or mode) on local days D+1 to D+7 inclusive, before any readmission.
    The discharge day itself never counts. Contacts made by the HL7 v2 ADT adapter from
    an A04 registration/attendance (``source.system`` starting ``hl7v2:``,
    docs/adt.md) never count.

    ``readmitted_first``: discharges where an admission (any method) at or after the
    discharge time and before the end of day D+7 came before any counting contact;
    they stay in the denominator, are not followed up, and are reported separately.
    ``follow_up_pct`` = 100 * followed_up / discharges.

    Split: organisation = the discharging hospital; role and setting = the coordinator
    holding at the discharge; cohort.
    """
    return _follow_up_result(_follow_up_measure(pop, ctx, hours=False), ctx)


@measure("Follow-up within 72 hours of discharge home", "discharges home")
def follow_up_72h(pop: Population, ctx: Context) -> Figures:
    """Follow-up within 72 hours of a discharge home.

    As the 7-day measure, with the window "within 72 hours": a contact after the
    discharge time and at most 72 hours after it, and not on the discharge's local
    date (so a contact later on the discharge day does not count, and 72 hours is
    measured from the discharge time, not from midnight). Complete when the ledger's
    data reaches the discharge time + 72 hours, as for readmission (``incomplete``
    otherwise).

    ``readmitted_first``: an admission at or after the discharge time, within the 72
    hours, before any counting contact. ADT A04 contacts never count.

    Split as the 7-day measure.
    """
    return _follow_up_result(_follow_up_measure(pop, ctx, hours=True), ctx)


@dataclass(frozen=True, slots=True)
class Delay:
    """A hospital stay that had a ``DischargeReady``: from the first decision to the
    discharge, in local calendar days."""

    person: Person
    spell: Spell
    ready_at: datetime
    reason: str
    days: int | None  # None while still in hospital at the period's end
    keys: dict[str, str]


def _delays(pop: Population, period: Period) -> list[Delay]:
    units = []
    for person in pop:
        for spell in person.spells:
            decisions = [
                r
                for r in person.ready
                if r.encounter_id == spell.encounter_id
                and spell.admitted_at <= r.occurred_at
                and (spell.discharged_at is None or r.occurred_at <= spell.discharged_at)
            ]
            if not decisions:
                continue
            first = decisions[0]
            discharged = period.before_end(spell.discharged_at)
            if discharged is not None and not period.contains(discharged):
                continue  # discharged before the period
            if discharged is None and first.occurred_at >= period.end:
                continue  # decided after the period
            reason = decisions[-1].delay_reason or "unknown"
            moment = discharged if discharged is not None else period.end
            keys = person.keys(period, min(moment, first.occurred_at), attribute=True) | {
                "organisation": spell.hospital
            }
            days = None
            if discharged is not None:
                days = (period.day(discharged) - period.day(first.occurred_at)).days
            units.append(Delay(person, spell, first.occurred_at, reason, days, keys))
    return units


@measure("Delayed discharge days", "hospital stays ready for discharge")
def delayed_discharge(pop: Population, ctx: Context) -> Figures:
    """Delayed discharge days: from medically fit to leave to leaving.

    Units (``discharges``): hospital stays with a standing ``DischargeReady`` (the
    hospital's decision that the person no longer needs to be in hospital: medically
    optimised, no criteria to reside) for the stay's encounter, made while the person
    was in, and a discharge in the period (local discharge date in the period).

    Delay: local calendar days from the stay's first ``DischargeReady`` to the
    discharge (0: discharged the day it was decided). ``delayed`` counts the stays
    with a delay of at least one day; ``delayed_days`` sums the delays;
    ``mean_delay_days`` and ``median_delay_days`` are over the stays with a
    discharge. ``still_waiting``: stays decided before the period's end and not yet
    discharged by then (reported, not in the statistics).

    Delay reason: the reason of the stay's latest ``DischargeReady`` (a later decision
    updates it); ``unknown`` when none was given. The series ``by_delay_reason`` splits
    the same units by it: ``social_care_assessment``, ``home_care_package``,
    ``care_home_place``, ``equipment``, ``family``, ``other``, ``unknown``.

    Split: organisation = the discharging hospital; role and setting = the coordinator
    holding at the decision; cohort.
    """
    units = _delays(pop, ctx.period)

    def figures(group: list[Delay]) -> dict[str, Any]:
        done = [u.days for u in group if u.days is not None]
        return {
            "discharges": len(done),
            "delayed": sum(1 for d in done if d >= 1),
            "delayed_days": sum(done),
            "mean_delay_days": mean(done),
            "median_delay_days": median(done),
        }

    def summarise(group: list[Delay]) -> dict[str, Any]:
        reasons = sorted({u.reason for u in group})
        return {
            **figures(group),
            "still_waiting": sum(1 for u in group if u.days is None),
            "by_delay_reason": [
                {"label": r, **figures([u for u in group if u.reason == r])} for r in reasons
            ],
        }

    row_shape = Shape(
        counts=("discharges", "delayed"),
        stats=dict.fromkeys(("delayed_days", "mean_delay_days", "median_delay_days"), "discharges"),
    )
    shape = Shape(
        counts=("discharges", "delayed", "still_waiting"),
        stats=row_shape.stats,
        series={"by_delay_reason": row_shape},
    )
    per_person = ctx.person_rows(
        units,
        lambda u: u.person.patient_id,
        lambda u: {
            "hospital": u.spell.hospital,
            "delay_reason": u.reason,
            "delay_days": u.days,
        },
    )
    return Figures(shape, grouped(ctx, units, lambda u: u.keys, summarise), per_person)
