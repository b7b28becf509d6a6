"""A realistic synthetic cohort of care journeys, as contract-valid JSON envelopes.

Why: the demo, the dashboards, the benchmarks and the measure tests all need journeys
that look like the real thing — identified and comparator cohorts, waits with long
tails, handoffs and uncovered gaps, readmissions on the day-0/29/30 edges, follow-ups on
the discharge day, late and out-of-order arrivals, cancels and retractions — without a
single real identifier, and identical for the same seed on every machine.

Public API:

* ``generate_people(people, seed, start, years)`` -> iterator of each person's envelopes
  (a list per person, in occurrence order);
* ``generate_cohort(...)`` -> iterator of all envelopes, person after person;
* ``delivery_order(people_events, seed)`` -> the envelopes interleaved as services would
  deliver them (about 2% late; retractions always after their targets).

Envelopes are plain dicts shaped exactly as the contract (domain/contract.py). The package is
split by theme: ``people`` (registration, identification, carers, outcomes, closing), ``hospital``,
``referrals``, ``coordination``, ``plans``, ``contacts``, ``mistakes`` (retractions),
``delivery``; ``world`` holds the organisations and staff, ``clock`` the time rules.
"""

from domain.synthetic.cohort import generate_cohort, generate_people
from domain.synthetic.delivery import delivery_order

__all__ = ["delivery_order", "generate_cohort", "generate_people"]
