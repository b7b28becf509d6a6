"""Evaluation measures over the read models, with their published definitions.

Each measure is one function (``coordination``, ``hospital``, ``referrals``,
``care_plans``, ``continuity``, ``outcomes``) whose docstring *is* its definition:
numerator, denominator, exclusions, edge cases. The docstrings are what the dashboard
shows behind each chart and what ``docs/measures.md`` publishes; ``DEFINITIONS_VERSION``
changes whenever a definition does, and every report names it with the ledger position
it was computed at.

Shared rules: calendar days in the configured zone and the period (``period``), the
population and how units are attributed to groups (``population``), pseudonyms and
small-number suppression (``privacy``), one report for every interface (``report``).
"""

from projections.measures.period import DIMENSIONS, By, Period, PeriodError
from projections.measures.population import NotProjected, Population, from_folds, load
from projections.measures.privacy import Suppression, pseudonym
from projections.measures.report import (
    DEFINITIONS_VERSION,
    MEASURES,
    NAMES,
    Asked,
    compute,
    population_known_at,
    report,
    report_for,
    report_known_at,
    rows,
    suppression,
    to_csv,
)

__all__ = [
    "DEFINITIONS_VERSION",
    "DIMENSIONS",
    "MEASURES",
    "NAMES",
    "Asked",
    "By",
    "NotProjected",
    "Period",
    "PeriodError",
    "Population",
    "Suppression",
    "compute",
    "from_folds",
    "load",
    "population_known_at",
    "pseudonym",
    "report",
    "report_for",
    "report_known_at",
    "rows",
    "suppression",
    "to_csv",
]
