"""``carejourney optout add|remove|import|list``: the National Data Opt-out register.

People in the register are left out of every evaluator-facing output (measures, the
dashboard, CSV, bulk exports for secondary use); direct care and auditors are not
affected (``domain/optout.py``, ``docs/governance.md``). Numbers are checked like any
NHS number; a bad one is refused with its line number, never echoed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.console import err, fail, ledger_session, nhs_argument, out
from cli.options import group
from domain import optout
from domain.nhs_number import check_nhs_number

optout_app = group("The National Data Opt-out register (excluded from evaluator outputs).")


def register(app: typer.Typer) -> None:
    app.add_typer(optout_app, name="optout")


Numbers = Annotated[list[str], typer.Argument(help="NHS numbers.")]


@optout_app.command()
def add(nhs_numbers: Numbers) -> None:
    """Register people's opt-out (they are excluded from the next report on)."""
    numbers = [nhs_argument(n) for n in nhs_numbers]
    with ledger_session() as ledger, ledger.connection() as conn:
        added = optout.add(conn, numbers, source="cli")
    out.print(f"opted out: {added} new, {len(set(numbers)) - added} already registered")


@optout_app.command()
def remove(nhs_numbers: Numbers) -> None:
    """Withdraw opt-outs (the person changed their choice)."""
    numbers = [nhs_argument(n) for n in nhs_numbers]
    with ledger_session() as ledger, ledger.connection() as conn:
        removed = optout.remove(conn, numbers)
    out.print(f"removed: {removed} of {len(set(numbers))}")


@optout_app.command("import")
def import_file(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="A file of NHS numbers, one per line (a first column of a CSV is fine; "
            "blank lines and lines starting with # are skipped).",
        ),
    ],
) -> None:
    """Register every NHS number in a file; refuse the whole file if any line is bad."""
    numbers: list[str] = []
    bad = 0
    for number, line in enumerate(file.read_text().splitlines(), start=1):
        text = line.split(",", 1)[0].strip().strip('"')
        if not text or text.startswith("#") or text.lower() == "nhs_number":
            continue
        try:
            numbers.append(check_nhs_number(text))
        except ValueError as exc:
            bad += 1
            err.print(f"line {number}: {exc}", markup=False, highlight=False)
    if bad:
        fail(f"{bad} line(s) are not NHS numbers; nothing was imported")
    with ledger_session() as ledger, ledger.connection() as conn:
        added = optout.add(conn, numbers, source=f"import:{file.name}")
    out.print(f"imported {len(numbers)} number(s): {added} new")


@optout_app.command("list")
def list_entries(
    numbers: Annotated[
        bool, typer.Option("--numbers", help="Show the NHS numbers (default: only counts).")
    ] = False,
) -> None:
    """The register: how many, and (with --numbers) who and when."""
    with ledger_session() as ledger, ledger.connection() as conn:
        rows = optout.entries(conn, limit=1_000_000)
    out.print(f"{len(rows)} opt-out(s) registered")
    if not numbers:
        return
    table = Table()
    for column in ("nhs_number", "patient_id", "added_at", "source"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["nhs_number"] or "(erased)",
            str(r["patient_id"] or "-"),
            r["added_at"].isoformat(timespec="seconds"),
            r["source"],
        )
    out.print(table)
