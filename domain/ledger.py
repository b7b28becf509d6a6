"""The ledger application: validated, idempotent, chained batch appends, and reading back.

Batch semantics (documented in the README): every item is judged on its own. Valid new
events are recorded together in one transaction; an invalid item is reported as
``rejected`` with its index and field errors and does not stop the others; a repeated
``event_id`` with the same canonical content is a ``duplicate`` reporting the original
position; the same ``event_id`` with other content is a ``conflict``. Nothing is ever
half-applied: either all the batch's recordable events commit, or none do and the call
raises.

What is decided is decided in ``domain/judgement.py`` (items in, decisions out, no
database); this module reads what the judgement needs, writes what it decided, and
reads the ledger back (history, the log, verification).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from psycopg import Connection, Cursor
from psycopg.rows import DictRow

from domain import identity, merges
from domain.contract import EventType
from domain.database import head_position, library_env, migrate, resolve_url
from domain.integrity import Break, ChainLink, content_hash, first_break, head_digest
from domain.journey import Journey, RecordedEvent, journey_event
from domain.judgement import ItemResult as ItemResult
from domain.judgement import RawEnvelope as RawEnvelope
from domain.judgement import Status as Status
from domain.judgement import Valid, check, judge
from domain.recorder import LedgerRecorder, LedgerWrite, PendingEvent, StateTranscoder
from domain.settings import Settings, get_settings

ExtraWrite = Callable[[Cursor[DictRow]], None]

APPEND_ATTEMPTS = 5


@dataclass(slots=True)
class BatchResult:
    items: list[ItemResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"recorded": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
        for item in self.items:
            out[item.status] += 1
        return out


@dataclass(frozen=True, slots=True)
class VerifyReport:
    people: int
    events: int
    breaks: list[Break]
    position: int
    digest: str

    @property
    def ok(self) -> bool:
        return not self.breaks


class Ledger(Application[UUID]):
    """The care-journey ledger (stored-events table ``journeys_events``)."""

    name = "Journeys"

    def __init__(self, database_url: str, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.database_url = database_url
        env = library_env(database_url)
        env["APPLICATION_RECORDER_TOPIC"] = f"{LedgerRecorder.__module__}:LedgerRecorder"
        env["TRANSCODER_TOPIC"] = f"{StateTranscoder.__module__}:StateTranscoder"
        env.setdefault("POSTGRES_POOL_SIZE", "4")
        # The write transaction hashes and copies thousands of rows between statements;
        # the library's 5 s idle-in-transaction limit killed big batches under load.
        env.setdefault("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "60")
        super().__init__(env=env)
        assert isinstance(self.recorder, LedgerRecorder)
        self.store: LedgerRecorder = self.recorder
        with self.connection() as conn:
            migrate(conn)

    # -- connections -------------------------------------------------------------------

    def connection(self) -> Any:
        """A pooled connection (dict rows) from the library's datastore."""
        return self.store.datastore.get_connection()

    # -- writing -----------------------------------------------------------------------

    def append(self, item: RawEnvelope, **kwargs: Any) -> ItemResult:
        return self.append_batch([item], **kwargs).items[0]

    def append_batch(
        self,
        items: Sequence[RawEnvelope],
        *,
        allowed_organisations: Collection[str] | None = None,
        trackings: Sequence[Tracking] = (),
        extra_writes: Sequence[ExtraWrite] = (),
        on_judged: Callable[[Mapping[int, ItemResult]], None] | None = None,
    ) -> BatchResult:
        """Validate every item, then record all valid new events in one transaction.

        ``allowed_organisations`` (a publisher's ODS codes) refuses other sources;
        ``trackings`` and ``extra_writes`` commit in the same transaction as the events
        (Kafka offsets and rejection rows), and are written even if nothing is recorded.
        ``on_judged`` hears, before that transaction's writes (and again on each retry),
        the results of every item that will not be recorded (rejected, conflict,
        duplicate), so an extra write can store them atomically with the events.
        """
        results: dict[int, ItemResult] = {}
        valid = self._validate(items, allowed_organisations, results)
        judged = None if on_judged is None else (lambda out: on_judged({**results, **out}))
        for attempt in range(APPEND_ATTEMPTS):
            try:
                placed = self._place(valid, results, trackings, extra_writes, judged)
                break
            except IntegrityError:
                # A racing writer took a version or an event id first: judge again.
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
        results.update(placed)
        return BatchResult([results[i] for i in range(len(items))])

    def _validate(
        self,
        items: Sequence[RawEnvelope],
        allowed: Collection[str] | None,
        results: dict[int, ItemResult],
    ) -> list[Valid]:
        valid, rejected = check(items, allowed, datetime.now(UTC), self.settings.future_tolerance)
        results.update(rejected)
        return valid

    def _place(
        self,
        valid: list[Valid],
        results: dict[int, ItemResult],
        trackings: Sequence[Tracking],
        extra_writes: Sequence[ExtraWrite],
        judged: Callable[[dict[int, ItemResult]], None] | None = None,
    ) -> dict[int, ItemResult]:
        """Dedupe, check retractions and merges, assign versions, write; returns the items'
        results. A batch that can change a merge holds the merge lock from its reads to
        its commit (``domain/merges.py``); other batches read and write as before."""
        with self.connection() as conn:
            read = None if _has_merges(valid) else self._read(conn, valid)
            if read is None or read[3].trees:  # it may move a merge: again, under the lock
                with merges.serialised(conn):
                    return self._judge(*self._read(conn, valid), trackings, extra_writes, judged)
        return self._judge(*read, trackings, extra_writes, judged)

    def _read(
        self, conn: Connection[DictRow], valid: list[Valid]
    ) -> tuple[list[Valid], dict[str, UUID], dict[UUID, dict[str, Any]], merges.MergeState]:
        """Resolve the NHS numbers (merges' ones too), store merges by patient id, and load
        the prior events and merges the batch will be judged against."""
        patient_ids = identity.resolve(
            conn, [v.envelope.nhs_number for v in valid] + _merged_numbers(valid)
        )
        valid = [_stored_merge(v, patient_ids) for v in valid]
        targets = _retraction_targets(valid)
        existing = _existing_events(conn, [v.envelope.event_id for v in valid] + targets)
        people = [*patient_ids.values(), *(r["patient_id"] for r in existing.values())]
        return valid, patient_ids, existing, merges.load(conn, people, targets)

    def _judge(
        self,
        valid: list[Valid],
        patient_ids: Mapping[str, UUID],
        existing: Mapping[UUID, Mapping[str, Any]],
        state: merges.MergeState,
        trackings: Sequence[Tracking],
        extra_writes: Sequence[ExtraWrite],
        judged: Callable[[dict[int, ItemResult]], None] | None = None,
    ) -> dict[int, ItemResult]:
        """The judgement (``domain/judgement.judge``, pure: no database), then the writes
        of what it decided to record, with the caller's trackings and extra writes."""
        decided = judge(valid, patient_ids, existing, state)
        out = dict(decided.results)
        to_record = decided.to_record
        if judged is not None:
            judged(out)
        write = self._write(to_record, trackings, [*extra_writes, *state.writes()])
        by_event = {}
        for (v, _), position in zip(to_record, write.positions, strict=True):
            by_event[v.envelope.event_id] = position
            out[v.index] = ItemResult(
                v.index, str(v.envelope.event_id), "recorded", position=position
            )
        for index, item in list(out.items()):
            if item.status == "duplicate" and item.position is None:
                known = by_event[UUID(item.event_id)] if item.event_id else None
                out[index] = ItemResult(index, item.event_id, "duplicate", position=known)
        return out

    def _write(
        self,
        to_record: list[tuple[Valid, UUID]],
        trackings: Sequence[Tracking],
        extra_writes: Sequence[ExtraWrite],
    ) -> LedgerWrite:
        now = datetime.now(UTC)
        versions: dict[UUID, int] = {}  # provisional: the recorder places them after the head
        events: list[Journey.Recorded] = []
        pending: list[PendingEvent] = []
        for v, patient in to_record:
            version = versions.get(patient, 0) + 1
            versions[patient] = version
            events.append(journey_event(patient, version, v.content, now))
            env = v.envelope
            pending.append(
                PendingEvent(
                    env.event_id,
                    patient,
                    env.type,
                    env.occurred_at,
                    env.source.organisation,
                    v.content_hash,
                )
            )
        write = LedgerWrite(pending)
        # The event store directly: ``Application.save`` only adds, per event, a runtime
        # protocol check and hooks (snapshots, notify) this application does not use.
        self.events.put(events, ledger_write=write, trackings=trackings, extra_writes=extra_writes)
        return write

    # -- identity ----------------------------------------------------------------------

    def patient_id(self, nhs_number: str) -> UUID | None:
        """The person an NHS number identifies now: the survivor while a merge stands."""
        with self.connection() as conn:
            return merges.person_now(conn, nhs_number)

    def erase(self, nhs_number: str) -> UUID | None:
        """Erase the person the number identifies: with standing merges, every NHS number
        that resolves to the same survivor goes (``merges.erase_person``)."""
        with self.connection() as conn:
            return merges.erase_person(conn, nhs_number)

    # -- reading -----------------------------------------------------------------------

    def history(self, patient_id: UUID, *, known_at: datetime | None = None) -> list[RecordedEvent]:
        """The person's recorded events in ledger order, optionally as known at a time.

        A survivor's history includes the events of everyone merged into it by merges
        standing now (or, with ``known_at``, standing as the ledger knew at that time).
        """
        query = SELECT_RECORDED + " WHERE l.patient_id = ANY(%s)"
        with self.connection() as conn:
            params: list[Any] = [merges.family(conn, patient_id, known_at)]
            if known_at is not None:
                query += " AND l.recorded_at <= %s"
                params.append(known_at)
            rows = conn.execute(query + " ORDER BY l.position", params).fetchall()
        return [self._recorded(r) for r in rows]

    def read_log(self, after: int, limit: int) -> list[RecordedEvent]:
        """Events after a position in position order (gaps in positions are normal)."""
        with self.connection() as conn:
            rows = conn.execute(
                SELECT_RECORDED + " WHERE l.position > %s ORDER BY l.position LIMIT %s",
                (after, limit),
            ).fetchall()
        return [self._recorded(r) for r in rows]

    def event_status(self, event_id: UUID) -> dict[str, Any] | None:
        with self.connection() as conn:
            row: dict[str, Any] | None = conn.execute(
                "SELECT position, patient_id, type, occurred_at, recorded_at,"
                " source_organisation, hash FROM ledger_events WHERE event_id = %s",
                (event_id,),
            ).fetchone()
            return row

    def preview(
        self, items: Sequence[RawEnvelope], *, allowed_organisations: Collection[str] | None = None
    ) -> BatchResult:
        """What ``append_batch`` would answer for ``items``, writing nothing (a dry run):
        the same checks and the same judgement (``domain/judgement``: duplicates,
        conflicts, retractions, merges) against what is recorded now; what would be
        recorded is ``recorded`` without a position. Identities are looked up, never
        registered: an NHS number not seen before stands for a new person."""
        results: dict[int, ItemResult] = {}
        valid = self._validate(items, allowed_organisations, results)
        with self.connection() as conn:
            numbers = {*(v.envelope.nhs_number for v in valid), *_merged_numbers(valid)}
            known = {n: identity.lookup(conn, n) for n in numbers}
            patient_ids = {n: p if p is not None else uuid4() for n, p in known.items()}
            valid = [_stored_merge(v, patient_ids) for v in valid]
            targets = _retraction_targets(valid)
            existing = _existing_events(conn, [v.envelope.event_id for v in valid] + targets)
            people = [*patient_ids.values(), *(r["patient_id"] for r in existing.values())]
            state = merges.load(conn, people, targets)
        decided = judge(valid, patient_ids, existing, state)
        results.update(decided.results)
        for v, _ in decided.to_record:
            results[v.index] = ItemResult(v.index, str(v.envelope.event_id), "recorded")
        return BatchResult([results[i] for i in range(len(items))])

    def head_position(self) -> int:
        with self.connection() as conn:
            return head_position(conn)

    def counts_by_type(self) -> dict[str, int]:
        with self.connection() as conn:
            rows = conn.execute(
                "SELECT type, count(*) AS n FROM ledger_events GROUP BY type ORDER BY type"
            ).fetchall()
        return {r["type"]: r["n"] for r in rows}

    def people(self) -> int:
        with self.connection() as conn:
            return int(conn.execute("SELECT count(*) AS n FROM ledger_heads").fetchone()["n"])

    def _recorded(self, row: Mapping[str, Any]) -> RecordedEvent:
        event = self._decode(row)
        return RecordedEvent(
            position=row["position"],
            event_id=row["event_id"],
            patient_id=row["patient_id"],
            version=row["version"],
            type=event.type,
            schema_version=event.schema_version,
            occurred_at=datetime.fromisoformat(event.occurred_at),
            recorded_at=row["recorded_at"],
            source=event.source,
            recorded_by=event.recorded_by,
            data=event.data,
            hash=row["hash"],
            prev_hash=row["prev_hash"],
        )

    def _decode(self, row: Mapping[str, Any]) -> Journey.Recorded:
        stored = StoredEvent(row["patient_id"], row["version"], row["topic"], bytes(row["state"]))
        event = self.mapper.to_domain_event(stored)
        assert isinstance(event, Journey.Recorded)
        return event

    # -- integrity ---------------------------------------------------------------------

    def verify(self, patient_id: UUID) -> Break | None:
        """Recompute one person's chain from storage; the first broken link or None."""
        with self.connection() as conn:
            return self._verify_person(conn, patient_id)

    def verify_all(self, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Every person's chain, plus every stored event having its index row."""
        breaks: list[Break] = []
        events = 0
        with self.connection() as conn:
            people = [
                r["patient_id"]
                for r in conn.execute(
                    "SELECT patient_id FROM ledger_heads UNION "
                    "SELECT DISTINCT patient_id FROM ledger_events ORDER BY 1"
                ).fetchall()
            ]
            for patient in people:
                found = self._verify_person(conn, patient)
                if found is not None:
                    breaks.append(found)
                if progress is not None:
                    progress(1)
            orphans = conn.execute(
                f"SELECT s.originator_id, s.originator_version, s.notification_id"
                f" FROM {self.store.events_table_name} s LEFT JOIN ledger_events l"
                " ON l.position = s.notification_id WHERE l.position IS NULL LIMIT 10"
            ).fetchall()
            for o in orphans:
                breaks.append(
                    Break(
                        o["originator_id"],
                        None,
                        o["notification_id"],
                        f"stored event version {o['originator_version']} has no ledger index row",
                    )
                )
            events = int(conn.execute("SELECT count(*) AS n FROM ledger_events").fetchone()["n"])
        position, digest = self.digest()
        return VerifyReport(len(people), events, breaks, position, digest)

    def _verify_person(self, conn: Connection[DictRow], patient_id: UUID) -> Break | None:
        rows = conn.execute(
            SELECT_RECORDED.replace(" JOIN ", " LEFT JOIN ")
            + " WHERE l.patient_id = %s ORDER BY l.version",
            (patient_id,),
        ).fetchall()
        head = conn.execute(
            "SELECT version, hash FROM ledger_heads WHERE patient_id = %s", (patient_id,)
        ).fetchone()
        links = []
        for row in rows:
            content = None
            if row["state"] is not None:
                event = self._decode(row)
                content = event.content()
                mismatch = _index_mismatch(row, content)
                if mismatch:
                    return Break(
                        patient_id,
                        row["event_id"],
                        row["position"],
                        f"index row disagrees with stored content: {mismatch}",
                    )
            links.append(
                ChainLink(
                    row["position"],
                    row["event_id"],
                    patient_id,
                    row["version"],
                    row["recorded_at"],
                    row["hash"],
                    row["prev_hash"],
                    content,
                )
            )
        return first_break(patient_id, links, (head["version"], head["hash"]) if head else None)

    def digest(self, at_position: int | None = None) -> tuple[int, str]:
        """The ledger's head digest at a position (default: now), as ``(position, hex)``."""
        with self.connection() as conn:
            if at_position is None:
                at_position = head_position(conn)
            rows = conn.execute(
                "SELECT DISTINCT ON (patient_id) patient_id, version, hash FROM ledger_events"
                " WHERE position <= %s ORDER BY patient_id, version DESC",
                (at_position,),
            )
            heads: Iterator[tuple[UUID, int, str]] = (
                (r["patient_id"], r["version"], r["hash"]) for r in rows
            )
            return at_position, head_digest(heads)


SELECT_RECORDED = (
    "SELECT l.position, l.event_id, l.patient_id, l.version, l.type, l.occurred_at,"
    " l.recorded_at, l.source_organisation, l.content_hash, l.hash, l.prev_hash,"
    " s.topic, s.state"
    " FROM ledger_events l JOIN journeys_events s"
    " ON s.originator_id = l.patient_id AND s.originator_version = l.version"
)


def open_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger on the configured server, or on the embedded one (README, "Configuration")."""
    settings = settings or get_settings()
    url = resolve_url(settings.database_url, settings.data_dir)
    return Ledger(url, settings)


def _retraction_targets(valid: list[Valid]) -> list[UUID]:
    out = []
    for v in valid:
        if v.envelope.type == EventType.EVENT_RETRACTED:
            out.append(UUID(str(v.content["data"]["retracted_event_id"])))
    return out


def _has_merges(valid: Sequence[Valid]) -> bool:
    """A batch can change merges if it holds one, or if it retracts within a merge's
    retraction tree (``MergeState.trees``, known once the batch's targets are read)."""
    return any(v.envelope.type == merges.MERGE_TYPE for v in valid)


def _merged_numbers(valid: Sequence[Valid]) -> list[str]:
    return [
        str(v.content["data"]["merged_nhs_number"])
        for v in valid
        if v.envelope.type == merges.MERGE_TYPE
    ]


def _stored_merge(v: Valid, patient_ids: Mapping[str, UUID]) -> Valid:
    """A merge is stored (and hashed) naming the merged person's patient id, never the
    NHS number the publisher sent (docs/adt.md, "Person merges"); other items pass through."""
    if v.envelope.type != merges.MERGE_TYPE:
        return v
    data = dict(v.content["data"])
    data["merged_patient_id"] = str(patient_ids[data.pop("merged_nhs_number")])
    content = {**v.content, "data": data}
    return Valid(v.index, v.envelope, content, content_hash(content))


def _existing_events(conn: Connection[DictRow], ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT event_id, patient_id, content_hash, position FROM ledger_events"
        " WHERE event_id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {r["event_id"]: r for r in rows}


def _index_mismatch(row: Mapping[str, Any], content: Mapping[str, Any]) -> str | None:
    """The index columns are derived from the stored content; a difference is tampering."""
    if str(row["event_id"]) != content["event_id"]:
        return "event_id"
    if row["type"] != content["type"]:
        return "type"
    if row["occurred_at"] != datetime.fromisoformat(content["occurred_at"]):
        return "occurred_at"
    if row["source_organisation"] != content["source"]["organisation"]:
        return "source_organisation"
    if row["content_hash"] != content_hash(content):
        return "content_hash"
    return None
