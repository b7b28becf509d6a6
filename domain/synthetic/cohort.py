"""A cohort: one world, then each person's life built theme by theme.

Determinism: everything comes from ``random.Random(seed)``. The cohort's generator
draws the world first, then one 64-bit seed per person, so person *i* is the same in a
cohort of 500 and in one of 100,000 (a small demo is a prefix of a large one), and no
person's randomness depends on how much another consumed. No global random state and
no clock reads are involved. NHS numbers are the valid modulus-11 numbers counted
upwards from 900 000 000x, one per person in order, so they are unique and obviously
test numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from random import Random
from typing import Any

from domain.nhs_number import make_nhs_number
from domain.synthetic.clock import DAY, Clock
from domain.synthetic.contacts import contacts
from domain.synthetic.coordination import coordination
from domain.synthetic.hospital import admissions
from domain.synthetic.life import Life
from domain.synthetic.mistakes import mistakes
from domain.synthetic.people import (
    carers,
    close_journey,
    identify,
    outcomes,
    plan_closure,
    register,
)
from domain.synthetic.plans import care_plans
from domain.synthetic.referrals import referrals
from domain.synthetic.world import build_world

FIRST_NHS_PREFIX = 900_000_000
DAYS_PER_YEAR = 365.25


def nhs_numbers(first_prefix: int = FIRST_NHS_PREFIX) -> Iterator[str]:
    """Valid NHS numbers in increasing order (prefixes without a check digit skipped)."""
    prefix = first_prefix
    while prefix < 10**9:
        number = make_nhs_number(prefix)
        if number is not None:
            yield number
        prefix += 1


def generate_people(
    people: int = 500, seed: int = 7, start: date = date(2024, 1, 1), years: float = 2.0
) -> Iterator[list[dict[str, Any]]]:
    """Each person's envelopes (a list, in occurrence order), person by person.

    Occurrence times fall within ``[start, start + years)`` (London dates); only one
    person's events are held at a time, so any cohort size streams in constant memory.
    """
    if people < 0 or years <= 0:
        raise ValueError("people must be >= 0 and years > 0")
    master = Random(seed)
    world = build_world(Random(master.getrandbits(64)))
    clock = Clock(start)
    window_end = round(years * DAYS_PER_YEAR) * DAY
    numbers = nhs_numbers()
    for _ in range(people):
        rng = Random(master.getrandbits(64))
        life = Life(world, clock, rng, next(numbers), window_end)
        yield _live(life)


def _live(life: Life) -> list[dict[str, Any]]:
    """One person's journey: the order of the themes is the order of their dependencies
    (who is identified decides rates; deaths and moves set the horizon; referrals and
    coordination decide who is known and who coordinates when)."""
    register(life)
    identify(life)
    plan_closure(life)
    admissions(life)
    referrals(life)
    coordination(life)
    care_plans(life)
    contacts(life)
    carers(life)
    outcomes(life)
    life.truncate()
    mistakes(life)
    close_journey(life)
    return life.envelopes()


def generate_cohort(
    people: int = 500, seed: int = 7, start: date = date(2024, 1, 1), years: float = 2.0
) -> Iterator[dict[str, Any]]:
    """Every envelope of the cohort, person after person (see ``generate_people``)."""
    for person in generate_people(people, seed, start, years):
        yield from person
