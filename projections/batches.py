"""One batch of the catch-up: whose rows to recompute, their folds, and the writes.

Shared by the runner (catching up) and the rebuild (catching the new tables up before
the swap), so both replace a person's rows in exactly the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg

from projections import catalog, fold, log
from projections.fold import DEFAULT_CONFIG, FoldConfig
from projections.tables import Table


@dataclass(slots=True)
class Folded:
    """The rows of a set of people, ready to replace theirs."""

    people: list[UUID]  # everyone whose rows are replaced (members of merges get none)
    rows: dict[str, list[Any]]


def fold_people(
    conn: psycopg.Connection[Any],
    touched: Iterable[UUID],
    upto: int,
    names: Collection[str],
    config: FoldConfig = DEFAULT_CONFIG,
    loads: log.Loads = log.plain_loads,
    kept: log.Kept | None = None,
) -> Folded:
    """Fold everyone ``touched`` (and anyone a recorded merge links to them) over their
    complete streams up to ``upto``: the rows to write for the named projections.
    ``kept`` (the runner's) saves re-reading the streams it already holds."""
    touched = set(touched)
    people, linked = log.merge_component(conn, touched) if touched else (set(), False)
    if kept is None:
        streams = log.streams(conn, people, upto, loads)
    else:
        streams = kept.streams(conn, people, upto, loads)
    if not linked:
        groups = streams  # no merge links anyone here: each stream is one person
    else:
        groups = fold.people(e for events in streams.values() for e in events)
    rows: dict[str, list[Any]] = {t.name: [] for t in catalog.tables(names)}
    for root, events in groups.items():
        person = fold.prepare(events, root, config)
        for name, found in catalog.person_rows(person, names).items():
            rows[name].extend(found)
    return Folded(sorted(people), rows)


def write_rows(
    conn: psycopg.Connection[Any], folded: Folded, tables: Sequence[Table], suffix: str = ""
) -> None:
    """Replace the people's rows (inside the caller's transaction)."""
    with conn.cursor() as cur:
        for table in tables:
            name = table.name + suffix
            table.delete_people(cur, folded.people, name)
            table.copy_rows(cur, folded.rows[table.name], name)


def touched_between(conn: psycopg.Connection[Any], after: int, upto: int) -> list[UUID]:
    rows = conn.execute(
        "SELECT DISTINCT patient_id FROM ledger_events WHERE position > %s AND position <= %s",
        (after, upto),
    ).fetchall()
    return [r[0] for r in rows]


def batch_end(conn: psycopg.Connection[Any], after: int, size: int) -> int | None:
    """The position ending the next batch of at most ``size`` events after ``after``."""
    row = conn.execute(
        "SELECT max(position) FROM (SELECT position FROM ledger_events WHERE position > %s"
        " ORDER BY position LIMIT %s) b",
        (after, size),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])
