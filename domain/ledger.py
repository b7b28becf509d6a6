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

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from psycopg import Connection, Cursor
from psycopg.rows import DictRow

from domain import authority, identity, merges, note, verification
from domain.contract import EventType, utc_text
from domain.database import (
    head_position,
    library_env,
    may_create_library_tables,
    migrate,
    resolve_url,
)
from domain.integrity import Break, content_hash
from domain.journey import Journey, RecordedEvent, stored_events
from domain.judgement import Checked, Valid, check_batch, judge
from domain.judgement import ItemResult as ItemResult
from domain.judgement import RawEnvelope as RawEnvelope
from domain.judgement import Status as Status
from domain.recorder import LedgerRecorder, LedgerWrite, PendingEvent, StateTranscoder
from domain.settings import Settings, get_settings
from domain.verification import VerifyReport as VerifyReport

ExtraWrite = Callable[[Cursor[DictRow]], None]

APPEND_ATTEMPTS = 5

# After a batch met a recorded event id (a duplicate, a conflict, or a write refused by
# the unique index), this many next batches look their ids up first (``_existing``).
PROBE_AFTER_DUPLICATES = 16


class _Unprobed(Exception):
    """An unprobed judgement refused an item: judge it again with its id looked up."""


@dataclass(slots=True)
class BatchResult:
    items: list[ItemResult] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"recorded": 0, "duplicate": 0, "conflict": 0, "rejected": 0}
        for item in self.items:
            out[item.status] += 1
        return out


@dataclass(frozen=True, slots=True)
class _Read:
    """What a batch is judged against (``Ledger._read``)."""

    valid: list[Valid]
    patient_of: dict[int, UUID]  # item index -> patient id named (before merges)
    existing: dict[UUID, dict[str, Any]]
    state: merges.MergeState
    links: dict[int, tuple[UUID, UUID]]  # item index -> (local id's person, NHS person)
    problems: dict[int, str]  # item index -> why its identifiers cannot be used


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
        # The application role may not run the library's DDL on the owner's table.
        env["CREATE_TABLE"] = "yes" if may_create_library_tables(database_url) else "no"
        super().__init__(env=env)
        assert isinstance(self.recorder, LedgerRecorder)
        self.store: LedgerRecorder = self.recorder
        # Batches left that look up every event id before judging (see ``_place``).
        self._probing = 0
        with self.connection() as conn:
            migrate(conn, self.store.events_table_name)

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
        authority_exempt: bool = False,
    ) -> BatchResult:
        """Validate every item, then record all valid new events in one transaction.

        ``allowed_organisations`` (a publisher's ODS codes) refuses other sources;
        ``trackings`` and ``extra_writes`` commit in the same transaction as the events
        (Kafka offsets and rejection rows), and are written even if nothing is recorded.
        ``on_judged`` hears, before that transaction's writes (and again on each retry),
        the results of every item that will not be recorded (rejected, conflict,
        duplicate), so an extra write can store them atomically with the events.
        Every item is held to the authority rules (``domain/authority.py``) unless
        ``authority_exempt`` (an administrator's HTTP key).
        """
        return self.append_checked(
            self.check(items, allowed_organisations),
            trackings=trackings,
            extra_writes=extra_writes,
            on_judged=on_judged,
            authority_exempt=authority_exempt,
        )

    def check(
        self, items: Sequence[RawEnvelope], allowed_organisations: Collection[str] | None = None
    ) -> Checked:
        """The first half of ``append_batch``: every item against the contract, the
        publisher's organisations and the future horizon (``judgement.check``), with no
        database. ``domain/checking.py`` runs the same in worker processes."""
        return check_batch(items, allowed_organisations, self.settings.future_tolerance)

    def append_checked(
        self,
        checked: Checked,
        *,
        trackings: Sequence[Tracking] = (),
        extra_writes: Sequence[ExtraWrite] = (),
        on_judged: Callable[[Mapping[int, ItemResult]], None] | None = None,
        authority_exempt: bool = False,
    ) -> BatchResult:
        """The second half of ``append_batch``: a checked batch judged against what is
        recorded and written in one transaction (the arguments as there). The rejected
        items keep their results, with their indexes in the batch as checked."""
        results: dict[int, ItemResult] = dict(checked.rejected)
        valid = checked.valid
        judged = None if on_judged is None else (lambda out: on_judged({**results, **out}))
        probe = self._probing > 0
        unsure = False
        attempt = 0
        while True:
            try:
                placed = self._place(
                    valid, results, trackings, extra_writes, judged, authority_exempt, probe
                )
                break
            except _Unprobed:
                unsure = probe = True  # nothing was written: judge with every id looked up
            except IntegrityError:
                # A racing writer took a version or an event id first, or (not probing)
                # an event id was recorded before: judge again, every id looked up.
                unsure = probe = True
                attempt += 1
                if attempt == APPEND_ATTEMPTS:
                    raise
        met = unsure or any(p.status != "recorded" for p in placed.values())
        self._probing = PROBE_AFTER_DUPLICATES if met else max(self._probing - 1, 0)
        results.update(placed)
        return BatchResult([results[i] for i in range(checked.count)])

    def _place(
        self,
        valid: list[Valid],
        results: dict[int, ItemResult],
        trackings: Sequence[Tracking],
        extra_writes: Sequence[ExtraWrite],
        judged: Callable[[dict[int, ItemResult]], None] | None = None,
        exempt: bool = False,
        probe: bool = True,
    ) -> dict[int, ItemResult]:
        """Dedupe, check retractions and merges, assign versions, write; returns the items'
        results. A batch that can change a merge holds the merge lock from its reads to
        its commit (``domain/merges.py``); other batches read and write as before.

        Without ``probe`` the batch's own event ids are not looked up (its retraction
        targets always are): it is judged as if none were recorded, and if one was,
        the index's unique event id refuses the write, the transaction rolls back and
        ``append_checked`` judges again with every id looked up (and so it does, before
        writing, when the judgement refused an item: ``_judge``). So the results are
        the same either way; a stream of new events (a file, a feed) skips a probe of
        the event-id index per event (9 us of 60 the server spends per event), and a
        stream with duplicates probes (``PROBE_AFTER_DUPLICATES``)."""
        with self.connection() as conn:
            read = None if _has_merges(valid) else self._read(conn, valid, probe)
            if read is None or read.state.trees or read.links:  # it may move a merge:
                with merges.serialised(conn):  # again, under the lock
                    read = self._read(conn, valid, probe)
                    people = None if exempt else self._authorities(conn, read)
                    return self._judge(read, trackings, extra_writes, judged, people, probe)
            people = None if exempt else self._authorities(conn, read)
        return self._judge(read, trackings, extra_writes, judged, people, probe)

    def _authorities(
        self, conn: Connection[DictRow], read: _Read
    ) -> dict[UUID, authority.PersonAuthority]:
        """What the authority rules need to know of the people the batch states
        coordinator facts about (their registrations and coordinators so far); one read,
        and none for a batch without coordinator facts."""
        wanted = sorted(
            {
                read.patient_of[v.index]
                for v in read.valid
                if v.type in authority.COORDINATOR_FACTS and v.index in read.patient_of
            }
        )
        people = {p: authority.PersonAuthority() for p in wanted}
        if not wanted:
            return people
        rows = conn.execute(
            SELECT_RECORDED + " WHERE l.patient_id = ANY(%s) AND l.type = ANY(%s)"
            " ORDER BY l.position",
            (wanted, [authority.REGISTRATION, "CoordinatorAssigned", "CoordinatorHandedOff"]),
        ).fetchall()
        for row in rows:
            event = self._decode(row)
            people[row["patient_id"]].learn(event.type, event.data)
        return people

    def _read(self, conn: Connection[DictRow], valid: list[Valid], probe: bool = True) -> _Read:
        """Resolve the people named (merges' merged people too) by NHS number and local
        id, store merges by patient id, and load the prior events (the batch's own ids
        only if ``probe``: ``_place``) and merges the batch will be judged against."""
        merging = [v for v in valid if v.type == merges.MERGE_TYPE]
        named = [identity.Named(v.nhs_number, v.local_id) for v in valid] + [
            _merged_named(v) for v in merging
        ]
        resolved = identity.resolve_people(conn, named)
        patient_of = {
            v.index: resolved.patients[i] for i, v in enumerate(valid) if i in resolved.patients
        }
        merged_of = {
            v.index: resolved.patients[len(valid) + j]
            for j, v in enumerate(merging)
            if len(valid) + j in resolved.patients
        }
        problems = {valid[i].index: p for i, p in resolved.problems.items() if i < len(valid)}
        problems.update(
            (v.index, f"merged person: {resolved.problems[len(valid) + j]}")
            for j, v in enumerate(merging)
            if len(valid) + j in resolved.problems
        )
        links = {valid[i].index: pair for i, pair in resolved.links.items() if i < len(valid)}
        valid = [_stored_merge(v, merged_of) for v in valid]
        targets = _retraction_targets(valid)
        own = [v.event_id for v in valid] if probe else []
        existing = _existing_events(conn, own + targets)
        people = [
            *patient_of.values(),
            *merged_of.values(),
            *(p for pair in links.values() for p in pair),
            *(r["patient_id"] for r in existing.values()),
        ]
        state = merges.load(conn, people, targets)
        return _Read(valid, patient_of, existing, state, links, problems)

    def _judge(
        self,
        read: _Read,
        trackings: Sequence[Tracking],
        extra_writes: Sequence[ExtraWrite],
        judged: Callable[[dict[int, ItemResult]], None] | None = None,
        people: dict[UUID, authority.PersonAuthority] | None = None,
        probe: bool = True,
    ) -> dict[int, ItemResult]:
        """The judgement (``domain/judgement.judge``, pure: no database), then the writes
        of what it decided to record, with the caller's trackings and extra writes.
        Unprobed (``_place``), a refusal may be an item taken for new that is recorded
        (a resent merge is refused as "already merged"): ``_Unprobed`` before any write."""
        state = read.state
        decided = judge(
            read.valid,
            {},
            read.existing,
            state,
            people,
            patient_of=read.patient_of,
            links=read.links,
            problems=read.problems,
        )
        out = dict(decided.results)
        if not probe and any(r.status == "rejected" for r in out.values()):
            raise _Unprobed
        to_record = decided.to_record
        if judged is not None:
            judged(out)
        write = self._write(to_record, trackings, [*extra_writes, *state.writes()])
        by_event = {}
        for (v, _), position in zip(to_record, write.positions, strict=True):
            by_event[v.event_id] = position
            if v.index < 0:  # a merge the ledger made to link two identifiers
                continue
            out[v.index] = ItemResult(v.index, str(v.event_id), "recorded", position=position)
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
        events: list[tuple[UUID, int, dict[str, Any]]] = []
        tails: list[bytes | None] = []
        pending: list[PendingEvent] = []
        for v, patient in to_record:
            version = versions.get(patient, 0) + 1
            versions[patient] = version
            events.append((patient, version, v.content))
            tails.append(v.state_tail)
            pending.append(
                PendingEvent(
                    v.event_id, patient, v.type, v.occurred_at, v.organisation, v.content_hash
                )
            )
        write = LedgerWrite(pending)
        # The recorder directly, with the stored events built from the contents
        # (``journey.stored_events``): ``Application.save`` and ``EventStore.put`` only
        # add, per event, an event object, the mapper's generic walk, a runtime protocol
        # check and hooks (snapshots, notify) this application does not use.
        self.store.insert_events(
            stored_events(self.mapper, events, now, tails),
            ledger_write=write,
            trackings=trackings,
            extra_writes=extra_writes,
        )
        return write

    # -- identity ----------------------------------------------------------------------

    def patient_id(
        self, nhs_number: str | None, local_id: tuple[str, str] | None = None
    ) -> UUID | None:
        """The person an NHS number (or a local id: authority, value) identifies now: the
        survivor while a merge stands."""
        with self.connection() as conn:
            return merges.person_now(conn, nhs_number, local_id)

    def erase(self, nhs_number: str | None, local_id: tuple[str, str] | None = None) -> UUID | None:
        """Erase the person the identifier names: every identifier (NHS numbers and local
        ids) of everyone resolving to the same survivor goes (``merges.erase_person``)."""
        with self.connection() as conn:
            return merges.erase_person(conn, nhs_number, local_id)

    # -- reading -----------------------------------------------------------------------

    def history(self, patient_id: UUID, *, known_at: datetime | None = None) -> list[RecordedEvent]:
        """The person's recorded events in ledger order, optionally as known at a time.

        A survivor's history includes the events of everyone merged into it by merges
        standing now (or, with ``known_at``, standing as the ledger knew at that time).
        """
        with self.connection() as conn:
            rows = merges.family_rows(conn, SELECT_RECORDED, patient_id, known_at)
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
        self,
        items: Sequence[RawEnvelope],
        *,
        allowed_organisations: Collection[str] | None = None,
        authority_exempt: bool = False,
    ) -> BatchResult:
        """What ``append_batch`` would answer for ``items``, writing nothing (a dry run):
        the same checks, the same reads (people resolved by NHS number or local id, new
        ones registered) inside a transaction that is always rolled back, and the same
        pure judgement (``domain/judgement``: duplicates, conflicts, retractions, merges,
        authority) against what is recorded now; what would be recorded is ``recorded``
        without a position."""
        checked = self.check(items, allowed_organisations)
        results: dict[int, ItemResult] = dict(checked.rejected)
        valid = checked.valid
        with self.connection() as conn, conn.transaction(force_rollback=True):
            read = self._read(conn, valid)
            people = None if authority_exempt else self._authorities(conn, read)
        decided = judge(
            read.valid,
            {},
            read.existing,
            read.state,
            people,
            patient_of=read.patient_of,
            links=read.links,
            problems=read.problems,
        )
        results.update(decided.results)
        for v, _ in decided.to_record:
            if v.index >= 0:  # a linking merge the item would bring has no item of its own
                results[v.index] = ItemResult(v.index, str(v.event_id), "recorded")
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

    def stored_content(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The envelope content of a stored event row (``topic``, ``state``), as hashed."""
        return self._decode(row).content()

    def _decode(self, row: Mapping[str, Any]) -> Journey.Recorded:
        stored = StoredEvent(row["patient_id"], row["version"], row["topic"], bytes(row["state"]))
        event = self.mapper.to_domain_event(stored)
        assert isinstance(event, Journey.Recorded)
        return event

    # -- integrity (domain/verification.py) -------------------------------------------

    def verify(self, patient_id: UUID) -> Break | None:
        """One person's chain and Merkle inclusion (``verification.verify_person``)."""
        return verification.verify_person(self, patient_id)

    def verify_all(
        self,
        progress: Callable[[int], None] | None = None,
        *,
        verifier: note.Verifier | None = None,
        kept: Sequence[str] = (),
    ) -> VerifyReport:
        """The whole ledger (``verification.verify_all``)."""
        return verification.verify_all(self, progress, verifier=verifier, kept=kept)

    def digest(self, at_position: int | None = None) -> tuple[int, str]:
        """The ledger's head digest at a position (default: now), as ``(position, hex)``."""
        return verification.digest(self, at_position)


SELECT_RECORDED = (
    "SELECT l.position, l.event_id, l.patient_id, l.version, l.type, l.occurred_at,"
    " l.recorded_at, l.source_organisation, l.content_hash, l.hash, l.prev_hash,"
    " s.topic, s.state"
    " FROM ledger_events l JOIN journeys_events s"
    " ON s.originator_id = l.patient_id AND s.originator_version = l.version"
)

SELECT_STORED = SELECT_RECORDED.replace("s.topic, s.state", "s.topic, s.state, s.notification_id")

# How ``ledger_events`` columns are spelled in JSON (HTTP answers, evidence bundles): ids
# as text, times in UTC with ``Z`` (``utc_text``), every other column as stored.
_COLUMN_JSON: dict[str, Callable[[Any], Any]] = {
    "event_id": str,
    "patient_id": str,
    "occurred_at": utc_text,
    "recorded_at": utc_text,
}


def row_json(row: Mapping[str, Any], *columns: str) -> dict[str, Any]:
    """The named columns of a ledger index row, in that order, as JSON values: one
    spelling for every answer that shows where an event sits in the ledger."""
    return {c: _COLUMN_JSON[c](row[c]) if c in _COLUMN_JSON else row[c] for c in columns}


def open_ledger(settings: Settings | None = None) -> Ledger:
    """The ledger on the configured server, or on the embedded one (README, "Configuration")."""
    settings = settings or get_settings()
    url = resolve_url(settings.database_url, settings.data_dir)
    return Ledger(url, settings)


def _retraction_targets(valid: list[Valid]) -> list[UUID]:
    out = []
    for v in valid:
        if v.type == EventType.EVENT_RETRACTED:
            out.append(UUID(str(v.content["data"]["retracted_event_id"])))
    return out


def _has_merges(valid: Sequence[Valid]) -> bool:
    """A batch can change merges if it holds one, or if it retracts within a merge's
    retraction tree (``MergeState.trees``, known once the batch's targets are read)."""
    return any(v.type == merges.MERGE_TYPE for v in valid)


def _merged_named(v: Valid) -> identity.Named:
    data = v.content["data"]
    local = data.get("merged_local_id")
    return identity.Named(
        data.get("merged_nhs_number"),
        None if local is None else (str(local["authority"]), str(local["value"])),
    )


def _stored_merge(v: Valid, merged_of: Mapping[int, UUID]) -> Valid:
    """A merge is stored (and hashed) naming the merged person's patient id, never the
    identifier the publisher sent (docs/adt.md, "Person merges"); other items pass
    through."""
    if v.type != merges.MERGE_TYPE or v.index not in merged_of:
        return v
    data = dict(v.content["data"])
    data.pop("merged_nhs_number", None)
    data.pop("merged_local_id", None)
    data["merged_patient_id"] = str(merged_of[v.index])
    content = {**v.content, "data": data}
    return replace(v, content=content, content_hash=content_hash(content), state_tail=None)


def _existing_events(conn: Connection[DictRow], ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT event_id, patient_id, content_hash, position, source_organisation"
        " FROM ledger_events"
        " WHERE event_id = ANY(%s)",
        (ids,),
    ).fetchall()
    return {r["event_id"]: r for r in rows}
