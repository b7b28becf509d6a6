"""One person's journey: the event stream the ledger appends to, and how it is read back.

Each person (by opaque ``patient_id``) is one ``Journey`` aggregate of the
``eventsourcing`` library. Every fact a service reports becomes one aggregate event
carrying the envelope content. The ledger never replays a stream to append to it: the
recorder assigns each new event the next version of its person under the write lock
(see ``domain/recorder.py``), so concurrent writers to one person never collide, and the
library's (originator_id, version) primary key still guards the sequence.

``RecordedEvent`` is the single typed input of every fold, replay and ``history``:
the ledger index row plus the stored content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic

from domain.recorder import StateTranscoder


class Journey(Aggregate):
    """The facts recorded about one person, in the order the ledger recorded them."""

    def __init__(self) -> None:
        self.event_ids: list[str] = []
        self.types: list[str] = []

    @property
    def closed(self) -> bool:
        return "JourneyClosed" in self.types

    class Recorded(Aggregate.Event):
        """A fact reported by a service, exactly as validated (no NHS number)."""

        event_id: str
        type: str
        schema_version: int
        occurred_at: str
        source: dict[str, Any]
        recorded_by: dict[str, Any] | None
        data: dict[str, Any]

        # The library types mutate over an unbound TypeVar; this event mutates journeys.
        def mutate(self, aggregate: Journey | None) -> Journey | None:  # type: ignore[override]
            """The first fact of a stream opens the journey (there is no separate
            "created" event: a person's stream starts with whatever was reported first)."""
            if aggregate is None:
                aggregate = Journey.__new__(Journey)
                aggregate.__base_init__(self.originator_id, 0, self.timestamp)
                # An aggregate made without a Created event: its __init__ runs on the bare
                # instance, which mypy calls unsound (the library does the same).
                aggregate.__init__()  # type: ignore[misc]
            return super().mutate(aggregate)

        def apply(self, aggregate: Journey) -> None:
            aggregate.event_ids.append(self.event_id)
            aggregate.types.append(self.type)

        def content(self) -> dict[str, Any]:
            """The envelope content this event was built from (what is hashed)."""
            return {name: getattr(self, name) for name in CONTENT_FIELDS}


# The seven fields of a stored content: the ones ``Journey.Recorded`` declares beyond the
# library's own, in its order, which is the order the library's state encodes them in
# (byte equality depends on it).
_LIBRARY_FIELDS = {f.name for f in fields(Aggregate.Event)}
CONTENT_FIELDS = tuple(f.name for f in fields(Journey.Recorded) if f.name not in _LIBRARY_FIELDS)


def journey_event(
    patient_id: UUID, version: int, content: dict[str, Any], timestamp: datetime
) -> Journey.Recorded:
    """The aggregate event for one envelope's content (the version is provisional until
    the recorder places it after the person's head)."""
    return Journey.Recorded(
        originator_id=patient_id,
        originator_version=version,
        timestamp=timestamp,
        **_state_fields(content),
    )


RECORDED_TOPIC = get_topic(Journey.Recorded)


def _state_fields(content: dict[str, Any]) -> dict[str, Any]:
    """A content's seven fields in ``CONTENT_FIELDS`` order (other keys left out)."""
    return {name: content[name] for name in CONTENT_FIELDS}


def state_tail(content: dict[str, Any]) -> bytes | None:
    """The library state's bytes after its timestamp for one content: what
    ``StateTranscoder`` writes for the content's seven fields, less the opening brace.
    Made where the content is checked (a worker process, ``domain/checking.py``), so
    the writer only joins the batch's timestamp to it (``stored_events``). None when a
    value is not plain JSON (one of the transcoder's registered types): the writer
    then encodes that content itself."""
    try:
        body = orjson.dumps(_state_fields(content), option=StateTranscoder.OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a value only the transcoder encodes
        return None
    return body[1:]


def stored_events(
    mapper: Mapper[UUID],
    events: list[tuple[UUID, int, dict[str, Any]]],
    timestamp: datetime,
    tails: Sequence[bytes | None] | None = None,
) -> list[StoredEvent]:
    """The library's stored events for ``(patient_id, provisional version, content)``
    triples, built without a ``Journey.Recorded`` object per event: the state is what
    ``Mapper.to_stored_event(journey_event(...))`` encodes (the event's fields less the
    originator's id and version: the timestamp and the content's seven fields), through
    the same transcoder, compressor and cipher. The ledger appends thousands of events a
    second and reads them back through the library's mapper (tests/test_ledger.py
    checks the two agree byte for byte). ``tails`` (aligned with ``events``): each
    content's ``state_tail`` where it was made, joined to the timestamp's bytes instead
    of encoding the content again (only with the orjson transcoder and no compressor
    or cipher, whose bytes those are)."""
    encode = mapper.transcoder.encode
    compressor, cipher = mapper.compressor, mapper.cipher
    # The one timestamp of the batch, as the library's registered transcoding writes a
    # datetime (``DatetimeAsISO``), so it is not encoded again per event.
    stamp = {"_type_": "datetime_iso", "_data_": timestamp.isoformat()}
    joinable = (
        tails is not None
        and type(mapper.transcoder) is StateTranscoder
        and not compressor
        and not cipher
    )
    head = b'{"timestamp":' + encode(stamp) + b","
    out = []
    for i, (patient_id, version, content) in enumerate(events):
        tail = tails[i] if joinable and tails is not None else None
        if tail is not None:
            out.append(StoredEvent(patient_id, version, RECORDED_TOPIC, head + tail))
            continue
        state = encode({"timestamp": stamp, **_state_fields(content)})
        if compressor:
            state = compressor.compress(state)
        if cipher:
            state = cipher.encrypt(state)
        out.append(StoredEvent(patient_id, version, RECORDED_TOPIC, state))
    return out


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One recorded fact with both clocks, its ledger position and its chain hashes."""

    position: int
    event_id: UUID
    patient_id: UUID
    version: int
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    source: dict[str, Any]
    recorded_by: dict[str, Any] | None
    data: dict[str, Any]
    hash: str
    prev_hash: str | None

    @property
    def setting(self) -> str:
        """The timeline lane: the source's setting, except a contact's own setting."""
        if self.type == "ContactRecorded" and "setting" in self.data:
            return str(self.data["setting"])
        return str(self.source["setting"])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for HTTP and CLI output."""
        return {
            "position": self.position,
            "event_id": str(self.event_id),
            "patient_id": str(self.patient_id),
            "version": self.version,
            "type": self.type,
            "schema_version": self.schema_version,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "source": self.source,
            "recorded_by": self.recorded_by,
            "data": self.data,
            "hash": self.hash,
            "prev_hash": self.prev_hash,
        }
