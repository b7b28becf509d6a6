"""The one pass of a rebuild: everyone's streams, in one snapshot, folded and COPYed.

Every person's stream is read once, in ledger-index order (``patient_id, version``),
folded once, and the rows are streamed into the new tables with one binary COPY per
table, each on its own connection (so PostgreSQL parses and stores rows while Python
folds the next person).

On more than one core the pass is split by ranges of ``patient_id`` across worker
processes (``workers``); they all read the snapshot the coordinating transaction
exported (``pg_export_snapshot``), so together they read exactly the events at or before
one head position, as one process would. People linked by recorded merges are folded
by the coordinator, after the others, over their combined streams.
"""

from __future__ import annotations

import multiprocessing
import queue as queues
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import pairwise
from typing import Any
from uuid import UUID

import psycopg
from psycopg import IsolationLevel, sql

from projections import catalog, fold, log
from projections.fold import FoldConfig

PROGRESS_EVERY = 20_000  # events between progress reports
PARALLEL_FROM = 50_000  # events: below this, starting workers costs more than it gains


@dataclass(frozen=True, slots=True)
class Job:
    """What one process folds: the people in ``[lo, hi)`` (None: unbounded)."""

    url: str
    snapshot: str
    upto: int
    excluded: tuple[UUID, ...]
    names: tuple[str, ...]
    suffix: str
    config: FoldConfig
    lo: UUID | None = None
    hi: UUID | None = None


class Sink:
    """One open binary COPY per table, each on its own connection."""

    def __init__(self, url: str, names: tuple[str, ...], suffix: str) -> None:
        self.names = names
        self._stack = ExitStack()
        self._copies: dict[str, Any] = {}
        try:
            for table in catalog.tables(names):
                conn = self._stack.enter_context(log.connect(url))
                cur = self._stack.enter_context(conn.cursor())
                self._copies[table.name] = self._stack.enter_context(
                    table.copy(cur, table.name + suffix)
                )
        except BaseException:
            self._stack.close()
            raise

    def write(self, person: fold.PersonEvents) -> None:
        for name, rows in catalog.person_rows(person, self.names).items():
            write_row = self._copies[name].write_row
            for row in rows:
                write_row(row)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: Any) -> None:
        """End every COPY and commit (or, on an error, abort them all)."""
        self._stack.__exit__(*exc)


def fold_into(
    sink: Sink,
    people: Iterable[tuple[UUID, list[Any]]],
    config: FoldConfig,
    report: Callable[[int], None],
) -> tuple[int, int]:
    """Fold each (person, events) into the sink; ``report(n)`` every so many events."""
    events = persons = pending = 0
    for patient, stream in people:
        sink.write(fold.prepare(stream, patient, config))
        events += len(stream)
        pending += len(stream)
        persons += 1
        if pending >= PROGRESS_EVERY:
            report(pending)
            pending = 0
    report(pending)
    return events, persons


def _snapshot_reader(url: str, snapshot: str | None) -> psycopg.Connection[Any]:
    conn = log.connect(url)
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    if snapshot is not None:
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
    return conn


def _run(
    job: Job,
    report: Callable[[int], None],
    reader: psycopg.Connection[Any] | None,
    loads: log.Loads = log.plain_loads,
) -> tuple[int, int]:
    with ExitStack() as stack:
        if reader is None:
            reader = stack.enter_context(_snapshot_reader(job.url, job.snapshot))
        streams = log.all_streams(reader, job.upto, job.excluded, loads, lo=job.lo, hi=job.hi)
        with Sink(job.url, job.names, job.suffix) as sink:
            return fold_into(sink, ((s[0].patient_id, s) for s in streams), job.config, report)


def _worker(job: Job, out: Any) -> None:
    """A worker process: fold its range, report progress and totals on ``out``."""
    try:
        events, people = _run(job, lambda n: out.put(("progress", n)), None)
        out.put(("done", events, people))
    except BaseException as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))
        raise


def bounds(workers: int) -> list[tuple[UUID | None, UUID | None]]:
    """``workers`` ranges of equal width over the UUID space (patient ids are random)."""
    cuts = [UUID(int=i * (1 << 128) // workers) for i in range(1, workers)]
    edges: list[UUID | None] = [None, *cuts, None]
    return list(pairwise(edges))


def load(
    url: str,
    names: tuple[str, ...],
    suffix: str,
    config: FoldConfig,
    loads: log.Loads,
    progress: Callable[[int, int], None] | None,
    workers: int,
) -> tuple[int, int, int]:
    """Fold everyone at the head into the ``suffix`` tables; (head, events, people)."""
    with _snapshot_reader(url, None) as reader:
        head = log.head(reader)
        exported = reader.execute("SELECT pg_export_snapshot()").fetchone()
        assert exported is not None  # a SELECT of a function always returns its row
        snapshot = str(exported[0])
        total_row = reader.execute(
            "SELECT count(*) FROM ledger_events WHERE position <= %s", (head,)
        ).fetchone()
        total = int(total_row[0]) if total_row else 0
        merged = tuple(log.merged_people(reader))
        done = [0]

        def report(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(done[0], total)

        report(0)
        job = Job(url, snapshot, head, merged, names, suffix, config)
        # Workers decode plain JSON themselves; a cipher or compressor stays in-process.
        if workers > 1 and total >= PARALLEL_FROM and loads is log.plain_loads:
            events, people = _parallel(job, workers, report)
        else:
            events, people = _run(job, report, reader, loads)
        if merged:
            streams = log.streams(reader, merged, head, loads)
            groups = fold.people(e for stream in streams.values() for e in stream)
            with Sink(url, names, suffix) as sink:
                more, persons = fold_into(sink, groups.items(), config, report)
            events, people = events + more, people + persons
        reader.rollback()
    return head, events, people


def _parallel(job: Job, workers: int, report: Callable[[int], None]) -> tuple[int, int]:
    context = multiprocessing.get_context("spawn")  # no inherited connections or threads
    out = context.Queue()
    procs = [
        context.Process(target=_worker, args=(_range(job, lo, hi), out), daemon=True)
        for lo, hi in bounds(workers)
    ]
    for proc in procs:
        proc.start()
    events = people = finished = 0
    try:
        while finished < len(procs):
            try:
                message = out.get(timeout=1.0)
            except queues.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"rebuild worker exited with {dead[0].exitcode}") from None
                continue
            if message[0] == "progress":
                report(message[1])
            elif message[0] == "done":
                events, people, finished = events + message[1], people + message[2], finished + 1
            else:
                raise RuntimeError(f"rebuild worker failed: {message[1]}")
    finally:
        for proc in procs:
            if proc.is_alive() and finished < len(procs):
                proc.terminate()
            proc.join()
    return events, people


def _range(job: Job, lo: UUID | None, hi: UUID | None) -> Job:
    return Job(
        job.url, job.snapshot, job.upto, job.excluded, job.names, job.suffix, job.config, lo, hi
    )
