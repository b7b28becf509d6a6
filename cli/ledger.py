"""Ledger commands: demo, ingest, history, verify, erase."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.console import (
    aware_option,
    err,
    fail,
    ledger_session,
    log_cli_access,
    nhs_argument,
    out,
    progress,
    registered,
)
from cli.options import KnownAt, NhsNumber, input_file
from domain import note, signing
from domain.checking import CheckPool
from domain.ledger import BatchResult, Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people

# 2,000 envelopes per append hung here (psycopg pipeline waits on the server, which waits
# on the client: the eventsourcing recorder's pipelined executemany); 500 never did.
CHUNK = 500


def register(app: typer.Typer) -> None:
    app.command()(demo)
    app.command()(ingest)
    app.command()(history)
    app.command()(verify)
    app.command()(erase)


def demo(
    people: Annotated[int, typer.Option(min=1, help="People in the synthetic cohort.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same cohort.")] = 7,
) -> None:
    """Generate a realistic synthetic cohort, append it, and print a summary.

    Deterministic: running it twice records nothing new the second time (every event
    is reported as a duplicate), which shows the ledger's idempotency.
    """
    with ledger_session() as ledger:
        envelopes = delivery_order(list(generate_people(people=people, seed=seed)), seed)
        totals = _append_all(ledger, iter(envelopes), len(envelopes), "appending demo cohort")
        _summary(ledger, totals)
        from cli.projections import catch_up  # here: the read side is not ingest's start-up

        catch_up(ledger)  # the read models answer for the cohort straight away


def ingest(
    file: Annotated[Path, input_file("NDJSON file: one JSON envelope per line.")],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help='One JSON object on stdout: {"results": [per line: line, index, event_id, '
            'status, position, errors], "counts": {...}}.',
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Worker processes that check envelopes while the ledger writes"
            " (0: check in this process; default: 1 for files over 1 MB, else 0).",
        ),
    ] = None,
) -> None:
    """Append an NDJSON file of envelopes; report each bad line by number, keep the good.

    The file is streamed: read, checked (in worker processes) and written in batches
    of 2,000 lines that overlap, so memory does not grow with the file. Exits 1 if any
    line was rejected or conflicted (the good lines are still recorded).
    """
    size = file.stat().st_size
    if workers is None:
        workers = POOL_WORKERS if size > POOL_FROM_BYTES else 0
    # The pool first: its workers are forked before the ledger starts any thread.
    with CheckPool(workers, get_settings().future_tolerance) as pool, ledger_session() as ledger:
        totals: dict[str, int] = {}
        bad = 0
        start = 0  # index of the chunk's first envelope among the file's non-empty lines
        items: list[dict[str, object]] = []
        with progress() as bar:
            task = bar.add_task(f"ingesting {file.name} (bytes)", total=size)
            for chunk, checked in pool.checked(_ndjson_chunks(file), _texts):
                result = ledger.append_checked(checked)
                for item in result.items:
                    line = chunk.lines[item.index]
                    if as_json:
                        items.append({"line": line, **item.as_dict(), "index": start + item.index})
                    if item.status in ("rejected", "conflict"):
                        bad += 1
                        if not as_json:
                            err.print(
                                f"line {line}: {item.status}: {item.reason()}",
                                markup=False,
                                highlight=False,
                            )
                _add(totals, result)
                start += len(chunk.texts)
                bar.advance(task, chunk.size)
        if as_json:
            typer.echo(json.dumps({"results": items, "counts": totals}))
        else:
            out.print(_counts_line(totals))
    if bad:
        raise typer.Exit(1)


# ``ingest``: envelopes per append, and when to check them in worker processes (a pool
# costs a fork server's start, about a third of a second; a small file is not worth it).
INGEST_CHUNK = 2_000
POOL_WORKERS = 1  # on two cores: one checks, one writes (two workers measured slower)
POOL_FROM_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class _Chunk:
    lines: list[int]  # each envelope's line number in the file (1-based)
    texts: list[bytes]
    size: int  # bytes read for it, blank lines included (for the progress bar)


def _ndjson_chunks(file: Path) -> Iterator[_Chunk]:
    """The file's non-empty lines, ``INGEST_CHUNK`` at a time, read as they are needed
    (as bytes: the contract parses UTF-8 itself, and a line that is not UTF-8 is that
    line's rejection, not the file's)."""
    lines: list[int] = []
    texts: list[bytes] = []
    size = 0
    with file.open("rb") as handle:
        for number, text in enumerate(handle, start=1):
            size += len(text)
            if not text.strip():
                continue
            lines.append(number)
            texts.append(text)
            if len(texts) == INGEST_CHUNK:
                yield _Chunk(lines, texts, size)
                lines, texts, size = [], [], 0
    if texts or size:
        yield _Chunk(lines, texts, size)


def _texts(chunk: _Chunk) -> list[bytes]:
    return chunk.texts


def history(
    nhs_number: NhsNumber,
    known_at: KnownAt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The person's recorded events: position, both clocks, type, source and hash."""
    nhs = nhs_argument(nhs_number)
    known_at = aware_option(known_at, "--known-at")
    with ledger_session() as ledger:
        patient = registered(ledger, nhs, "history")
        events = ledger.history(patient, known_at=known_at)
    if as_json:
        for event in events:
            out.print_json(json.dumps(event.as_dict()), indent=None)
        return
    table = Table(title=f"{len(events)} events, patient {patient}")
    for column in ("pos", "occurred", "recorded", "type", "source", "hash"):
        table.add_column(column)
    for e in events:
        table.add_row(
            str(e.position),
            e.occurred_at.isoformat(timespec="minutes"),
            e.recorded_at.isoformat(timespec="seconds"),
            e.type,
            f"{e.source['organisation']} ({e.source['setting']})",
            e.hash[:16],
        )
    out.print(table)


def verify(
    nhs_number: Annotated[
        str | None,
        typer.Argument(help="Verify this person's chain only; omit to verify the whole ledger."),
    ] = None,
    expect: Annotated[
        str | None,
        typer.Option(
            help="A saved 'POSITION:DIGEST': check the ledger up to POSITION is unchanged."
        ),
    ] = None,
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            exists=True,
            dir_okay=False,
            help="A checkpoint you kept outside the database (repeat for several).",
        ),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="Verifier key for the checkpoints (default: the configured key's)."),
    ] = None,
) -> None:
    """Recompute hash chains, the Merkle tree and every checkpoint against the events;
    exit 1 naming what was altered."""
    verifier = _verifier(key)
    kept = [path.read_text() for path in checkpoint or []]
    with ledger_session() as ledger:
        if nhs_number is not None:
            nhs = nhs_argument(nhs_number)
            patient = ledger.patient_id(nhs)
            if patient is None:
                fail("no journey is registered for this NHS number", code=1)
            broken = ledger.verify(patient)
            if broken is not None:
                if (
                    broken.event_id is None
                    and broken.position is None
                    and "no events" in broken.reason
                ):
                    fail(f"patient {patient}: {broken.reason}; nothing was verified", code=1)
                fail(f"chain broken at {broken.describe()}", code=1)
            out.print(f"ok: chain of patient {patient} verified, every event in the Merkle tree")
            return
        with progress() as bar:
            # One pass in position order: the bar counts events, then the tree is checked.
            task = bar.add_task("verifying events", total=ledger.head_position())
            report = ledger.verify_all(
                progress=lambda n: bar.advance(task, n), verifier=verifier, kept=kept
            )
        if not report.ok:
            for broken in report.breaks:
                err.print(f"chain broken at {broken.describe()}", markup=False)
            for problem in report.problems:
                err.print(f"integrity: {problem}", markup=False, highlight=False)
            if expect is not None:
                _check_expected(ledger, expect)
            raise typer.Exit(1)
        out.print(f"ok: {report.events} events of {report.people} people verified")
        signed = "signatures checked" if verifier is not None else "no key: signatures unchecked"
        out.print(
            f"ok: Merkle tree of {report.tree_size} leaves matches the events;"
            f" {report.checkpoints} stored and {len(kept)} kept checkpoint(s) consistent"
            f" ({signed})",
            highlight=False,
        )
        out.print(f"head digest {report.position}:{report.digest}")
        if expect is not None:
            _check_expected(ledger, expect)


def erase(
    nhs_number: Annotated[
        str | None, typer.Argument(help="The person's NHS number (or give --local).")
    ] = None,
    local: Annotated[
        str | None,
        typer.Option(
            "--local",
            metavar="AUTHORITY:VALUE",
            help="Name the person by a local identifier instead, e.g. RXH:4012345.",
        ),
    ] = None,
) -> None:
    """Remove every identifier of the person (NHS numbers and local ids) from the
    identity register; the history stays, unlinkable.

    Kafka messages refused by the consumer and kept for the dead-letter topic that
    mention the person's NHS numbers (or local ids of 5 characters or more) are scrubbed
    too (docs/kafka.md).
    """
    if (nhs_number is None) == (local is None):
        fail("name the person by NHS_NUMBER or by --local AUTHORITY:VALUE (one of them)")
    local_id: tuple[str, str] | None = None
    if local is not None:
        authority, _, value = local.partition(":")
        if not authority or not value:
            fail("--local takes AUTHORITY:VALUE, e.g. RXH:4012345")
        local_id = (authority, value)
    nhs = nhs_argument(nhs_number) if nhs_number is not None else None
    with ledger_session() as ledger:
        from consumers import deadletter  # here: kafka-python is not ingest's start-up

        patient, scrubbed = deadletter.erase_person(ledger, nhs, local_id)
        log_cli_access(ledger, "erase", patient, outcome="erased" if patient else "refused")
    if scrubbed:
        out.print(f"scrubbed {scrubbed} kept dead letter(s) mentioning the person")
    if patient is None:
        what = "this NHS number" if nhs is not None else "that local identifier"
        fail(f"no journey is registered for {what}", code=1)
    out.print(f"erased: the person's identifiers no longer map to patient {patient}")


def _verifier(key: str | None) -> note.Verifier | None:
    """The key to check checkpoints with: the one given, else the configured signing
    key's (none configured: signatures go unchecked, roots are still compared)."""
    try:
        if key is not None:
            return note.parse_verifier(key)
        path = signing.key_path(get_settings())
        return signing.read_key(path).verifier if path.exists() else None
    except (note.NoteError, OSError) as exc:
        fail(f"verifier key: {exc}")


def _check_expected(ledger: Ledger, expect: str) -> None:
    position_text, _, digest = expect.partition(":")
    if not position_text.isdigit() or len(digest) != 64:
        fail("--expect takes POSITION:DIGEST as printed by verify")
    _, found = ledger.digest(int(position_text))
    if found != digest:
        fail(
            f"ledger up to position {position_text} has changed: saved digest {digest}, "
            f"now {found}",
            code=1,
        )
    out.print(f"ok: ledger up to position {position_text} matches the saved digest")


def _append_all(
    ledger: Ledger, envelopes: Iterator[dict], total: int, label: str
) -> dict[str, int]:
    totals: dict[str, int] = {}
    with progress() as bar:
        task = bar.add_task(label, total=total)
        while chunk := list(islice(envelopes, CHUNK)):
            result = ledger.append_batch(chunk)
            for item in result.items:
                if item.status in ("rejected", "conflict"):
                    err.print(f"item {item.event_id}: {item.status}: {item.reason()}", markup=False)
            _add(totals, result)
            bar.advance(task, len(chunk))
    return totals


def _add(totals: dict[str, int], result: BatchResult) -> None:
    for status, n in result.counts().items():
        totals[status] = totals.get(status, 0) + n


def _counts_line(totals: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in totals.items())


def _summary(ledger: Ledger, totals: dict[str, int]) -> None:
    out.print(f"this run: {_counts_line(totals)}")
    table = Table(title="ledger contents by event type")
    table.add_column("type")
    table.add_column("events", justify="right")
    by_type = ledger.counts_by_type()
    for kind, n in by_type.items():
        table.add_row(kind, str(n))
    table.add_row("[bold]total[/]", f"[bold]{sum(by_type.values())}[/]")
    out.print(table)
    position, digest = ledger.digest()
    out.print(f"people: {ledger.people()}")
    out.print(f"ledger head: position {position}, digest {position}:{digest}")
