"""What every command shares: the consoles, clear failures, progress bars, the ledger."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from domain.ledger import Ledger, open_ledger
from domain.nhs_number import check_nhs_number
from domain.settings import get_settings

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def progress() -> Progress:
    """A progress bar on stderr, so stdout stays clean for data."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


@contextmanager
def ledger_session() -> Iterator[Ledger]:
    try:
        ledger = open_ledger()
    except Exception as exc:  # a database that cannot be reached is a user-facing error
        fail(f"cannot open the ledger database: {exc}")
    try:
        yield ledger
    finally:
        ledger.close()


def aware_option(value: datetime | None, option: str) -> datetime | None:
    """A time given on the command line, with an offset. One without is read as local
    time in ``CAREJOURNEY_TIMEZONE``, and the command says so on stderr (the API refuses
    such times; a person at a terminal means their wall clock)."""
    if value is None or value.tzinfo is not None:
        return value
    zone = get_settings().zone
    local = value.replace(tzinfo=zone)
    err.print(
        f"note: {option} {value.isoformat()} has no UTC offset; read as local time in "
        f"{zone.key} ({local.isoformat()})",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    return local


def nhs_argument(value: str) -> str:
    try:
        return check_nhs_number(value)
    except ValueError as exc:
        fail(f"not a valid NHS number: {exc}")


__all__ = ["aware_option", "err", "fail", "ledger_session", "nhs_argument", "out", "progress"]
