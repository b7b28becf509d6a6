"""The projection runner: batched, tracked catch-up of every read model, and following.

Apart from the folds, as in Marten's async daemon: the folds say what a person's rows
are; the runner decides whose rows to recompute and makes the change durable.

One step (``Runner.step``):

1. take the next batch of the notification log after the lowest position of the
   projections run (``batch_size`` positions; gaps in positions are normal),
2. collect the people the batch touched (plus everyone linked to them by a recorded
   merge), re-read those people's complete streams up to the batch's end, and fold each
   person, so a late event lands where it occurred with no special case,
3. in ONE transaction: lock the projections' tracking rows, delete those people's rows
   and write the new ones with COPY, and advance each projection's position to the
   batch's end. Rows and position commit together, so a crash (even SIGKILL inside the
   transaction) leaves the previous batch's state and the next run redoes the batch:
   nothing is applied twice (a person's rows are replaced, never added to) and nothing
   is skipped (positions follow commit order: the ledger appends under a table lock).

Rows at position P are exactly the folds of the events at or before P. Two runners, or a
runner and a rebuild, may run at once: the tracking rows are locked before any write and
a projection already past a batch is left alone.

``Runner.follow`` catches up, then waits on PostgreSQL ``LISTEN journeys_events`` (the
library NOTIFYs on every append) with a timeout that doubles as polling, until its stop
event is set (the CLI sets it on SIGINT/SIGTERM; the step in progress finishes first).
A projection still at position 0 with a long log behind it is built by the rebuild path
instead (one pass over everyone's streams, then swapped in), which is far faster than
catching up batch by batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from domain.database import head_position
from domain.ledger import Ledger
from projections import alert_feed, catalog, log
from projections.batches import batch_end, fold_people, touched_between, write_rows
from projections.fold import DEFAULT_CONFIG, FoldConfig
from projections.rebuild import rebuild
from projections.tables import Table

logger = logging.getLogger(__name__)

POSITIONS = """
    CREATE TABLE IF NOT EXISTS projection_positions (
        name        text PRIMARY KEY,
        position    bigint NOT NULL DEFAULT 0,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        rebuilt_at  timestamptz
    )
"""
CHANNEL = "journeys_events"
WAIT_SLICE = 0.25  # seconds: how promptly a follower notices its stop event
MIGRATE_LOCK = "carejourney.projections.migrate"


@dataclass(frozen=True, slots=True)
class Step:
    """What one batch did."""

    after: int
    upto: int
    people: int
    written: tuple[str, ...]  # projections whose rows and position moved


class Runner:
    """Keeps the named projections (default: all) caught up with the ledger."""

    def __init__(
        self,
        database_url: str,
        *,
        names: Collection[str] = catalog.NAMES,
        batch_size: int = 20_000,
        config: FoldConfig = DEFAULT_CONFIG,
        loads: log.Loads = log.plain_loads,
        initial_build_after: int = 100_000,
        workers: int | None = None,
        kept_events: int = 200_000,
    ) -> None:
        unknown = set(names) - set(catalog.NAMES)
        if unknown:
            raise ValueError(
                f"unknown projections: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(catalog.NAMES)}"
            )
        self.database_url = database_url
        self.names = tuple(n for n in catalog.NAMES if n in names)
        self.batch_size = batch_size
        self.config = config
        self.loads = loads
        self.initial_build_after = initial_build_after
        # Rebuild processes: one per core, two at most (PostgreSQL needs a core too).
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        # The streams of recently folded people (``log.Kept``): a step reads only what
        # each gained since. Ledger facts only, so valid whatever wrote the rows.
        self.kept = log.Kept(kept_events)

    @classmethod
    def for_ledger(cls, ledger: Ledger, **options: Any) -> Runner:
        """A runner on the ledger's database, configured from the ledger's settings and
        decoding stored events exactly as the ledger's mapper does."""
        options.setdefault("config", FoldConfig.from_settings(ledger.settings))
        options.setdefault("loads", log.state_loader(ledger.mapper))
        return cls(ledger.database_url, **options)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        return log.connect(self.database_url, autocommit=autocommit)

    # -- schema ----------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create the tracking table and every projection's tables (idempotent)."""
        with self.connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATE_LOCK,))
            conn.execute(POSITIONS)
            alert_feed.migrate(conn)  # the alerts' change feed (not a projection table)
            conn.execute(
                "INSERT INTO projection_positions (name) SELECT unnest(%s::text[])"
                " ON CONFLICT (name) DO NOTHING",
                (list(catalog.NAMES),),
            )
            for model in catalog.MODELS:
                if _reshaped(conn, model.tables):
                    _reset(conn, model.name, model.tables)
                for table in model.tables:
                    for statement in table.create():
                        conn.execute(statement)

    def positions(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        rows = conn.execute(
            "SELECT name, position FROM projection_positions WHERE name = ANY(%s)",
            (list(self.names),),
        ).fetchall()
        found = {r[0]: int(r[1]) for r in rows}
        return {name: found.get(name, 0) for name in self.names}

    # -- catching up -----------------------------------------------------------------------

    def step(self, conn: psycopg.Connection[Any]) -> Step | None:
        """Apply the next batch (module docstring); None when every projection is caught
        up. ``conn`` is an autocommit connection (the step is its own transaction)."""
        with conn.transaction():
            start = self.positions(conn)
            after = min(start.values())
            upto = batch_end(conn, after, self.batch_size)
            if upto is None:
                return None
            touched = touched_between(conn, after, upto)
            folded = fold_people(
                conn, touched, upto, self.names, self.config, self.loads, self.kept
            )
            locked = dict(
                conn.execute(
                    "SELECT name, position FROM projection_positions WHERE name = ANY(%s)"
                    " ORDER BY name FOR UPDATE",
                    (list(self.names),),
                ).fetchall()
            )
            due = tuple(n for n in self.names if locked.get(n, 0) < upto)
            if due:
                write_rows(conn, folded, catalog.tables(due))
                conn.execute(
                    "UPDATE projection_positions SET position = %s, updated_at = now()"
                    " WHERE name = ANY(%s)",
                    (upto, list(due)),
                )
        return Step(after, upto, len(folded.people), due)

    def run_once(
        self,
        stop: threading.Event | None = None,
        on_step: Callable[[Step, int], None] | None = None,
        on_build: Callable[[int, int], None] | None = None,
    ) -> list[Step]:
        """Catch up to the ledger head and return (what the CLI's ``--once`` does).

        ``on_step(step, head)`` is called after each batch; ``on_build(done, total)``
        reports an initial build's progress (see the module docstring).
        """
        self._initial_build(on_build)
        steps: list[Step] = []
        with self.connect(autocommit=True) as conn:
            while stop is None or not stop.is_set():
                step = self.step(conn)
                if step is None:
                    break
                steps.append(step)
                if on_step is not None:
                    on_step(step, log.head(conn))
        return steps

    def _initial_build(self, on_build: Callable[[int, int], None] | None) -> None:
        """Projections at position 0 behind a long log are built in one pass instead."""
        with self.connect(autocommit=True) as conn:
            fresh = [n for n, p in self.positions(conn).items() if p == 0]
            if not fresh or log.head(conn) <= self.initial_build_after:
                return
        rebuild(self, fresh, progress=on_build, only_if_unbuilt=True)

    def follow(
        self,
        stop: threading.Event,
        poll_seconds: float = 1.0,
        on_step: Callable[[Step, int], None] | None = None,
    ) -> None:
        """Catch up, then apply new events as they are appended, until ``stop`` is set."""
        listener: psycopg.Connection[Any] | None = None
        try:
            listener = self.connect(autocommit=True)
            listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:  # e.g. a pooler without LISTEN: poll instead
            logger.warning(
                "LISTEN %s unavailable (%s): polling every %.1fs", CHANNEL, exc, poll_seconds
            )
            listener = None
        try:
            while not stop.is_set():
                self.run_once(stop, on_step)
                if stop.is_set():
                    break
                self._wait(listener, stop, poll_seconds)
        finally:
            if listener is not None:
                listener.close()

    @staticmethod
    def _wait(
        listener: psycopg.Connection[Any] | None, stop: threading.Event, poll_seconds: float
    ) -> None:
        """Until a notification, ``poll_seconds`` or ``stop``, whichever comes first
        (in short slices, so a stop request is honoured promptly)."""
        deadline = time.monotonic() + poll_seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if listener is None:
                stop.wait(min(left, WAIT_SLICE))
            elif any(True for _ in listener.notifies(timeout=min(left, WAIT_SLICE), stop_after=1)):
                return

    def status(self) -> list[dict[str, Any]]:
        with self.connect(autocommit=True) as conn:
            return [s for s in status(conn) if s["name"] in self.names]


def status(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Each projection's name, position, the ledger head and the lag (head - position),
    with when it last moved and was last rebuilt. Works on any psycopg connection."""
    with conn.cursor(row_factory=dict_row) as cur:
        head = head_position(conn)
        exists = cur.execute(
            "SELECT to_regclass('projection_positions') IS NOT NULL AS ok"
        ).fetchone()
        found: dict[str, dict[str, Any]] = {}
        if exists and exists["ok"]:
            for r in cur.execute(
                "SELECT name, position, updated_at, rebuilt_at FROM projection_positions"
            ).fetchall():
                found[r["name"]] = r
    out = []
    for name in catalog.NAMES:
        row = found.get(name, {})
        position = int(row.get("position") or 0)
        out.append(
            {
                "name": name,
                "position": position,
                "head": head,
                "lag": max(0, head - position),
                "updated_at": _iso(row.get("updated_at")),
                "rebuilt_at": _iso(row.get("rebuilt_at")),
            }
        )
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def wait_until_caught_up(runner: Runner, timeout: float = 30.0) -> bool:
    """Poll ``status`` until every projection's lag is 0 (tests and scripts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s["lag"] == 0 for s in runner.status()):
            return True
        time.sleep(0.1)
    return False


def _reshaped(conn: psycopg.Connection[Any], tables: Collection[Table]) -> bool:
    """Whether a read model's stored tables have other columns than its row types now
    declare (a release added a column): ``CREATE TABLE IF NOT EXISTS`` would keep the
    old shape and every write would fail."""
    for table in tables:
        found = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s)"
                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (table.name,),
            ).fetchall()
        ]
        if found and tuple(found) != table.fields:
            return True
    return False


def _reset(conn: psycopg.Connection[Any], name: str, tables: Collection[Table]) -> None:
    """Drop a reshaped read model's tables and set its position back to 0: read models
    are disposable, so it is rebuilt from the ledger (the initial build path) with the
    new columns filled from the events, exactly as a fresh database would."""
    logger.warning("read model %s changed shape: rebuilding it from the ledger", name)
    for table in tables:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table.name)))
    conn.execute(
        "UPDATE projection_positions SET position = 0, rebuilt_at = NULL WHERE name = %s",
        (name,),
    )
