"""The ``carejourney`` command line: one root, one sub-module of commands per concern.

Commands are interfaces to the same services the HTTP API uses; none holds domain logic.
"""

from __future__ import annotations

import logging
import sys

import typer

from api.commands import ledger as ledger_commands

app = typer.Typer(
    name="carejourney",
    help="Event-sourced care-journey ledger: record, replay, verify and measure care journeys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ledger_commands.register(app)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
