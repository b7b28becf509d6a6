"""HL7 v2 ADT commands: ``carejourney adt import FILE...``.

The mapping itself lives in ``consumers/adt.py`` (documented in docs/adt.md); this only
reads files, hands the messages over in chunks, and reports each message's result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.console import ledger_session, out, progress
from cli.options import group, input_file
from consumers import publisher_outcomes as outcomes
from consumers.adt_ingest import MessageResult, append_messages, preview_messages
from consumers.hl7v2 import split_messages
from domain.settings import get_settings

CHUNK = 500


def register(app: typer.Typer) -> None:
    adt = group("HL7 v2 ADT feeds from hospitals (mapping: docs/adt.md).")
    adt.command("import")(import_files)
    app.add_typer(adt, name="adt")


def import_files(
    files: Annotated[
        list[Path],
        input_file("Files of one or more ER7 messages (segments ended by \\r, \\n or \\r\\n)."),
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Write nothing: say what each message would give (the envelope as mapped, "
            "or the reason it would be refused).",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='One JSON object on stdout: {"results": [per message: file, message, '
            "message_control_id, trigger, status, event_id, position, reason, errors, notes, "
            'envelope (dry run)], "counts": {...}}.',
        ),
    ] = False,
) -> None:
    """Import HL7 v2 ADT messages into the ledger and report each message's result.

    Each message is reported by file and message number: recorded (with its ledger
    position), duplicate (a resent message), conflict (its control id was used for other
    content) or rejected (with the reasons). A08 identity updates are noted, not turned
    into journey events. Exits 1 if any message was refused (or, with --dry-run, would
    be).

    With --dry-run nothing is written: each message is mapped and judged against what the
    ledger holds (duplicates and conflicts included) and reported as would_record, with
    the envelope it would record, or with the reason it would be refused.
    """
    settings = get_settings()
    messages: list[tuple[str, int, str]] = []
    for path in files:
        split = split_messages(path.read_bytes())
        messages.extend((path.name, number, text) for number, text in enumerate(split, 1))
    totals: dict[str, int] = {}
    found: list[dict[str, Any]] = []
    refused = 0
    with ledger_session() as ledger, progress() as bar:
        task = bar.add_task(
            "checking ADT messages" if dry_run else "importing ADT messages", total=len(messages)
        )
        run = preview_messages if dry_run else append_messages
        for start in range(0, len(messages), CHUNK):
            chunk = messages[start : start + CHUNK]
            texts = [text for _, _, text in chunk]
            results = run(ledger, texts, settings)
            if not dry_run:
                outcomes.record(
                    ledger, outcomes.of_messages(results, texts, settings, "adt-import")
                )
            for (name, number, _), result in zip(chunk, results, strict=True):
                if as_json:
                    found.append(
                        {"file": name, "message": number, **result.as_dict(), "index": len(found)}
                    )
                else:
                    out.print(
                        f"{name} message {number}: {_describe(result)}",
                        markup=False,
                        highlight=False,
                        soft_wrap=True,
                    )
                    if result.envelope is not None:
                        out.print(
                            json.dumps(result.envelope),
                            markup=False,
                            highlight=False,
                            soft_wrap=True,
                        )
                totals[result.shown_status] = totals.get(result.shown_status, 0) + 1
                refused += result.refused
            bar.advance(task, len(chunk))
    if as_json:
        typer.echo(json.dumps({"dry_run": dry_run, "results": found, "counts": totals}))
    else:
        if not messages:
            out.print("no HL7 messages found (a message starts with an MSH segment)")
        counts = ", ".join(f"{n} {status}" for status, n in sorted(totals.items()))
        out.print(counts or "nothing")
    if refused or not messages:
        raise typer.Exit(1)


def _describe(result: MessageResult) -> str:
    trigger = result.trigger or "?"
    kind = "identity update" if result.identity_update else "event"
    text = f"{trigger} {result.shown_status.replace('_', ' ')}"
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
