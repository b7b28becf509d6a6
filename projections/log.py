"""Reading the ledger's events for folding: plain SQL over the ledger index and the
library's stored events, decoded straight to ``RecordedEvent``.

Why not ``Ledger.read_log``: it decodes through the library's mapper one aggregate event
at a time, which is right for a few events and about five times slower for a rebuild of
millions (bench/rebuild.py measures both). The stored state is the library's JSON of the
envelope content; when the application is configured with a cipher or a compressor,
``state_loader`` undoes them first, so the fast path reads exactly what the mapper reads.
Times come from the ledger index (``occurred_at`` is checked against the content by
``verify``), in UTC.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from uuid import UUID

import orjson
import psycopg
from psycopg import sql

from domain.database import SESSION_OPTIONS, head_position
from domain.journey import RecordedEvent

Loads = Callable[[bytes], dict[str, Any]]


def plain_loads(state: bytes) -> dict[str, Any]:
    """A stored state as the library's JSON decoder reads it, with orjson (3 times as
    fast on recorded states: decoding was a sixth of a runner step). orjson would read
    an integer beyond 64 bits as a float, but no state holds one: the contract's numbers
    are floats and the state transcoder (orjson) refuses such an integer
    (tests/test_state_loads.py). What orjson refuses that ``json`` reads (an escaped
    lone surrogate) still goes through ``json``."""
    try:
        out: dict[str, Any] = orjson.loads(state)
    except orjson.JSONDecodeError:
        out = json.loads(state)
    return out


COLUMNS = (
    "l.position, l.event_id, l.patient_id, l.version, l.occurred_at, l.recorded_at,"
    " l.hash, l.prev_hash, s.state"
)
JOIN = (
    " FROM ledger_events l JOIN journeys_events s"
    " ON s.originator_id = l.patient_id AND s.originator_version = l.version"
)
# One person's stream (or several people's) up to a position, each stream in ledger order.
STREAMS = (
    "SELECT "
    + COLUMNS
    + JOIN
    + " WHERE l.patient_id = ANY(%s) AND l.position <= %s ORDER BY l.patient_id, l.version"
)
# Streams after a position (what a person kept by ``Kept`` lacks), each in ledger order.
TAILS = (
    "SELECT "
    + COLUMNS
    + JOIN
    + " WHERE l.patient_id = ANY(%s) AND l.position > %s AND l.position <= %s"
    " ORDER BY l.patient_id, l.version"
)
# The whole log in ledger order (the baseline a rebuild is measured against).
LOG = "SELECT " + COLUMNS + JOIN + " WHERE l.position > %s AND l.position <= %s ORDER BY l.position"
# Everyone's streams up to a position, person after person: what a rebuild reads
# (optionally one range of patient ids, for one of several rebuild workers).
ALL_STREAMS = (
    "SELECT " + COLUMNS + JOIN + " WHERE l.position <= %s AND NOT (l.patient_id = ANY(%s))"
    " AND l.patient_id >= coalesce(%s::uuid, '00000000-0000-0000-0000-000000000000')"
    " AND (%s::uuid IS NULL OR l.patient_id < %s::uuid)"
    " ORDER BY l.patient_id, l.version"
)


def state_loader(mapper: Any | None = None) -> Loads:
    """How to turn a stored ``state`` into the content dict: plain JSON, unless the
    application's mapper (``Ledger.mapper``) encrypts or compresses."""
    cipher = getattr(mapper, "cipher", None)
    compressor = getattr(mapper, "compressor", None)
    if cipher is None and compressor is None:
        return plain_loads

    def loads(state: bytes) -> dict[str, Any]:
        if cipher is not None:
            state = cipher.decrypt(state)
        if compressor is not None:
            state = compressor.decompress(state)
        return dict(plain_loads(state))

    return loads


def decoder(loads: Loads = plain_loads) -> Callable[[Sequence[Any]], RecordedEvent]:
    """A function from one row of ``COLUMNS`` to the typed event."""

    def decode(row: Sequence[Any]) -> RecordedEvent:
        position, event_id, patient_id, version, occurred_at, recorded_at, hash_, prev, state = row
        c = loads(state)
        return RecordedEvent(
            position,
            event_id,
            patient_id,
            version,
            c["type"],
            c["schema_version"],
            occurred_at,
            recorded_at,
            c["source"],
            c["recorded_by"],
            c["data"],
            hash_,
            prev,
        )

    return decode


def connect(database_url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    """A connection for projection work: tuple rows, times in UTC."""
    return psycopg.connect(
        database_url, autocommit=autocommit, options=f"-c TimeZone=UTC {SESSION_OPTIONS}"
    )


def streams(
    conn: psycopg.Connection[Any],
    people: Iterable[UUID],
    upto: int,
    loads: Loads = plain_loads,
    chunk: int = 2_000,
) -> dict[UUID, list[RecordedEvent]]:
    """Each person's events up to position ``upto`` (inclusive), in ledger order."""
    decode = decoder(loads)
    out: dict[UUID, list[RecordedEvent]] = {}
    todo = list(people)
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        with conn.cursor(binary=True) as cur:
            cur.execute(STREAMS, (part, upto))
            for row in cur:
                event = decode(row)
                out.setdefault(event.patient_id, []).append(event)
    return out


def tails(
    conn: psycopg.Connection[Any],
    people: Sequence[UUID],
    after: int,
    upto: int,
    loads: Loads = plain_loads,
) -> dict[UUID, list[RecordedEvent]]:
    """Each person's events with ``after < position <= upto``, in ledger order (a range
    of the position index: as cheap for a person with 17,000 events as for one with 2)."""
    decode = decoder(loads)
    out: dict[UUID, list[RecordedEvent]] = {}
    with conn.cursor(binary=True) as cur:
        cur.execute(TAILS, (list(people), after, upto))
        for row in cur:
            event = decode(row)
            out.setdefault(event.patient_id, []).append(event)
    return out


class Kept:
    """The decoded streams of the people the runner folded lately, so that a step reads
    only what each person gained since (issue 16: a hot person is in almost every step,
    and re-reading and decoding their whole history was a quarter of each step's cost).

    A kept stream is every event of the person up to the position it was read to; the
    ledger only appends, and positions follow commit order, so the events after that
    position are all it can lack. ``streams`` answers exactly what ``streams`` above
    would, whatever was kept: a person kept beyond ``upto`` (a projection set back) is
    read again. Memory is bounded by ``limit`` events, the least recently used people
    going first; a person with more events than that is not kept.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self.size = 0
        self._kept: OrderedDict[UUID, tuple[int, list[RecordedEvent]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def streams(
        self,
        conn: psycopg.Connection[Any],
        people: Iterable[UUID],
        upto: int,
        loads: Loads = plain_loads,
    ) -> dict[UUID, list[RecordedEvent]]:
        """Each person's events up to ``upto`` (inclusive), in ledger order."""
        whole: list[UUID] = []
        since: dict[int, list[UUID]] = {}  # read to -> the kept people read that far
        for person in people:
            found = self._kept.get(person)
            if found is None or found[0] > upto:
                whole.append(person)
            else:
                since.setdefault(found[0], []).append(person)
        out = streams(conn, whole, upto, loads) if whole else {}
        for read_to, kept in since.items():
            new = tails(conn, kept, read_to, upto, loads) if read_to < upto else {}
            for person in kept:
                out[person] = self._kept[person][1] + new.get(person, [])
        for person in (*whole, *(p for kept in since.values() for p in kept)):
            self._keep(person, upto, out.get(person, []))
        return out

    def _keep(self, person: UUID, upto: int, events: list[RecordedEvent]) -> None:
        old = self._kept.pop(person, None)
        if old is not None:
            self.size -= len(old[1])
        if not events or len(events) > self.limit:
            return
        self._kept[person] = (upto, events)
        self.size += len(events)
        while self.size > self.limit:
            _, (_, dropped) = self._kept.popitem(last=False)
            self.size -= len(dropped)


def read_log(
    conn: psycopg.Connection[Any],
    after: int,
    upto: int,
    loads: Loads = plain_loads,
    itersize: int = 10_000,
) -> Iterator[RecordedEvent]:
    """The log in ledger order, ``after < position <= upto``, streamed with a
    server-side cursor (the caller's transaction holds it)."""
    decode = decoder(loads)
    with conn.cursor(name="projection_log", binary=True) as cur:
        cur.itersize = itersize
        cur.execute(LOG, (after, upto))
        for row in cur:
            yield decode(row)


def all_streams(
    conn: psycopg.Connection[Any],
    upto: int,
    excluded: Sequence[UUID],
    loads: Loads = plain_loads,
    itersize: int = 10_000,
    *,
    lo: UUID | None = None,
    hi: UUID | None = None,
) -> Iterator[list[RecordedEvent]]:
    """Every person's stream up to ``upto`` (but the ``excluded``; only patient ids in
    ``[lo, hi)`` when given), one list per person, streamed with a server-side cursor
    (the caller's transaction holds it)."""
    decode = decoder(loads)
    with conn.cursor(name="projection_streams", binary=True) as cur:
        cur.itersize = itersize
        cur.execute(ALL_STREAMS, (upto, list(excluded), lo, hi, hi))
        current: list[RecordedEvent] = []
        for row in cur:
            event = decode(row)
            if current and current[0].patient_id != event.patient_id:
                yield current
                current = []
            current.append(event)
        if current:
            yield current


def head(conn: psycopg.Connection[Any]) -> int:
    """The ledger's highest position (0 when empty)."""
    return head_position(conn)


def merge_component(
    conn: psycopg.Connection[Any], people: Iterable[UUID]
) -> tuple[set[UUID], bool]:
    """Everyone linked to ``people`` by any merge the ledger ever recorded (standing or
    not), and whether any merge links them at all: the folds decide from the events
    which merges stand at the position read. (The second answer matters when every
    member of a merge was touched: the set is then no larger than ``people``, yet their
    streams must still be folded as one person.)"""
    found = set(people)
    frontier = list(found)
    linked = False
    while frontier:
        rows = conn.execute(
            sql.SQL(
                "SELECT merged_patient_id, survivor_patient_id FROM person_merges"
                " WHERE merged_patient_id = ANY(%s) OR survivor_patient_id = ANY(%s)"
            ),
            (frontier, frontier),
        ).fetchall()
        linked = linked or bool(rows)
        frontier = [p for row in rows for p in row if p not in found]
        found.update(frontier)
    return found, linked


def merged_people(conn: psycopg.Connection[Any]) -> list[UUID]:
    """Everyone who takes part in any recorded merge (rebuilds fold them apart)."""
    rows = conn.execute(
        "SELECT merged_patient_id FROM person_merges UNION SELECT survivor_patient_id"
        " FROM person_merges"
    ).fetchall()
    return [r[0] for r in rows]
