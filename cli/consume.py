"""``carejourney consume``: Kafka into the ledger, and ``--stats`` on what it did.

The loop, the offsets and the dead letters live in ``consumers/`` (docs/kafka.md); this
module only turns settings and flags into a feed and a loop, installs the signal
handlers (SIGTERM/SIGINT finish the batch in flight and exit 0) and prints.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from cli.console import err, fail, ledger_session, out
from consumers import offsets, processes
from consumers.broker import Broker
from consumers.events import envelope_feed
from consumers.feed import Feed
from consumers.loop import ConsumerLoop, LoopOptions, Totals
from domain.checking import CheckPool
from domain.settings import Settings, get_settings

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    app.command()(consume)


def consume(
    adt: Annotated[
        bool,
        typer.Option(
            "--adt",
            help="Consume raw HL7 v2 ADT messages (CAREJOURNEY_ADT_TOPIC) instead of "
            "JSON envelopes (docs/adt.md).",
        ),
    ] = False,
    topic: Annotated[
        list[str] | None,
        typer.Option(
            help="Source topic; repeat for several (default CAREJOURNEY_EVENTS_TOPIC, or "
            "CAREJOURNEY_ADT_TOPIC with --adt)."
        ),
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Consumer group id (default CAREJOURNEY_CONSUMER_GROUP).")
    ] = None,
    assign: Annotated[
        bool,
        typer.Option(
            "--assign",
            help="No consumer group: this one process reads every partition "
            "(starts at once; do not run two).",
        ),
    ] = False,
    bootstrap_servers: Annotated[
        str | None,
        typer.Option(help="Kafka brokers host:port[,host:port] (default KAFKA_BOOTSTRAP_SERVERS)."),
    ] = None,
    api_version: Annotated[
        str | None,
        typer.Option(
            help="Pin kafka-python's api_version, e.g. 2.8 for tansu "
            "(default CAREJOURNEY_KAFKA_API_VERSION)."
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Most messages per transaction (default CAREJOURNEY_CONSUMER_BATCH_SIZE, 2000).",
        ),
    ] = None,
    batch_bytes: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="About the most message bytes per transaction (default "
            "CAREJOURNEY_CONSUMER_BATCH_BYTES, 1048576).",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Worker processes that decode and check the next batches while this one"
            " writes (0: all in this process, the default; docs/performance.md).",
        ),
    ] = 0,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Print the exact per-partition counts kept in PostgreSQL "
            "(offsets, recorded, duplicates, conflicts, rejected, dead letters unsent) "
            "and exit.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --stats: print JSON.")] = False,
    reset_partition: Annotated[
        str | None,
        typer.Option(
            "--reset-partition",
            metavar="TOPIC:P",
            help="The operator's decision for a stopped partition (its stored offset lay "
            "past the partition's end, or the topic was made again): resume it at --to, "
            "then exit. The counts stay.",
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="earliest|OFFSET",
            help="With --reset-partition: where to resume (the partition's earliest "
            "offset, or this offset).",
        ),
    ] = None,
) -> None:
    """Consume a Kafka topic into the ledger with exactly-once effect.

    Each batch is recorded in one PostgreSQL transaction with its partitions' offsets;
    refused messages go to the dead-letter topic with the reason. Runs until SIGTERM or
    SIGINT, which finish the batch in flight and exit 0.
    """
    settings = get_settings()
    feed = _feed(settings, adt, topic)
    if reset_partition is not None or to is not None:
        _reset(reset_partition, to)
        return
    if stats:
        _print_stats(feed, as_json)
        return
    try:
        broker = Broker.from_settings(settings, bootstrap_servers, api_version)
    except ValueError as exc:
        fail(str(exc))
    options = LoopOptions(
        group_id=None if assign else (group or settings.consumer_group),
        batch_size=batch_size or settings.consumer_batch_size,
        batch_bytes=batch_bytes or settings.consumer_batch_bytes,
        max_backoff=settings.consumer_max_backoff_seconds,
    )
    logging.getLogger("consumers").setLevel(logging.INFO)
    stop = threading.Event()
    mode = "every partition (--assign)" if assign else f"group {options.group_id}"
    err.print(
        f"consuming {', '.join(feed.topics)} from {broker.bootstrap_servers}, {mode}; "
        f"dead letters to {feed.dead_letter_topic}"
    )
    # The pool first: its workers are forked before the ledger starts any thread.
    with (
        CheckPool(workers, settings.future_tolerance) as checks,
        ledger_session() as ledger,
        _stop_on_signals(stop),
    ):
        loop = ConsumerLoop(ledger, feed, broker, options, stop, report=_report, checks=checks)
        totals = loop.run()
    err.print(f"stopped: {_describe(totals)}")


def _feed(settings: Settings, adt: bool, topics: list[str] | None) -> Feed:
    if not adt:
        return envelope_feed(settings, topics)
    try:  # the ADT adapter provides its feed (consumers/adt_ingest.py)
        from consumers.adt_ingest import kafka_feed
    except ImportError:
        fail("the HL7 v2 ADT feed is not available (consumers.adt_ingest.kafka_feed)")
    return kafka_feed(settings, topics)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT ask the loop to stop after the batch in flight (exit 0)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        err.print(f"{signal.Signals(signum).name}: finishing the current batch, then exiting")
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _describe(totals: Totals) -> str:
    parts = ", ".join(f"{n} {status}" for status, n in sorted(totals.statuses.items()) if n)
    line = (
        f"{totals.messages} messages ({parts or 'none'}) in {totals.batches} batches, "
        f"{totals.rate():,.0f}/s; {totals.dead_letters_sent} dead letters sent"
    )
    if totals.waiting:
        line += f"; waiting for {totals.waiting}"
    if totals.stopped:
        line += "; STOPPED " + ", ".join(f"{t}:{p}" for t, p in sorted(totals.stopped))
    return line


def _report(totals: Totals) -> None:
    err.print(_describe(totals), highlight=False)


def _reset(partition: str | None, to: str | None) -> None:
    if partition is None or to is None:
        fail("--reset-partition TOPIC:P and --to earliest|OFFSET go together")
    topic, _, number = partition.rpartition(":")
    if not topic or not number.isdigit():
        fail(f"--reset-partition wants TOPIC:PARTITION, e.g. care.events.v1:3, not {partition!r}")
    if to != "earliest" and not to.isdigit():
        fail(f"--to wants earliest or an offset (a whole number), not {to!r}")
    offset = None if to == "earliest" else int(to)
    with ledger_session() as ledger, ledger.connection() as conn:
        offsets.migrate(conn)
        before = offsets.reset_partition(conn, topic, int(number), offset)
    where = "its earliest offset" if offset is None else f"offset {offset}"
    was = "nothing stored" if before is None else f"stored offset was {before}"
    out.print(f"{topic}:{number} will resume at {where} ({was}); a running consumer resumes it")


def _print_stats(feed: Feed, as_json: bool) -> None:
    with ledger_session() as ledger, ledger.connection() as conn:
        offsets.migrate(conn)
        rows = offsets.partition_stats(conn, list(feed.topics))
        running = processes.states(conn, list(feed.topics))
    if as_json:  # the partitions (a list, as before); what the processes do on stderr
        out.print_json(json.dumps([r.as_dict() for r in rows]))
        for p in running:
            err.print(f"consumer {p.consumer}: {p.state} for {p.seconds:.0f} s", highlight=False)
        return
    table = Table(title=f"consumer {feed.name}: {', '.join(feed.topics)}")
    counted = (
        "consumed",
        "recorded",
        "duplicates",
        "conflicts",
        "rejected",
        "noted",
        "held",
        "dead_letters_pending",
    )
    columns = ("topic", "partition", "last offset", *counted[:-1], "DLQ unsent")
    for column in columns:
        table.add_column(column, justify="left" if column == "topic" else "right")
    for r in rows:
        table.add_row(
            r.topic, str(r.partition), str(r.last_offset), *(str(getattr(r, a)) for a in counted)
        )
    sums = [sum(getattr(r, a) for r in rows) for a in counted]
    table.add_row("[bold]total[/]", "", "", *(f"[bold]{n}[/]" for n in sums))
    out.print(table)
    for r in rows:
        if r.stopped:
            out.print(
                f"[bold red]STOPPED[/] {r.topic}:{r.partition}: {r.stopped}\n"
                f"  resume with: carejourney consume --reset-partition "
                f"{r.topic}:{r.partition} --to earliest|OFFSET",
                highlight=False,
            )
    for p in running:
        heard = "" if p.silent < 60 else f" (no heartbeat for {p.silent:.0f} s: gone?)"
        out.print(f"consumer {p.consumer}: {p.state} for {p.seconds:.0f} s{heard}", highlight=False)
