"""The persistence seam: the library's PostgreSQL recorder, extended with the ledger index.

In the same transaction as the library's stored events this recorder takes the library's
``LOCK TABLE ... IN EXCLUSIVE MODE`` first (so positions follow commit order), then

* reads each person's chain head and gives the new events the next versions: versions
  are assigned under the lock, so concurrent writers to one person never collide and
  never retry (the ledger builds events with provisional versions 1..k per person),
* reads the ledger clock (``recorded_at`` never decreases with position),
* computes the new events' hashes,
* writes one ``ledger_events`` row per event and moves ``ledger_heads``,
* writes any number of tracking rows (one per Kafka topic-partition, or a projection)
  and any extra rows a caller hands in (e.g. a consumer's rejections),

so an event, its index row, its hash and the positions it consumed commit or vanish
together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg import Cursor
from psycopg.rows import DictRow

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
    versions: list[int] = field(default_factory=list)
    heads: dict[UUID, tuple[int, str]] = field(default_factory=dict)
    positions: list[int] = field(default_factory=list)
    recorded_at: datetime | None = None
    hashes: list[str] = field(default_factory=list)


COPY_INDEX = (
    "COPY ledger_events (position, event_id, patient_id, version, type, occurred_at,"
    " recorded_at, source_organisation, content_hash, hash, prev_hash) FROM STDIN"
)

UPSERT_HEADS = """
    INSERT INTO ledger_heads (patient_id, version, hash, position)
    SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bigint[])
    ON CONFLICT (patient_id) DO UPDATE
        SET version = excluded.version, hash = excluded.hash, position = excluded.position
"""


class LedgerRecorder(PostgresProcessRecorder):
    """Application recorder of the ledger; see the module docstring."""

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's default-mode insert, minus libpq pipeline mode.

        With pipeline mode a 2,000-event batch over a Unix socket (the embedded server)
        hung in ``Pipeline.sync`` with the server in ClientRead (the deadlock reported as
        psycopg issue #685); a batch here is a handful of statements, so pipelining gains
        little, and without it the index rows can be written with COPY.
        """
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return []
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        trackings: Sequence[Tracking] = kwargs.get("trackings", ())
        for tracking in trackings:
            self._insert_tracking(curs, tracking)
        extra_writes: Sequence[Callable[[Cursor[DictRow]], None]] = kwargs.get(
            "extra_writes", ()
        )
        for extra_write in extra_writes:
            extra_write(curs)
        write: LedgerWrite | None = kwargs.get("ledger_write")
        if write is not None and stored_events:
            self._place_after_heads(curs, stored_events, write)
        super()._insert_events(curs, stored_events, **kwargs)

    def _place_after_heads(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], write: LedgerWrite
    ) -> None:
        """Lock, read the heads, and renumber the stored events after them (in place: the
        library inserts this same list next, in this transaction)."""
        if not isinstance(stored_events, list) or len(stored_events) != len(write.pending):
            msg = "ledger write does not match the stored events"
            raise IntegrityError(msg)
        self._lock_table(curs)
        patients = list({p.patient_id for p in write.pending})
        write.heads = {
            r["patient_id"]: (r["version"], r["hash"])
            for r in curs.execute(
                "SELECT patient_id, version, hash FROM ledger_heads WHERE patient_id = ANY(%s)",
                (patients,),
            ).fetchall()
        }
        next_version = {patient: head[0] for patient, head in write.heads.items()}
        write.versions = []
        for i, (stored, pending) in enumerate(zip(stored_events, write.pending, strict=True)):
            version = next_version.get(pending.patient_id, 0) + 1
            next_version[pending.patient_id] = version
            write.versions.append(version)
            stored_events[i] = StoredEvent(stored.originator_id, version, stored.topic,
                                           stored.state)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        write: LedgerWrite | None = kwargs.get("ledger_write")
        if write is not None and ids:
            self._write_index(curs, list(ids), write)
        return ids

    def _write_index(self, curs: Cursor[DictRow], ids: list[int], write: LedgerWrite) -> None:
        if len(ids) != len(write.pending):
            msg = f"ledger index misaligned: {len(ids)} positions, {len(write.pending)} events"
            raise IntegrityError(msg)
        row = curs.execute("SELECT clock_timestamp() AS now").fetchone()
        assert row is not None
        recorded_at: datetime = row["now"]
        heads = dict(write.heads)
        prev_hashes: list[str | None] = []
        hashes: list[str] = []
        for position, version, pending in zip(ids, write.versions, write.pending, strict=True):
            prev_hash = heads[pending.patient_id][1] if pending.patient_id in heads else None
            digest = chain_hash(
                position=position,
                patient_id=pending.patient_id,
                version=version,
                recorded_at=recorded_at,
                prev_hash=prev_hash,
                content_digest=pending.content_hash,
            )
            heads[pending.patient_id] = (version, digest)
            prev_hashes.append(prev_hash)
            hashes.append(digest)
        pending_list = write.pending
        with curs.copy(COPY_INDEX) as copy:
            for position, version, pending, digest, prev in zip(
                ids, write.versions, pending_list, hashes, prev_hashes, strict=True
            ):
                copy.write_row((
                    position, pending.event_id, pending.patient_id, version, pending.type,
                    pending.occurred_at, recorded_at, pending.source_organisation,
                    pending.content_hash, digest, prev,
                ))
        last: dict[UUID, tuple[int, str, int]] = {}
        for position, version, pending, digest in zip(
            ids, write.versions, pending_list, hashes, strict=True
        ):
            last[pending.patient_id] = (version, digest, position)
        curs.execute(
            UPSERT_HEADS,
            (
                list(last),
                [v[0] for v in last.values()],
                [v[1] for v in last.values()],
                [v[2] for v in last.values()],
            ),
        )
        write.positions = ids
        write.recorded_at = recorded_at
        write.hashes = hashes
