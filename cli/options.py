"""The command line's shared declarations: the groups' one convention, and the arguments
and options several commands take, declared once so that they read the same everywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from domain.settings import Settings


def group(help: str) -> typer.Typer:
    """A group of sub-commands (``carejourney keys ...``): without one it prints its help."""
    return typer.Typer(help=help, no_args_is_help=True)


def input_file(help: str) -> Any:
    """An argument naming a file the command reads: it must exist and be readable."""
    return typer.Argument(exists=True, dir_okay=False, readable=True, help=help)


def as_of_option(subject: str) -> Any:
    """``--as-of``: the occurred time a person-level read shows ``subject`` at (the
    journey, its coordinator), by default now."""
    return typer.Option(help=f"{subject} at this occurred time (ISO-8601; default: now).")


def _fallback(setting: str) -> str:
    """The setting an option left out falls back to, and its default, read from
    ``Settings`` so that the help cannot drift from them."""
    return f"CAREJOURNEY_{setting.upper()}, {Settings.model_fields[setting].default}"


def host_option(setting: str) -> Any:
    """``--host`` of a command that listens (``serve``, ``mllp``), by default ``setting``."""
    return typer.Option(help=f"Address to bind (default {_fallback(setting)}).")


def port_option(setting: str) -> Any:
    """``--port`` of a command that listens, by default ``setting``."""
    return typer.Option(help=f"Port (default {_fallback(setting)}).")


NhsNumber = Annotated[str, typer.Argument(help="The person's NHS number.")]
KnownAt = Annotated[
    datetime | None,
    typer.Option(help="Only what the ledger had recorded by this time (ISO-8601)."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
