"""Named coordination: time to a named coordinator, handoffs, uncovered days.

All three read ``coordinator_intervals`` (projections/coordinators.py): half-open
``[valid_from, valid_to)`` intervals inside open journeys, each *named* (set by
``CoordinatorAssigned``/``CoordinatorHandedOff``) or the registered practice's default
answer (not named, docs/projections.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from domain.contract import EventType
from projections.coordinators import Interval
from projections.measures.period import Period, median, month_runs, p90, ratio
from projections.measures.population import Person, Population, coordinator_keys
from projections.measures.result import Context, Figures, Shape, grouped, measure

WAIT_BINS: tuple[tuple[str, int, int | None], ...] = (
    ("0", 0, 0),
    ("1-7", 1, 7),
    ("8-14", 8, 14),
    ("15-30", 15, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91+", 91, None),
)


@dataclass(frozen=True, slots=True)
class Wait:
    person: Person
    days: int | None  # None: no named coordinator by the end of the period
    at_start: bool
    keys: dict[str, str]


def _clock_start(person: Person, period: Period) -> datetime | None:
    """The first standing CaseIdentified, else the first referral (before the end)."""
    identified = period.before_end(person.identified_at)
    if identified is not None:
        return identified
    made = [r.made_at for r in person.referrals if r.made_at < period.end]
    return min(made) if made else None


def _first_named(person: Person, start: datetime, end: datetime) -> tuple[Any, bool] | None:
    """The named interval holding at ``start`` (True), else the first to begin after it
    and before ``end`` (False); zero-length intervals never hold."""
    held = person.holder(start)
    if held is not None and held.named:
        return held, True
    for interval in person.intervals:
        if (
            interval.named
            and start < interval.valid_from < end
            and (interval.valid_to is None or interval.valid_to > interval.valid_from)
        ):
            return interval, False
    return None


@measure("Time to named coordinator", "people")
def time_to_coordinator(pop: Population, ctx: Context) -> Figures:
    """Time to named coordinator: calendar days from the start of the person's clock to
    the first named coordinator.

    Population (denominator, ``people``): people whose clock starts in the period. The
    clock starts at the person's first standing ``CaseIdentified``; a person never
    identified (before the end of the period) starts at their first ``ReferralMade``;
    people with neither are not counted.

    End: the first instant from the start on at which a *named* coordinator holds
    (``CoordinatorAssigned`` or ``CoordinatorHandedOff``; the registered practice's
    default answer is not named). If a named coordinator already holds at the start the
    wait is 0 days (counted in ``named_at_start`` too).

    Wait: local date of the end minus local date of the start, in days (so an
    assignment the same local day is 0).

    ``named``: people whose wait ended before the end of the period; ``median_days`` and
    ``p90_days`` summarise their waits; ``incomplete``: people with no named coordinator
    by the end of the period (still waiting, or their journey closed first): reported,
    not dropped, and not in the statistics. ``distribution``: people by wait, in bins.

    Split: role, setting and organisation of the first named coordinator (``none`` while
    incomplete); cohort.
    """
    period = ctx.period
    waits: list[Wait] = []
    for person in pop:
        start = _clock_start(person, period)
        if start is None or not period.contains(start):
            continue
        found = _first_named(person, start, period.end)
        cohort = {"cohort": person.cohort(period)}
        if found is None:
            waits.append(Wait(person, None, False, coordinator_keys(None) | cohort))
            continue
        interval, at_start = found
        end = start if at_start else interval.valid_from
        days = (period.day(end) - period.day(start)).days
        waits.append(Wait(person, days, at_start, coordinator_keys(interval) | cohort))

    def summarise(units: list[Wait]) -> dict[str, Any]:
        done = [w.days for w in units if w.days is not None]
        return {
            "people": len(units),
            "named": len(done),
            "incomplete": len(units) - len(done),
            "named_at_start": sum(1 for w in units if w.at_start),
            "median_days": median(done),
            "p90_days": p90(done),
            "distribution": [
                {
                    "label": label,
                    "people": sum(1 for d in done if low <= d and (high is None or d <= high)),
                }
                for label, low, high in WAIT_BINS
            ],
        }

    shape = Shape(
        counts=("people", "named", "incomplete", "named_at_start"),
        stats={"median_days": "named", "p90_days": "named"},
        series={"distribution": Shape(counts=("people",), labels=("label",))},
    )
    per_person = ctx.person_rows(
        waits,
        lambda w: w.person.patient_id,
        lambda w: {
            "cohort": w.keys["cohort"],
            "wait_days": w.days,
            "status": "named" if w.days is not None else "incomplete",
        },
    )
    return Figures(shape, grouped(ctx, waits, lambda w: w.keys, summarise), per_person)


@dataclass(frozen=True, slots=True)
class DayRun:
    """Consecutive person-days (in the period) held by one interval."""

    person: Person
    first: date
    last: date
    covered: bool
    keys: dict[str, str]
    days: int
    months: tuple[tuple[str, int], ...]  # the days by calendar month


def day_runs(pop: Population, period: Period) -> Iterator[DayRun]:
    """Every person-day of the period inside an open journey, as runs per interval: day
    D belongs to the interval holding at 23:59 local on D."""
    for person in pop:
        cohort = person.cohort(period)
        for interval in person.intervals:
            first = period.day(interval.valid_from)
            if interval.valid_from > period.at_2359(first):
                first += timedelta(days=1)
            if interval.valid_to is None:
                last = period.last
            else:
                last = period.day(interval.valid_to)
                if interval.valid_to <= period.at_2359(last):
                    last -= timedelta(days=1)
            first, last = max(first, period.first), min(last, period.last)
            if first <= last:
                yield DayRun(
                    person,
                    first,
                    last,
                    interval.named,
                    coordinator_keys(interval) | {"cohort": cohort},
                    (last - first).days + 1,
                    tuple(month_runs(first, last)),
                )


def _coverage_summary(runs: list[DayRun], months: list[str]) -> dict[str, Any]:
    person_days = sum(r.days for r in runs)
    covered = sum(r.days for r in runs if r.covered)
    by_month = {m: [0, 0] for m in months}
    for run in runs:
        for month, days in run.months:
            by_month[month][0] += days
            if run.covered:
                by_month[month][1] += days
    return {
        "people": len({r.person.patient_id for r in runs}),
        "people_with_uncovered_days": len({r.person.patient_id for r in runs if not r.covered}),
        "person_days": person_days,
        "covered_days": covered,
        "uncovered_days": person_days - covered,
        "covered_pct": ratio(covered, person_days, 100, 1),
        "by_month": [
            {
                "month": m,
                "person_days": d,
                "covered_days": c,
                "uncovered_days": d - c,
                "covered_pct": ratio(c, d, 100, 1),
            }
            for m, (d, c) in by_month.items()
        ],
    }


@measure("Uncovered days and person-days covered", "person-days")
def coverage(pop: Population, ctx: Context) -> Figures:
    """Uncovered days and % of person-days covered by a named coordinator.

    A person-day is a local calendar day D of the period on which the person has an open
    journey at 23:59 local time (an interval of ``coordinator_intervals`` holds then:
    from ``PatientRegistered`` to ``JourneyClosed``). The day is *covered* if a named
    coordinator holds at 23:59 local on D, and *uncovered* otherwise (nobody named: the
    registered practice's default answer does not count; after ``CoordinatorReleased``
    until the next assignment). So a coordinator assigned at 23:58 covers that day, one
    assigned at 23:59:30 covers from the next day, and a journey closed before 23:59
    does not count that day.

    ``person_days`` (denominator), ``covered_days`` (numerator), ``uncovered_days``,
    ``covered_pct`` = 100 * covered / person-days; ``people``: people with at least one
    person-day; ``people_with_uncovered_days``. ``by_month``: the same per calendar
    month (local).

    Split: each day goes to the interval holding at 23:59: the named coordinator's
    role, setting and organisation; uncovered days to role and setting ``none`` and to
    the registered practice's organisation; cohort.
    """
    runs: list[DayRun] = ctx.memo("day_runs", lambda: list(day_runs(pop, ctx.period)))
    months = ctx.period.months()
    month_shape = Shape(
        counts=("person_days", "covered_days", "uncovered_days"),
        rates={"covered_pct": ("covered_days", "person_days")},
        labels=("month",),
    )
    shape = Shape(
        counts=(
            "people",
            "people_with_uncovered_days",
            "person_days",
            "covered_days",
            "uncovered_days",
        ),
        rates={"covered_pct": ("covered_days", "person_days")},
        series={"by_month": month_shape},
    )
    per_person = None
    if ctx.per_person:
        mine: dict[Any, list[int]] = {}
        for run in runs:
            tally = mine.setdefault(run.person.patient_id, [0, 0])
            tally[0] += run.days
            tally[1] += run.days if run.covered else 0
        per_person = [
            {
                "pseudonym": ctx.pseudonym(p),
                "person_days": d,
                "covered_days": c,
                "uncovered_days": d - c,
            }
            for p, (d, c) in mine.items()
        ]
    return Figures(
        shape,
        grouped(ctx, runs, lambda r: r.keys, lambda units: _coverage_summary(units, months)),
        per_person,
    )


@dataclass(frozen=True, slots=True)
class Handoff:
    person: Person
    keys: dict[str, str]


@measure("Handoffs", "handoffs")
def handoffs(pop: Population, ctx: Context) -> Figures:
    """Handoffs per person and per 100 person-days under coordination.

    A handoff is a standing ``CoordinatorHandedOff`` applied inside an open journey
    (an interval of ``coordinator_intervals`` opened by it) that occurred in the period.

    Denominators from the coverage measure: ``covered_days`` (person-days on which a
    named coordinator held at 23:59 local) and ``people`` (people with at least one
    covered day in the period).

    ``per_person`` = handoffs / people; ``per_100_person_days`` = 100 * handoffs /
    covered days (both to two decimals).

    Split: a handoff goes to the coordinator handing off (the interval it closed: their
    role, setting and organisation; ``none`` and the practice when handed off from the
    practice default); the denominators to the coordinator holding each covered day;
    cohort.
    """
    period = ctx.period
    units: list[Handoff | DayRun] = []
    for person in pop:
        cohort = {"cohort": person.cohort(period)}
        previous: Interval | None = None
        for interval in person.intervals:
            if interval.opened_by_type == EventType.COORDINATOR_HANDED_OFF and period.contains(
                interval.valid_from
            ):
                handed = (
                    previous
                    if (previous is not None and previous.closed_by == interval.opened_by)
                    else None
                )
                units.append(Handoff(person, coordinator_keys(handed) | cohort))
            previous = interval
    runs: list[DayRun] = ctx.memo("day_runs", lambda: list(day_runs(pop, period)))
    units.extend(r for r in runs if r.covered)

    def summarise(group: list[Handoff | DayRun]) -> dict[str, Any]:
        count = sum(1 for u in group if isinstance(u, Handoff))
        runs = [u for u in group if isinstance(u, DayRun)]
        people = len({r.person.patient_id for r in runs})
        days = sum(r.days for r in runs)
        return {
            "handoffs": count,
            "people": people,
            "covered_days": days,
            "per_person": ratio(count, people),
            "per_100_person_days": ratio(count, days, 100),
        }

    shape = Shape(
        counts=("handoffs", "people", "covered_days"),
        rates={
            "per_person": ("handoffs", "people"),
            "per_100_person_days": ("handoffs", "covered_days"),
        },
    )
    per_person = None
    if ctx.per_person:
        tally: dict[Any, list[int]] = {}
        for u in units:
            row = tally.setdefault(u.person.patient_id, [0, 0])
            if isinstance(u, Handoff):
                row[0] += 1
            else:
                row[1] += u.days
        per_person = [
            {"pseudonym": ctx.pseudonym(p), "handoffs": h, "covered_days": d}
            for p, (h, d) in tally.items()
        ]
    return Figures(shape, grouped(ctx, units, lambda u: u.keys, summarise), per_person)
