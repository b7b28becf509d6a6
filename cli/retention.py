"""``carejourney retention run``: purge refused messages past their retention.

The same step every running ``carejourney consume`` takes each hour
(``consumers/retention.py``): refused messages older than
``CAREJOURNEY_REJECTION_RETENTION_DAYS`` (default 30) are deleted once produced to the
dead-letter topic, or stripped of their content while still waiting to be.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.console import ledger_session, out
from cli.options import group
from consumers import retention
from domain.settings import get_settings

retention_app = group("Purge what is kept only for a while.")


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")


@retention_app.command()
def run(
    days: Annotated[
        int | None,
        typer.Option(
            min=1, help="Keep this many days (default CAREJOURNEY_REJECTION_RETENTION_DAYS)."
        ),
    ] = None,
) -> None:
    """Apply the retention once: delete (or strip) refused messages older than the limit."""
    keep = days or get_settings().rejection_retention_days
    with ledger_session() as ledger, ledger.connection() as conn:
        done = retention.purge(conn, keep)
    out.print(
        f"retention {keep} days: {done.deleted} refused message(s) deleted, "
        f"{done.stripped} stripped of their content (still to be dead-lettered)"
    )
