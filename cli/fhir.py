"""FHIR commands: ``carejourney fhir bundle NHS_NUMBER`` and ``carejourney fhir export``.

``bundle`` prints the person's Bundle (type ``collection``) as JSON on stdout, computed
from the recorded events like ``GET /v1/patients/{nhs}/fhir``. ``export`` writes the
pseudonymised Bulk Data NDJSON files of everyone (opted-out people excluded) into a
folder with a progress bar, as ``GET /v1/fhir/$export`` does, and writes the access-log
rows of every exported person under the data-sharing agreement it names.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from api import access_log
from cli.console import (
    aware_option,
    cli_principal,
    err,
    fail,
    ledger_session,
    nhs_argument,
    out,
    progress,
    registered,
)
from cli.options import NhsNumber, as_of_option, group
from projections.fhir.bundle import person_bundle
from projections.fhir.export import check_types, export
from projections.fhir.resources import Subject
from projections.fold import FoldConfig
from projections.log import state_loader

fhir_app = group("FHIR R4 out: a person's Bundle, and the bulk export.")

ENDPOINT = "carejourney fhir export"


def register(app: typer.Typer) -> None:
    app.add_typer(fhir_app, name="fhir")


@fhir_app.command()
def bundle(
    nhs_number: NhsNumber,
    as_of: Annotated[datetime | None, as_of_option("The journey as it was")] = None,
    known_at: Annotated[
        datetime | None,
        typer.Option(help="Only events the ledger had recorded by this time (ISO-8601)."),
    ] = None,
) -> None:
    """The person's journey as a FHIR R4 Bundle (JSON on stdout)."""
    nhs = nhs_argument(nhs_number)
    as_of, known_at = aware_option(as_of, "--as-of"), aware_option(known_at, "--known-at")
    with ledger_session() as ledger:
        patient = registered(ledger, nhs, "fhir bundle")
        events = ledger.history(patient, known_at=known_at)
        result = person_bundle(
            events,
            as_of=as_of,
            known_at=known_at,
            patient_id=patient,
            config=FoldConfig.from_settings(ledger.settings),
            subject=Subject(nhs_number=nhs),
        )
    sys.stdout.write(result.model_dump_json(indent=2) + "\n")


@fhir_app.command("export")
def export_command(
    out_dir: Annotated[
        Path, typer.Option("--out", file_okay=False, help="Folder for the NDJSON files.")
    ],
    agreement: Annotated[
        str,
        typer.Option(help="The data-sharing agreement the files are released under (logged)."),
    ],
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", help="Resource type to export (repeat; default: all)."),
    ] = None,
) -> None:
    """Bulk export: every person's resources as pseudonymised NDJSON, one file per type."""
    try:
        types = check_types([t for value in type_ or [] for t in value.split(",") if t])
    except ValueError as exc:
        fail(str(exc))
    principal = cli_principal(export_agreement=agreement)
    with ledger_session() as ledger:
        started = time.perf_counter()
        with progress() as bar:
            task = bar.add_task("exporting FHIR resources", total=None)

            def report(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = export(
                ledger.database_url,
                out_dir,
                pseudonym_key=ledger.settings.pseudonym_key,
                types=types,
                config=FoldConfig.from_settings(ledger.settings),
                progress=report,
                loads=state_loader(ledger.mapper),
            )
        with ledger.connection() as conn:
            access_log.migrate(conn)
            access_log.record(
                conn, principal, ENDPOINT, result.people, via="cli", agreement=agreement
            )
        seconds = time.perf_counter() - started
    for kind, n in result.counts.items():
        out.print(f"{kind}: {n} resources -> {out_dir / (kind + '.ndjson')}", highlight=False)
    total = sum(result.counts.values())
    err.print(
        f"{len(result.people)} people exported ({result.excluded} opted out, left out), "
        f"{total} resources in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f}/s) "
        f"at ledger position {result.position}, transaction time "
        f"{result.transaction_time.isoformat()}",
        highlight=False,
    )
