"""HL7 v2 ADT commands: ``carejourney adt import FILE...``.

The mapping itself lives in ``consumers/adt.py`` (documented in docs/adt.md); this only
reads files, hands the messages over in chunks, and reports each message's result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import ledger_session, out, progress
from consumers.adt_ingest import MessageResult, append_messages
from consumers.hl7v2 import split_messages
from domain.settings import get_settings

CHUNK = 500


def register(app: typer.Typer) -> None:
    adt = typer.Typer(
        help="HL7 v2 ADT feeds from hospitals (mapping: docs/adt.md).", no_args_is_help=True
    )
    adt.command("import")(import_files)
    app.add_typer(adt, name="adt")


def import_files(
    files: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="Files of one or more ER7 messages (segments ended by \\r, \\n or \\r\\n).",
        ),
    ],
) -> None:
    """Import HL7 v2 ADT messages into the ledger and report each message's result.

    Each message is reported by file and message number: recorded (with its ledger
    position), duplicate (a resent message), conflict (its control id was used for other
    content) or rejected (with the reasons). A08 identity updates are noted, not turned
    into journey events. Exits 1 if any message was refused.
    """
    settings = get_settings()
    messages: list[tuple[str, int, str]] = []
    for path in files:
        found = split_messages(path.read_bytes())
        messages.extend((path.name, number, text) for number, text in enumerate(found, 1))
    totals: dict[str, int] = {}
    refused = 0
    with ledger_session() as ledger, progress() as bar:
        task = bar.add_task("importing ADT messages", total=len(messages))
        for start in range(0, len(messages), CHUNK):
            chunk = messages[start : start + CHUNK]
            results = append_messages(ledger, [text for _, _, text in chunk], settings)
            for (name, number, _), result in zip(chunk, results, strict=True):
                out.print(
                    f"{name} message {number}: {_describe(result)}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
                totals[result.status] = totals.get(result.status, 0) + 1
                refused += result.refused
            bar.advance(task, len(chunk))
    if not messages:
        out.print("no HL7 messages found (a message starts with an MSH segment)")
    out.print(", ".join(f"{n} {status}" for status, n in sorted(totals.items())) or "nothing")
    if refused or not messages:
        raise typer.Exit(1)


def _describe(result: MessageResult) -> str:
    trigger = result.trigger or "?"
    kind = "identity update" if result.identity_update else "event"
    text = f"{trigger} {result.status}"
    if result.item.position is not None:
        text += f" at position {result.item.position}"
    elif result.identity_update and result.status != "rejected":
        text += f" ({kind} noted, no journey event)"
    if result.item.errors:
        text += f": {result.reason()}"
    if result.status in ("duplicate", "conflict"):
        text += f" ({result.collision()})"
    for note in result.notes:
        text += f" [note: {note}]"
    return text
