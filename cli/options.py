"""The command line's shared declarations: the groups' one convention, and the arguments
and options several commands take, declared once so that they read the same everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer


def group(help: str) -> typer.Typer:
    """A group of sub-commands (``carejourney keys ...``): without one it prints its help."""
    return typer.Typer(help=help, no_args_is_help=True)


def input_file(help: str) -> Any:
    """An argument naming a file the command reads: it must exist and be readable."""
    return typer.Argument(exists=True, dir_okay=False, readable=True, help=help)


NhsNumber = Annotated[str, typer.Argument(help="The person's NHS number.")]
KnownAt = Annotated[
    datetime | None,
    typer.Option(help="Only what the ledger had recorded by this time (ISO-8601)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
