"""One report: every measure over one period, as the CLI, the API and the dashboard show it.

There is one computation (``compute`` over a ``Population``) and one privacy pass
(``privacy.Suppression.protect``); the CLI's table/CSV/JSON, ``GET /v1/measures`` and
the dashboard are renderings of the same ``report`` dict, so they cannot disagree.
The flat form (``rows``: measure, group, metric, value) is what CSV and the tables show;
series rows are flattened as ``series[label].field`` (e.g.
``by_month[2025-03].uncovered_days``); report metadata comes first as ``_report`` rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import date
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from domain.settings import Settings
from projections.measures import care_plans, continuity, coordination, hospital, outcomes
from projections.measures import referrals as referral_measures
from projections.measures.period import DIMENSIONS, Period
from projections.measures.population import Population, load
from projections.measures.privacy import UNSUPPRESSED, Suppression, pseudonym
from projections.measures.result import Context, Measure

DEFINITIONS_VERSION = "1.1.0"  # 1.1: delayed_discharge

MeasureFunction = Callable[[Population, Context], Measure]

MEASURES: tuple[MeasureFunction, ...] = (
    coordination.time_to_coordinator,
    coordination.handoffs,
    coordination.coverage,
    hospital.readmission_30d,
    hospital.follow_up_7d,
    hospital.follow_up_72h,
    hospital.delayed_discharge,
    referral_measures.referral_waits,
    care_plans.care_plan_in_place,
    care_plans.care_plan_reviews,
    continuity.continuity,
    outcomes.outcome_change,
)
NAMES: tuple[str, ...] = tuple(f.__name__ for f in MEASURES)
SERIES_LABELS = ("label", "month")


def suppression(settings: Settings) -> Suppression:
    return Suppression(settings.small_number_max, settings.rounding_base)


def compute(
    population: Population,
    period: Period,
    settings: Settings,
    *,
    by: str | None = None,
    per_person: bool = False,
    unsuppressed: bool = False,
    wait_threshold_days: int | None = None,
) -> dict[str, Any]:
    """The report for ``period`` over an already loaded population (module docstring)."""
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(DIMENSIONS)}")
    threshold = (
        settings.referral_wait_threshold_days
        if wait_threshold_days is None
        else wait_threshold_days
    )
    ctx = Context(period, by, threshold, per_person, partial(pseudonym, key=settings.pseudonym_key))
    measures = [f(population, ctx) for f in MEASURES]
    privacy = suppression(settings)
    if not unsuppressed:
        measures = [privacy.protect(m) for m in measures]
    return {
        "definitions_version": DEFINITIONS_VERSION,
        "period": period.as_dict(),
        "by": by,
        "computed_at": population.computed_at(),
        "suppression": UNSUPPRESSED if unsuppressed else privacy.describe(),
        "options": {"referral_wait_threshold_days": threshold, "per_person": per_person},
        "measures": {m.name: m.as_dict() for m in measures},
    }


def report(
    conn: psycopg.Connection[Any],
    period: Period,
    settings: Settings,
    **options: Any,
) -> dict[str, Any]:
    """Load the population in one snapshot and compute the report (``compute``)."""
    return compute(load(conn, period), period, settings, **options)


def rows(report: dict[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """The report flat: (measure, group, metric, value), metadata first."""
    meta = "_report"
    yield meta, "", "definitions_version", report["definitions_version"]
    for key, value in report["period"].items():
        yield meta, "", key, value
    yield meta, "", "by", report["by"] or ""
    for key, value in report["computed_at"].items():
        if key == "projections":
            for name, position in value.items():
                yield meta, "", f"projection[{name}]", position
        else:
            yield meta, "", key, value
    for key, value in report["suppression"].items():
        yield meta, "", f"suppression.{key}", value
    for name, measure in report["measures"].items():
        for group in measure["groups"]:
            label = group["group"]
            for metric, value in group.items():
                if metric == "group":
                    continue
                if isinstance(value, list):
                    for item in value:
                        tag = next(str(item[k]) for k in SERIES_LABELS if k in item)
                        for field, inner in item.items():
                            if field not in SERIES_LABELS:
                                yield name, label, f"{metric}[{tag}].{field}", inner
                else:
                    yield name, label, metric, value
        for row in measure.get("per_person") or ():
            who = row["pseudonym"]
            for field, value in row.items():
                if field != "pseudonym":
                    yield f"{name}.per_person", who, field, value


def to_csv(report: dict[str, Any]) -> str:
    """The flat rows as CSV (``measure,group,metric,value``; empty value = suppressed or
    not applicable)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("measure", "group", "metric", "value"))
    for measure, group, metric, value in rows(report):
        writer.writerow((measure, group, metric, _cell(value)))
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def definitions_markdown() -> str:
    """The published definitions, generated from the docstrings (docs/measures.md holds
    this text between its ``definitions`` markers; a test keeps the two equal)."""
    from projections.measures import period as period_rules
    from projections.measures import population, privacy

    empty = Population({}, 0, 0, {})
    sample = Period(date(2025, 1, 1), date(2025, 1, 1), ZoneInfo("Europe/London"))
    parts = [
        f"Definitions version **{DEFINITIONS_VERSION}**.",
        "## Shared rules",
        "### Calendar days, the period, statistics",
        _markdown(period_rules.__doc__),
        "### Groups: splitting by setting, role, organisation, cohort",
        _markdown(population.__doc__),
        "### Pseudonyms and small numbers",
        _markdown(privacy.__doc__),
        "### Index discharges and transfer chains",
        _markdown(hospital.__doc__),
        "## The measures",
    ]
    for function in MEASURES:
        measure = function(empty, Context(sample))
        parts.append(f"### `{measure.name}`: {measure.title}")
        parts.append(_markdown(measure.definition))
    return "\n\n".join(parts) + "\n"


def _markdown(text: str | None) -> str:
    import inspect

    return inspect.cleandoc(text or "").replace("``", "`")
