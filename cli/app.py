"""The ``carejourney`` command line: one root, one sub-module of commands per concern.

Commands are interfaces to the same services the HTTP API uses; none holds domain logic.
"""

from __future__ import annotations

import logging
import sys

import typer

from cli import adt as adt_commands
from cli import alerts as alerts_commands
from cli import consume as consume_commands
from cli import database as database_commands
from cli import fhir as fhir_commands
from cli import keys as keys_commands
from cli import ledger as ledger_commands
from cli import measures as measures_commands
from cli import mllp as mllp_commands
from cli import optout as optout_commands
from cli import projections as projections_commands
from cli import retention as retention_commands
from cli import serve as serve_commands
from cli import transparency as transparency_commands

app = typer.Typer(
    name="carejourney",
    help="Event-sourced care-journey ledger: record, replay, verify and measure care journeys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ledger_commands.register(app)
projections_commands.register(app)
adt_commands.register(app)
serve_commands.register(app)
keys_commands.register(app)
consume_commands.register(app)
measures_commands.register(app)
transparency_commands.register(app)
fhir_commands.register(app)
mllp_commands.register(app)
alerts_commands.register(app)
optout_commands.register(app)
retention_commands.register(app)
database_commands.register(app)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    app()


if __name__ == "__main__":
    main()
