"""The population a report is computed over: each person's read-model rows, in memory.

The measures never read events or identifiers: they read the rows the projections keep
(``coordinator_intervals``, ``admission_spells``, ``referral_status``,
``care_plan_status`` and the ``evaluation_*`` tables), as the fold row types
(``Interval``, ``Spell``, ``Referral``, ``CarePlan``, ``Contact``, ``Outcome``,
``ReviewEpisode``). ``load`` reads them from PostgreSQL in ONE read-only REPEATABLE READ
snapshot, so every table is read at the same ledger position (the runner moves all
projections in one transaction), and names that position. ``from_folds`` builds the same
population straight from the folds (tests, and a check that both paths agree).

**Attribution** (how a unit gets a coordinator role, setting and organisation when a
report is split ``--by role|setting|organisation``): the coordinator interval holding at
the instant that matters to the measure (a discharge, a referral, a day's 23:59, the end
of the period), or, for a journey already closed then, the last interval before it. Role
and setting are the named coordinator's, or ``none`` when nobody was named (the practice
default answered); the organisation is the interval's: the named coordinator's, or the
registered practice's when nobody was named (the practice is accountable by default,
docs/projections.md). Measures with an organisation of their own (the discharging hospital,
the receiving organisation of a referral) say so. ``cohort`` is ``identified`` when the
person had a standing ``CaseIdentified`` before the end of the period, else
``not_identified``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from domain.database import head_position
from projections import care_plans, coordinators, evaluation, referrals, timeline
from projections.fold import PersonEvents
from projections.measures.period import IDENTIFIED, NONE, NOT_IDENTIFIED, Period
from projections.readmodel import Folds

PROJECTIONS = ("coordinators", "timeline", "care_plans", "referrals", "evaluation")


class NotProjected(RuntimeError):
    """The read models the measures need have not been built."""


@dataclass(slots=True)
class Person:
    """One person's rows (the survivor of any merges: rows hold every merged stream)."""

    patient_id: UUID
    identified_at: datetime | None = None
    intervals: list[coordinators.Interval] = field(default_factory=list)
    spells: list[timeline.Spell] = field(default_factory=list)
    referrals: list[referrals.Referral] = field(default_factory=list)
    plans: list[care_plans.CarePlan] = field(default_factory=list)
    reviews: list[care_plans.ReviewEpisode] = field(default_factory=list)
    contacts: list[evaluation.Contact] = field(default_factory=list)
    outcomes: list[evaluation.Outcome] = field(default_factory=list)
    ready: list[evaluation.Ready] = field(default_factory=list)
    _starts: list[datetime] = field(default_factory=list)

    def settle(self) -> Person:
        """Sort every list into the order the measures rely on."""
        self.intervals.sort(key=lambda i: i.seq)
        self.spells.sort(key=lambda s: (s.admitted_at, s.seq))
        self.referrals.sort(key=lambda r: (r.made_at, r.referral_id))
        self.plans.sort(key=lambda p: (p.agreed_at, p.plan_id))
        self.reviews.sort(key=lambda r: r.seq)
        self.contacts.sort(key=lambda c: c.seq)
        self.outcomes.sort(key=lambda o: o.seq)
        self.ready.sort(key=lambda r: (r.occurred_at, r.seq))
        self._starts = [i.valid_from for i in self.intervals]
        return self

    def holder(self, moment: datetime) -> coordinators.Interval | None:
        """The interval holding at ``moment`` (``valid_from <= moment < valid_to``)."""
        i = bisect.bisect_right(self._starts, moment) - 1  # intervals follow each other
        if i < 0:
            return None
        interval = self.intervals[i]
        return interval if interval.valid_to is None or interval.valid_to > moment else None

    def attributed(self, moment: datetime) -> coordinators.Interval | None:
        """The interval holding at ``moment``, or the last one before it (module doc)."""
        held = self.holder(moment)
        if held is not None:
            return held
        i = bisect.bisect_right(self._starts, moment) - 1
        return self.intervals[i] if i >= 0 else None

    def cohort(self, period: Period) -> str:
        identified = self.identified_at is not None and self.identified_at < period.end
        return IDENTIFIED if identified else NOT_IDENTIFIED

    def keys(self, period: Period, moment: datetime, *, attribute: bool = False) -> dict[str, str]:
        """The unit's group in each dimension (module docstring)."""
        interval = self.attributed(moment) if attribute else self.holder(moment)
        return coordinator_keys(interval) | {"cohort": self.cohort(period)}


def coordinator_keys(interval: coordinators.Interval | None) -> dict[str, str]:
    """Role, setting and organisation of an interval (``none`` for the unnamed)."""
    if interval is None:
        return {"role": NONE, "setting": NONE, "organisation": NONE}
    if not interval.named:
        return {"role": NONE, "setting": NONE, "organisation": interval.organisation}
    return {
        "role": interval.role,
        "setting": interval.setting,
        "organisation": interval.organisation,
    }


@dataclass(slots=True)
class Population:
    """Everyone's rows, and where in the ledger they were read."""

    people: dict[UUID, Person]
    position: int
    head: int
    positions: dict[str, int]

    def __iter__(self) -> Iterator[Person]:
        return iter(self.people.values())

    def computed_at(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "ledger_head": self.head,
            "lag": max(0, self.head - self.position),
            "projections": dict(self.positions),
        }


def from_folds(people: Iterable[PersonEvents], position: int | None = None) -> Population:
    """The population straight from the folds (no database)."""
    found: dict[UUID, Person] = {}
    top = 0
    for person in people:
        folds = Folds(person)  # each model folded once (the evaluation reuses the plans)
        coord = folds.of(coordinators.MODEL)
        line = folds.of(timeline.MODEL)
        facts = folds.of(evaluation.MODEL)
        [identified] = facts[evaluation.PEOPLE.name]
        found[person.patient_id] = Person(
            person.patient_id,
            identified.identified_at,
            list(coord.intervals),
            list(line.spells),
            list(folds.of(referrals.MODEL).referrals),
            list(folds.of(care_plans.MODEL).plans),
            list(facts[evaluation.REVIEWS.name]),
            list(facts[evaluation.CONTACTS.name]),
            list(facts[evaluation.OUTCOMES.name]),
            list(facts[evaluation.READY.name]),
        ).settle()
        top = max(top, person.position)
    at = top if position is None else position
    ordered = {pid: found[pid] for pid in sorted(found)}
    return Population(ordered, at, at, dict.fromkeys(PROJECTIONS, at))


# Each read: the Person list it fills, the table, the time column, the row type. Rows
# after the period's end cannot matter to it (projections/measures/period.py), so they
# are not read. Columns are named in the row type's field order, patient_id first.
READS: tuple[tuple[str, str, str, Any], ...] = (
    ("intervals", "coordinator_intervals", "valid_from", coordinators.Interval),
    ("spells", "admission_spells", "admitted_at", timeline.Spell),
    ("referrals", "referral_status", "made_at", referrals.Referral),
    ("plans", "care_plan_status", "agreed_at", care_plans.CarePlan),
    ("reviews", evaluation.REVIEWS.name, "opened_at", care_plans.ReviewEpisode),
    ("contacts", evaluation.CONTACTS.name, "occurred_at", evaluation.Contact),
    ("outcomes", evaluation.OUTCOMES.name, "occurred_at", evaluation.Outcome),
    ("ready", evaluation.READY.name, "occurred_at", evaluation.Ready),
)


def read_query(table: str, time_column: str, kind: Any) -> sql.Composed:
    """``SELECT <the row type's fields> FROM table WHERE time_column < %(end)s``."""
    return sql.SQL("SELECT {} FROM {} WHERE {} < %(end)s").format(
        sql.SQL(", ").join(map(sql.Identifier, kind._fields)),
        sql.Identifier(table),
        sql.Identifier(time_column),
    )


def load(conn: psycopg.Connection[Any], period: Period) -> Population:
    """Read the population for ``period`` in one snapshot (module docstring).

    ``conn`` is an autocommit connection (the ledger's pool gives those); the reads run
    in their own read-only transaction. Raises ``NotProjected`` when the read models are
    missing."""
    params = {"end": period.end}
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        exists = cur.execute(
            "SELECT to_regclass('projection_positions') IS NOT NULL AS ok,"
            " to_regclass('evaluation_people') IS NOT NULL AS facts"
        ).fetchone()
        if not exists or not (exists["ok"] and exists["facts"]):
            raise NotProjected(
                "the read models are not built: run `carejourney projections run --once`"
            )
        positions = {
            r["name"]: int(r["position"])
            for r in cur.execute(
                "SELECT name, position FROM projection_positions WHERE name = ANY(%s)",
                (list(PROJECTIONS),),
            ).fetchall()
        }
        positions = {name: positions.get(name, 0) for name in PROJECTIONS}
        head = head_position(conn)
        people: dict[UUID, Person] = {}
        for row in cur.execute("SELECT patient_id, identified_at FROM evaluation_people"):
            people[row["patient_id"]] = Person(row["patient_id"], row["identified_at"])
        with conn.cursor(row_factory=tuple_row) as rows:  # tuples map onto the row types
            for attr, table, column, kind in READS:
                make = kind._make
                for values in rows.execute(read_query(table, column, kind), params):
                    person = people.get(values[0])
                    if person is None:
                        person = people[values[0]] = Person(values[0])
                    getattr(person, attr).append(make(values))
    ordered = {pid: people[pid].settle() for pid in sorted(people)}  # stable row order
    return Population(ordered, min(positions.values()), head, positions)
