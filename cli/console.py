"""What every command shares: the consoles, clear failures, progress bars, the ledger."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, NoReturn
from uuid import UUID

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

if TYPE_CHECKING:
    from api.security import Principal

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


def cli_principal(export_agreement: str | None = None) -> Principal:
    """Who the command line acts as in the access log: ``cli:<os user>``, admin (whoever
    runs it holds the database). API modules imported here, as in ``log_cli_access``."""
    from api.security import Principal, Role

    return Principal(f"cli:{getpass.getuser()}", Role.ADMIN, export_agreement=export_agreement)


def log_cli_access(
    ledger: Ledger, command: str, patient_id: UUID | None, *, outcome: str = "read"
) -> None:
    """The command line's person-level reads go to the same access log as the API's,
    as principal ``cli:<os user>`` (whoever runs the CLI holds the database, so admin).
    The API's modules are imported here, not at the top: they bring FastAPI, most of a
    second of start-up that ``ingest`` and the other writers do not need."""
    from api import access_log

    principal = cli_principal()
    with ledger.connection() as conn:
        access_log.migrate(conn)
        access_log.record_event(
            conn, principal, f"cli {command}", patient_id=patient_id, outcome=outcome, via="cli"
        )


PLACEHOLDER_OPTION = "--allow-placeholder-key"
# The option of every command that writes pseudonyms (check_pseudonym_key).
AllowPlaceholderKey = Annotated[
    bool,
    typer.Option(
        PLACEHOLDER_OPTION,
        help="Development only: run with the placeholder CAREJOURNEY_PSEUDONYM_KEY.",
    ),
]


def check_pseudonym_key(allowed_by_flag: bool) -> None:
    """Refuse to run with the published placeholder pseudonym key (anyone could then
    recompute every pseudonym from a patient id) unless this is declared development:
    ``--allow-placeholder-key`` or ``CAREJOURNEY_ALLOW_PLACEHOLDER_PSEUDONYM_KEY=1``."""
    settings = get_settings()
    if not settings.placeholder_pseudonym_key:
        return
    if allowed_by_flag or settings.allow_placeholder_pseudonym_key:
        err.print(
            "[yellow]development only:[/] CAREJOURNEY_PSEUDONYM_KEY is the placeholder, so "
            "pseudonyms can be recomputed by anyone; never publish this output"
        )
        return
    fail(
        "CAREJOURNEY_PSEUDONYM_KEY is the published placeholder: set a long random secret "
        f"(e.g. `openssl rand -hex 32`), or pass {PLACEHOLDER_OPTION} (development only)"
    )


def nhs_argument(value: str) -> str:
    try:
        return check_nhs_number(value)
    except ValueError as exc:
        fail(f"not a valid NHS number: {exc}")


def registered(ledger: Ledger, nhs: str, command: str) -> UUID:
    """The patient id of a checked NHS number, the read written to the access log
    (refused when nobody is registered under it); exits 1 for an unknown number."""
    patient = ledger.patient_id(nhs)
    log_cli_access(ledger, command, patient, outcome="read" if patient else "refused")
    if patient is None:
        fail("no journey is registered for this NHS number", code=1)
    return patient


__all__ = [
    "PLACEHOLDER_OPTION",
    "AllowPlaceholderKey",
    "aware_option",
    "check_pseudonym_key",
    "err",
    "fail",
    "ledger_session",
    "log_cli_access",
    "nhs_argument",
    "out",
    "progress",
    "registered",
]
