"""``carejourney measures``: the evaluation measures for a period (docs/measures.md).

The same report as ``GET /v1/measures`` and the dashboard (``projections.measures``):
one computation, rendered as a table, CSV or JSON. By default the projections are first
caught up with the ledger (quietly, progress on stderr), so the report is as of the
ledger head; ``--no-catch-up`` reads them as they are. Evaluator output is suppressed;
``--unsuppressed`` is for auditors and administrators (whoever can run this command can
read the database anyway; the flag exists so that suppressed output is the default that
gets pasted into papers).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.console import (
    AllowPlaceholderKey,
    aware_option,
    check_pseudonym_key,
    err,
    fail,
    ledger_session,
    log_cli_access,
    out,
    progress,
)
from domain.ledger import Ledger
from domain.settings import get_settings
from projections import measures as measure_lib
from projections.runner import Runner


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def register(app: typer.Typer) -> None:
    app.command()(measures)


DATE = ["%Y-%m-%d"]


def measures(
    from_: Annotated[
        datetime,
        typer.Option("--from", formats=DATE, help="First day of the period (YYYY-MM-DD, local)."),
    ],
    to: Annotated[
        datetime,
        typer.Option("--to", formats=DATE, help="Last day of the period, included (YYYY-MM-DD)."),
    ],
    by: Annotated[
        measure_lib.By | None,
        typer.Option(
            help="Split every measure by the coordinator's setting or role, the organisation "
            "(per measure: docs/measures.md), or the cohort (case-identified or not)."
        ),
    ] = None,
    output_format: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table (for people), csv (measure,group,metric,value) or json "
            "(the API's document).",
        ),
    ] = Format.table,
    per_person: Annotated[
        bool,
        typer.Option(
            "--per-person",
            help="Add one pseudonymised row per person (or discharge, referral) to each "
            "measure: for auditors and administrators, never for evaluators (logged).",
        ),
    ] = False,
    unsuppressed: Annotated[
        bool,
        typer.Option(
            "--unsuppressed",
            help="Exact counts, no small-number suppression or rounding "
            "(auditors and administrators only; never publish).",
        ),
    ] = False,
    wait_threshold: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=3650,
            help="Referral waits: days for '% within threshold' "
            "(default CAREJOURNEY_REFERRAL_WAIT_THRESHOLD_DAYS).",
        ),
    ] = None,
    catch_up: Annotated[
        bool,
        typer.Option(
            "--catch-up/--no-catch-up", help="Bring the projections up to the ledger head first."
        ),
    ] = True,
    known_at: Annotated[
        datetime | None,
        typer.Option(
            help="Compute from the ledger as it was known at this time (ISO-8601; without "
            "an offset read as local time): reproduces a published report exactly."
        ),
    ] = None,
    salt: Annotated[
        str | None,
        typer.Option(
            help="A per-report salt (8+ characters): pseudonyms that link to no other report."
        ),
    ] = None,
    allow_placeholder_key: AllowPlaceholderKey = False,
) -> None:
    """Evaluation measures for a period: every definition in docs/measures.md.

    Every output names the ledger position it was computed at and the definitions'
    version. Calendar days are counted in CAREJOURNEY_TIMEZONE.
    """
    check_pseudonym_key(allow_placeholder_key)
    settings = get_settings()
    if salt is not None and len(salt) < 8:
        fail("--salt needs at least 8 characters")
    try:
        period = measure_lib.Period.checked(from_.date(), to.date(), settings.zone)
    except measure_lib.PeriodError as exc:
        fail(str(exc))
    known_at = aware_option(known_at, "--known-at")
    with ledger_session() as ledger:
        if catch_up and known_at is None:
            _catch_up(ledger)
        try:
            asked = measure_lib.Asked(
                by=by,
                per_person=per_person,
                unsuppressed=unsuppressed,
                wait_threshold_days=wait_threshold,
                salt=salt,
            )
            found = measure_lib.report_for(ledger, period, settings, asked, known_at=known_at)
        except measure_lib.NotProjected as exc:
            fail(str(exc), code=1)
        if per_person:
            log_cli_access(ledger, "measures --per-person", None)
    if output_format is Format.json:
        print(json.dumps(found, indent=2))
    elif output_format is Format.csv:
        print(measure_lib.to_csv(found), end="")
    else:
        render(found)


def _catch_up(ledger: Ledger) -> None:
    runner = Runner.for_ledger(ledger)
    runner.migrate()
    with progress() as bar:
        task = bar.add_task("catching up projections", total=None)

        def on_build(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def on_step(step: Any, head: int) -> None:
            bar.update(task, completed=step.upto, total=head)

        runner.run_once(on_step=on_step, on_build=on_build)


def render(found: dict[str, Any]) -> None:
    """The report as tables: a header, then one table per measure (series below)."""
    at = found["computed_at"]
    period = found["period"]
    shield = found["suppression"]
    note = (
        f"counts {shield['suppressed_counts']} suppressed (*), others rounded to "
        f"{shield['rounded_to']}"
        if shield["applied"]
        else "UNSUPPRESSED: do not publish"
    )
    out.print(
        f"[bold]Measures {period['from']} to {period['to']}[/] ({period['timezone']}), "
        f"by {found['by'] or '-'}; definitions v{found['definitions_version']}; "
        f"ledger position {at['position']} (head {at['ledger_head']}, lag {at['lag']}); "
        f"{note}"
    )
    if found.get("known_at"):
        known = found["known_at"]
        out.print(f"as known at {known['at']} (ledger position {known['position']})")
    excluded = (found.get("opt_out") or {}).get("excluded_people")
    shown = "*" if excluded is None else str(excluded)
    out.print(f"people left out under the National Data Opt-out: {shown}")
    if shield["applied"]:
        err.print("* = suppressed count; - = suppressed or not computable (rates, statistics)")
    for name, measure in found["measures"].items():
        groups = measure["groups"]
        scalars = [k for k in groups[0] if not isinstance(groups[0][k], list)] if groups else []
        table = Table(title=f"{measure['title']} [{name}]", title_justify="left")
        for column in scalars:
            table.add_column(column, justify="left" if column == "group" else "right")
        for group in groups:
            table.add_row(*(_cell(group[c], c, measure) for c in scalars))
        out.print(table)
        for group in groups[:1] if found["by"] else groups:
            for series, items in group.items():
                if isinstance(items, list) and items:
                    _series(f"{name} {series} ({group['group']})", items, measure)
        if measure.get("per_person"):
            _series(f"{name} per person", measure["per_person"], measure)


def _series(title: str, items: list[dict[str, Any]], measure: dict[str, Any]) -> None:
    table = Table(title=title, title_justify="left")
    for column in items[0]:
        table.add_column(column, justify="right")
    for item in items:
        table.add_row(*(_cell(v, k, measure) for k, v in item.items()))
    out.print(table)


def _cell(value: Any, name: str, measure: dict[str, Any]) -> str:
    if value is None:
        return "*" if name in measure["count_fields"] else "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
