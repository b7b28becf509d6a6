"""The persistence seam: the library's PostgreSQL recorder, extended with the ledger index.

In one transaction this recorder writes any number of tracking rows (one per Kafka
topic-partition, or a projection) and any extra rows a caller hands in (e.g. a
consumer's rejections), then takes the library's ``LOCK TABLE ... IN EXCLUSIVE MODE``
(so positions follow commit order) and, holding it,

* reads each person's chain head and gives the new events the next versions: versions
  are assigned under the lock, so concurrent writers to one person never collide and
  never retry (the ledger builds events with provisional versions 1..k per person),
* draws the positions from the stored-events table's own sequence and reads the ledger
  clock (``recorded_at`` never decreases with position),
* computes the new events' hashes,
* writes the library's stored events and one ``ledger_events`` row per event with
  binary COPY (psycopg's C row formatter: the library's composite-array INSERT formats
  every state as hex text in Python, under the lock; moving to COPY took the locked
  time of a 500-event batch from 28.5 to 16.9 ms), adds the events to the Merkle tree
  (``domain/transparency.py``: O(log n) hashes and one read), and moves ``ledger_heads``,

so an event, its index row, its hash and the positions it consumed commit or vanish
together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    OperationalError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg import Connection, Cursor, sql
from psycopg.rows import DictRow, tuple_row

from domain import transparency
from domain.database import SESSION_OPTIONS
from domain.integrity import chain_hash


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """What the ledger knows of an event before the database has placed it."""

    event_id: UUID
    patient_id: UUID
    type: str
    occurred_at: datetime
    source_organisation: str
    content_hash: str


@dataclass(slots=True)
class LedgerWrite:
    """One append: the pending events (aligned with the stored events) and, after the
    commit, where the database placed them."""

    pending: list[PendingEvent]
    positions: list[int] = field(default_factory=list)


COPY_INDEX = (
    "COPY ledger_events (position, event_id, patient_id, version, type, occurred_at,"
    " recorded_at, source_organisation, content_hash, hash, prev_hash)"
    " FROM STDIN (FORMAT BINARY)"
)
INDEX_TYPES = (
    "int8",
    "uuid",
    "uuid",
    "int8",
    "text",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",
    "text",
)
EVENT_TYPES = ("uuid", "int8", "text", "bytea", "int8")

CREATE_LOCK = 0x0CA3E_7AB1  # pg_advisory_lock key: "the library's tables are being created"

HEADS = "SELECT patient_id, version, hash FROM ledger_heads WHERE patient_id = ANY(%s)"

# Positions from the stored-events table's own sequence (what its column default would
# have drawn), in order, and the ledger clock; taken under the table lock.
PLACES = (
    "SELECT array(SELECT nextval(%s::regclass) FROM generate_series(1, %s) ORDER BY 1),"
    " clock_timestamp()"
)

UPSERT_HEADS = """
    INSERT INTO ledger_heads (patient_id, version, hash, position)
    SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bigint[])
    ON CONFLICT (patient_id) DO UPDATE
        SET version = excluded.version, hash = excluded.hash, position = excluded.position
"""


class StateTranscoder(JSONTranscoder):
    """The library's JSON transcoder, encoding with orjson (1.7 times as fast on
    recorded states; the same layout: registered types, such as the event's
    ``timestamp``, still become ``{"_type_": ..., "_data_": ...}``);
    decoding stays the library's. orjson writes a ``UUID`` as plain text, where the
    library would register it: fine for ``Journey.Recorded``, whose state holds JSON
    values and the library's ``timestamp`` only (tests/test_ledger.py checks the round
    trip)."""

    OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=self._encode_obj, option=self.OPTIONS)


class LedgerRecorder(PostgresProcessRecorder):
    """Application recorder of the ledger; see the module docstring."""

    # Off only in bench/append.py, to measure what the tree costs in the same run: a
    # ledger appended without it fails ``verify`` (events with no leaf).
    maintain_tree = True

    def __init__(self, datastore: PostgresDatastore, *args: Any, **kwargs: Any) -> None:
        # Before the library's recorder opens the pool, so every pooled connection is
        # made with the services' session options.
        assert isinstance(datastore.pool.kwargs, dict)
        datastore.pool.kwargs["options"] = SESSION_OPTIONS
        super().__init__(datastore, *args, **kwargs)
        table = sql.Identifier(self.datastore.schema, self.events_table_name)
        self._copy_events = sql.SQL(
            "COPY {} (originator_id, originator_version, topic, state, notification_id)"
            " FROM STDIN (FORMAT BINARY)"
        ).format(table)
        self._sequence_of = sql.SQL("SELECT pg_get_serial_sequence({}, 'notification_id')").format(
            sql.Literal(f"{self.datastore.schema}.{self.events_table_name}")
        )
        self._sequence: str | None = None

    def create_table(self) -> None:
        """The library's, one process at a time: two processes starting together (the
        API's workers) raced on its ``CREATE OR REPLACE FUNCTION`` ("tuple concurrently
        updated")."""
        with self.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (CREATE_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (CREATE_LOCK,))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Trackings, extra writes, then the events and their index rows, in one
        transaction (no libpq pipeline mode: with it a 2,000-event batch over a Unix
        socket hung in ``Pipeline.sync``, psycopg issue #685).

        A ledger append (``ledger_write``) is placed by ``_record``; anything else goes
        the library's way (lock, notify, insert).
        """
        write: LedgerWrite | None = kwargs.get("ledger_write")
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            single = kwargs.get("tracking")  # the library's own (process applications)
            for tracking in (*kwargs.get("trackings", ()), *([single] if single else [])):
                self._insert_tracking(curs, tracking)
            extra_writes: Sequence[Callable[[Cursor[DictRow]], None]] = kwargs.get(
                "extra_writes", ()
            )
            for extra_write in extra_writes:
                extra_write(curs)
            if not stored_events:
                return []
            if write is None:
                self._insert_stored_events(curs, stored_events)
                return self._fetch_ids_after_insert_events(curs, stored_events)
            return self._record(conn, curs, stored_events, write)

    def _record(
        self,
        conn: Connection[DictRow],
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        write: LedgerWrite,
    ) -> list[int]:
        """Under the table lock: read the heads, give the events the next versions and
        the next positions, hash the chain, COPY the stored events and the index rows
        (binary), move the heads. Everything that can happen before the lock (validation,
        content hashes, the library's encoding) already has: the lock is held only for
        what needs the positions, so concurrent appends overlap everywhere else."""
        pending = write.pending
        if len(stored_events) != len(pending):
            msg = "ledger write does not match the stored events"
            raise IntegrityError(msg)
        if self._sequence is None:
            row = curs.execute(self._sequence_of).fetchone()
            assert row is not None
            self._sequence = next(iter(row.values()))
        self._lock_table(curs)
        self._notify_channel(curs)
        with conn.cursor(row_factory=tuple_row) as rows:
            patients = list({p.patient_id for p in pending})
            tip: dict[UUID, int] = {}  # each person's last version and link, as we go
            links: dict[UUID, str] = {}
            for patient, version, link in rows.execute(HEADS, (patients,)):
                tip[patient], links[patient] = version, link
            placed = rows.execute(PLACES, (self._sequence, len(pending))).fetchone()
        assert placed is not None
        ids: list[int] = placed[0]
        recorded_at: datetime = placed[1]
        versions: list[int] = []
        hashes: list[str] = []
        prev_hashes: list[str | None] = []
        last_position: dict[UUID, int] = {}
        for position, p in zip(ids, pending, strict=True):
            version = tip.get(p.patient_id, 0) + 1
            prev = links.get(p.patient_id)
            digest = chain_hash(
                position=position,
                patient_id=p.patient_id,
                version=version,
                recorded_at=recorded_at,
                prev_hash=prev,
                content_digest=p.content_hash,
            )
            tip[p.patient_id] = version
            links[p.patient_id] = digest
            last_position[p.patient_id] = position
            versions.append(version)
            hashes.append(digest)
            prev_hashes.append(prev)
        with curs.copy(self._copy_events) as copy:
            copy.set_types(EVENT_TYPES)
            for stored, version, position in zip(stored_events, versions, ids, strict=True):
                copy.write_row(
                    (stored.originator_id, version, stored.topic, stored.state, position)
                )
        with curs.copy(COPY_INDEX) as copy:
            copy.set_types(INDEX_TYPES)
            for position, version, p, digest, prev in zip(
                ids, versions, pending, hashes, prev_hashes, strict=True
            ):
                copy.write_row(
                    (
                        position,
                        p.event_id,
                        p.patient_id,
                        version,
                        p.type,
                        p.occurred_at,
                        recorded_at,
                        p.source_organisation,
                        p.content_hash,
                        digest,
                        prev,
                    )
                )
        if self.maintain_tree:  # the Merkle tree's new leaves and nodes
            transparency.append(curs, ids, hashes)
        moved = list(last_position)
        curs.execute(
            UPSERT_HEADS,
            (
                moved,
                [tip[x] for x in moved],
                [links[x] for x in moved],
                [last_position[x] for x in moved],
            ),
        )
        write.positions = ids
        return ids
