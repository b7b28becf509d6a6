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
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from domain import optout
from domain.contract import utc_text
from domain.journey import RecordedEvent
from domain.ledger import Ledger
from domain.settings import Settings
from projections.fold import FoldConfig, people, prepare
from projections.measures import care_plans, continuity, coordination, hospital, outcomes
from projections.measures import referrals as referral_measures
from projections.measures.period import DIMENSIONS, By, Period
from projections.measures.population import Population, from_folds, load
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
    salt: str | None = None,
    opted_out: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """The report for ``period`` over an already loaded population (module docstring).

    People in ``opted_out`` (``domain.optout.opted_out_patient_ids``: the National Data
    Opt-out) are left out of every measure; how many were, rounded and suppressed like
    any count, is in the report's ``opt_out``."""
    population, excluded = _without(population, opted_out)
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(DIMENSIONS)}")
    threshold = (
        settings.referral_wait_threshold_days
        if wait_threshold_days is None
        else wait_threshold_days
    )
    ctx = Context(
        period,
        by,
        threshold,
        per_person,
        partial(pseudonym, key=settings.pseudonym_key, salt=salt),
    )
    measures = [f(population, ctx) for f in MEASURES]
    privacy = suppression(settings)
    if not unsuppressed:
        measures = [privacy.protect(m) for m in measures]
    shown_excluded = excluded if unsuppressed else privacy.count(excluded)
    return {
        "definitions_version": DEFINITIONS_VERSION,
        "period": period.as_dict(),
        "by": by,
        "computed_at": population.computed_at(),
        "suppression": UNSUPPRESSED if unsuppressed else privacy.describe(),
        "opt_out": {
            "excluded_people": shown_excluded,
            "register": "National Data Opt-out (docs/governance.md)",
        },
        "options": {
            "referral_wait_threshold_days": threshold,
            "per_person": per_person,
            "pseudonyms": "salted for this report" if salt else "stable per key",
        },
        "measures": {m.name: m.as_dict() for m in measures},
    }


def report(
    conn: psycopg.Connection[Any],
    period: Period,
    settings: Settings,
    **options: Any,
) -> dict[str, Any]:
    """Load the population in one snapshot and compute the report (``compute``), without
    the people in the opt-out register."""
    population = load(conn, period)
    return compute(
        population, period, settings, opted_out=optout.opted_out_patient_ids(conn), **options
    )


LOG_PAGE = 50_000


def report_known_at(
    ledger: Ledger,
    period: Period,
    settings: Settings,
    known_at: datetime,
    **options: Any,
) -> dict[str, Any]:
    """The report as the ledger knew it at ``known_at``: computed by the folds from only
    the events recorded by then (late-arriving facts recorded afterwards, corrections
    included, change nothing), never from the live read models. The document names
    ``known_at`` and the ledger position it amounts to; publish a report with them and
    anyone can compute it again, exactly. Costs a read of the log up to that position.
    """
    population = population_known_at(ledger, settings, known_at)
    with ledger.connection() as conn:
        opted_out = optout.opted_out_patient_ids(conn)
    found = compute(population, period, settings, opted_out=opted_out, **options)
    found["known_at"] = {"at": utc_text(known_at), "position": population.position}
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class Asked:
    """What a reader asked of a report beyond its period, as ``carejourney measures`` and
    ``GET /v1/measures`` both take it: one object, so the two cannot pass different
    options to ``report_for`` (who may ask for what is the caller's check). Keyword-only:
    ``per_person`` and ``unsuppressed`` are both bools, and swapped by position they would
    hand out exact counts where person rows were asked for."""

    by: By | None = None
    per_person: bool = False
    unsuppressed: bool = False
    wait_threshold_days: int | None = None
    salt: str | None = None

    def options(self) -> dict[str, Any]:
        """The keyword options of ``compute``."""
        return {
            "by": self.by.value if self.by else None,
            "per_person": self.per_person,
            "unsuppressed": self.unsuppressed,
            "wait_threshold_days": self.wait_threshold_days,
            "salt": self.salt,
        }


def report_for(
    ledger: Ledger,
    period: Period,
    settings: Settings,
    asked: Asked,
    *,
    known_at: datetime | None = None,
    conn: psycopg.Connection[Any] | None = None,
) -> dict[str, Any]:
    """The report as ``carejourney measures`` and ``GET /v1/measures`` are asked for it:
    as the ledger knew it at ``known_at`` when that is given (``report_known_at``), else
    from the live read models (``report``) over ``conn`` (the API's request connection;
    without one, a connection of the ledger's)."""
    options = asked.options()
    if known_at is not None:
        return report_known_at(ledger, period, settings, known_at, **options)
    if conn is not None:
        return report(conn, period, settings, **options)
    with ledger.connection() as own:
        return report(own, period, settings, **options)


def population_known_at(ledger: Ledger, settings: Settings, known_at: datetime) -> Population:
    """Everyone as the ledger knew them at ``known_at``, folded from the log."""
    events: list[RecordedEvent] = []
    after = 0
    while True:
        page = ledger.read_log(after, LOG_PAGE)
        if not page:
            break
        events.extend(e for e in page if e.recorded_at <= known_at)
        after = page[-1].position
        if page[-1].recorded_at > known_at:
            break  # recorded_at never decreases with the position
    position = events[-1].position if events else 0
    config = FoldConfig.from_settings(settings)
    population = from_folds(
        (prepare(stream, root, config) for root, stream in people(events).items()), position
    )
    population.head = ledger.head_position()
    return population


def _without(population: Population, opted_out: frozenset[str]) -> tuple[Population, int]:
    if not opted_out:
        return population, 0
    kept = {p: person for p, person in population.people.items() if str(p) not in opted_out}
    excluded = len(population.people) - len(kept)
    if not excluded:
        return population, 0
    return (
        Population(
            kept, population.position, population.head, population.positions, population.horizon
        ),
        excluded,
    )


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
    for key, value in (report.get("opt_out") or {}).items():
        yield meta, "", f"opt_out.{key}", value
    for key, value in (report.get("known_at") or {}).items():
        yield meta, "", f"known_at.{key}", value
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
