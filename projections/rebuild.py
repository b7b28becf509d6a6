"""Rebuild: build projections from position 0 into new tables, then swap them in.

Why a separate path from catching up: a rebuild reads every event once, person after
person (``log.all_streams``: the ledger index is ordered by person and version), folds
each person once and streams the rows into fresh tables with one COPY per table, where
catching up batch by batch would re-read a person's stream in every batch that touches
them. Indexes are built once at the end, in parallel.

Steps:

1. under an advisory lock (one rebuild at a time), drop any leftover ``<table>_rebuild``
   tables and create empty ones, without indexes;
2. in one REPEATABLE READ snapshot, read the head position H and fold everyone up to H
   into the new tables (``projections/bulk.py``: one pass, binary COPY, split across
   worker processes by ranges of patient id on more than one core), with progress;
3. build the indexes and ANALYZE;
4. catch the new tables up from H to the current head, batch by batch (the ledger keeps
   taking events meanwhile);
5. in ONE transaction: lock the projections' tracking rows (a live runner waits), catch
   up the last few events, drop the old tables, rename the new tables and indexes into
   place, and set the positions. Readers never see a missing or half-built table: a
   query waits the few milliseconds the swap holds its locks, then reads the new table.

A crash before step 5 leaves the live tables untouched (the next rebuild drops the
leftovers); step 5 commits or not as a whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg import sql

from projections import bulk, catalog, log
from projections.batches import batch_end, fold_people, touched_between, write_rows
from projections.fold import FoldConfig
from projections.tables import Table

SUFFIX = "_rebuild"
LOCK = "carejourney.projections.rebuild"
SWAP_ATTEMPTS = 3


class Runner(Protocol):
    """What a rebuild needs of the runner it serves (``projections.runner.Runner``)."""

    database_url: str
    names: tuple[str, ...]
    batch_size: int
    config: FoldConfig
    loads: log.Loads
    workers: int

    def migrate(self) -> None: ...
    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]: ...
    def positions(self, conn: psycopg.Connection[Any]) -> dict[str, int]: ...


class RebuildBusy(RuntimeError):
    """Another rebuild holds the lock."""


@dataclass(frozen=True, slots=True)
class RebuildReport:
    names: tuple[str, ...]
    built_at: int  # the snapshot position the one pass read up to
    position: int  # the position swapped in (after catching up)
    events: int
    people: int
    seconds: float
    phases: dict[str, float]  # seconds per step: load, index, catch_up, swap

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(
    runner: Runner,
    names: Collection[str] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    only_if_unbuilt: bool = False,
) -> RebuildReport | None:
    """Rebuild the named projections (default: the runner's) and swap them in.

    ``progress(done, total)`` counts events folded. With ``only_if_unbuilt`` (the
    runner's initial build) nothing happens unless they are all still at position 0.
    """
    chosen = tuple(n for n in catalog.NAMES if n in (names or runner.names))
    tables = catalog.tables(chosen)
    runner.migrate()
    started = time.perf_counter()
    with runner.connect(autocommit=True) as control:
        got = control.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (LOCK,)).fetchone()
        if not got or not got[0]:
            raise RebuildBusy("another rebuild is running; try again when it has finished")
        try:
            if only_if_unbuilt and any(runner.positions(control).get(n, 0) for n in chosen):
                return None
            phases: dict[str, float] = {}
            clock = time.perf_counter()

            def lap(name: str) -> None:
                nonlocal clock
                now = time.perf_counter()
                phases[name] = now - clock
                clock = now

            _create(control, tables)
            built_at, events, people = bulk.load(
                runner.database_url,
                chosen,
                SUFFIX,
                runner.config,
                runner.loads,
                progress,
                runner.workers,
            )
            lap("load")
            _index(runner, tables)
            lap("index")
            build = _Build(runner, chosen, tables)
            position = _catch_up(build, control, built_at)
            lap("catch_up")
            position = _swap(build, control, position)
            lap("swap")
        finally:
            control.execute("SELECT pg_advisory_unlock(hashtext(%s))", (LOCK,))
    return RebuildReport(
        chosen, built_at, position, events, people, time.perf_counter() - started, phases
    )


def _create(conn: psycopg.Connection[Any], tables: list[Table]) -> None:
    with conn.transaction():
        for table in tables:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table.name + SUFFIX))
            )
            for statement in table.create(table.name + SUFFIX, with_indexes=False):
                conn.execute(statement)


def _index(runner: Runner, tables: list[Table]) -> None:
    """Build every new table's indexes (in parallel: the server does the work), ANALYZE."""

    def build(table: Table) -> None:
        with runner.connect(autocommit=True) as conn:
            for statement in table.create_indexes(table.name + SUFFIX):
                conn.execute(statement)
            conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table.name + SUFFIX)))

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(build, tables))


@dataclass(frozen=True, slots=True)
class _Build:
    """What is being rebuilt: for whom, which projections, into which new tables."""

    runner: Runner
    names: tuple[str, ...]
    tables: list[Table]

    def apply(self, conn: psycopg.Connection[Any], after: int, upto: int) -> None:
        touched = touched_between(conn, after, upto)
        folded = fold_people(conn, touched, upto, self.names, self.runner.config, self.runner.loads)
        write_rows(conn, folded, self.tables, SUFFIX)


def _catch_up(build: _Build, conn: psycopg.Connection[Any], position: int) -> int:
    """Bring the new tables from ``position`` to the head, batch by batch."""
    while True:
        upto = batch_end(conn, position, build.runner.batch_size)
        if upto is None:
            return position
        with conn.transaction():
            build.apply(conn, position, upto)
        position = upto


def _swap(build: _Build, conn: psycopg.Connection[Any], position: int) -> int:
    """The last catch-up and the swap, in one transaction (module docstring, step 5)."""
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with conn.transaction():
                conn.execute(
                    "SELECT name FROM projection_positions WHERE name = ANY(%s)"
                    " ORDER BY name FOR UPDATE",
                    (list(build.names),),
                )
                head = log.head(conn)
                if head > position:
                    build.apply(conn, position, head)
                for table in build.tables:
                    _replace(conn, table)
                conn.execute(
                    "UPDATE projection_positions SET position = %s, updated_at = now(),"
                    " rebuilt_at = now() WHERE name = ANY(%s)",
                    (max(head, position), list(build.names)),
                )
            return max(head, position)
        except psycopg.errors.DeadlockDetected:
            # A reader holding one old table asked for another while we held it.
            if attempt == SWAP_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _replace(conn: psycopg.Connection[Any], table: Table) -> None:
    new = table.name + SUFFIX
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table.name)))
    conn.execute(
        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
            sql.Identifier(new), sql.Identifier(table.name)
        )
    )
    for index in table.indexes:
        conn.execute(
            sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                sql.Identifier(f"{new}_{index.suffix}"),
                sql.Identifier(f"{table.name}_{index.suffix}"),
            )
        )
