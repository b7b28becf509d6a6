"""The seam between a Kafka topic and the ledger: a ``Feed`` decodes messages, and one
poll's batch of them is recorded in ONE PostgreSQL transaction (``record_batch``).

Why one transaction: the events, each topic-partition's last offset (eventsourcing
``Tracking("kafka:TOPIC:PARTITION", offset)``), the per-partition counters and the rows of
the refused messages commit or vanish together, so a crash, a PostgreSQL restart or a
rebalance can neither lose nor double anything, and ``consume --stats`` counts are exact
(docs/kafka.md, "Exactly-once effect").

Plugging in another message format (the HL7 v2 ADT feed does this)
----------------------------------------------------------------------
Build a ``Feed`` and hand it to ``consumers.loop.ConsumerLoop`` (the CLI does this for
``carejourney consume`` and ``carejourney consume --adt``)::

    Feed(
        name="adt",                                   # label in logs and stats
        topics=(settings.adt_topic,),                 # source topics
        dead_letter_topic=settings.adt_dead_letter_topic,
        decode=my_decode,                             # Message -> Decoded, pure
        allowed_organisations=None,                   # ODS allow-list, None = all
        record_asides=my_asides,                      # only if decode returns Aside
    )

``decode(message)`` gets the Kafka record (``.topic .partition .offset .key .value
.headers``; ``value`` is the raw ``bytes``, ``None`` for a tombstone) and returns one of:

* an envelope (a ``dict`` shaped as the contract, or the raw JSON ``bytes``/``str``) —
  the ledger validates it and reports recorded / duplicate / conflict / rejected;
* ``Rejection(errors, event_id=None)`` — refused before the ledger (not JSON, not HL7,
  no NHS number, unsupported trigger ...): a ``consumer_rejections`` row in the same
  transaction, then the dead-letter topic with the reason;
* ``Aside(payload)`` — a message that is no journey event but must be kept beside the
  events in the same transaction (an A08 identity update). ``record_asides(ledger,
  [(index, payload), ...])`` judges them before the transaction (it may read the
  database) and returns ``({index: ItemResult}, write_or_None)``; ``write(cursor)`` runs
  inside the batch's transaction. A judged ``recorded`` aside is counted as ``noted``;
  ``rejected``/``conflict`` ones go to the dead-letter topic like any other.

Nothing else is needed: offsets, fencing, counters, dead letters, retries and signals
belong to the loop and work the same for every feed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from consumers import deadletter, offsets
from consumers.outcome import Message, Outcome, Status
from domain.contract import FieldError
from domain.ledger import ExtraWrite, ItemResult, Ledger, RawEnvelope


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message refused before it reached the ledger, with every reason found."""

    errors: tuple[FieldError, ...]
    event_id: str | None = None

    @classmethod
    def because(cls, msg: str, loc: str = "", event_id: str | None = None) -> Rejection:
        return cls((FieldError(loc, msg),), event_id)


@dataclass(frozen=True, slots=True)
class Aside:
    """A message kept beside the events (not a journey event); see ``Feed.record_asides``."""

    payload: Any


Decoded = Mapping[str, Any] | bytes | str | Rejection | Aside
AsideRecorder = Callable[
    [Ledger, Sequence[tuple[int, Any]]], tuple[Mapping[int, ItemResult], ExtraWrite | None]
]


@dataclass(frozen=True, slots=True)
class Feed:
    """One kind of Kafka input: where it comes from, where refusals go, how to decode."""

    name: str
    topics: tuple[str, ...]
    dead_letter_topic: str
    decode: Callable[[Message], Decoded]
    allowed_organisations: frozenset[str] | None = None
    record_asides: AsideRecorder | None = None


def tracking_name(topic: str, partition: int) -> str:
    return f"kafka:{topic}:{partition}"


def record_batch(
    ledger: Ledger,
    feed: Feed,
    messages: Sequence[Message],
    expected: Mapping[tuple[str, int], int | None],
) -> list[Outcome]:
    """Decode and record ``messages`` (any partitions, offsets ascending per partition)
    in one transaction with their offsets, counters and refusals.

    ``expected`` is each partition's stored offset as this consumer last saw it (None:
    nothing stored); if PostgreSQL holds another value the transaction is abandoned and
    ``offsets.Fenced`` raised (eventsourcing's ``IntegrityError`` when the tracking row itself
    refuses to go backwards).
    """
    offsets.ensure_tables(ledger)
    pre: dict[int, Outcome] = {}
    ledger_items: list[RawEnvelope] = []
    ledger_index: list[int] = []
    asides: list[tuple[int, Any]] = []
    for i, message in enumerate(messages):
        decoded = feed.decode(message)
        if isinstance(decoded, Rejection):
            pre[i] = Outcome(message, "rejected", decoded.event_id, errors=decoded.errors)
        elif isinstance(decoded, Aside):
            asides.append((i, decoded.payload))
        else:
            ledger_index.append(i)
            ledger_items.append(decoded)
    writes: list[ExtraWrite] = []
    if asides:
        if feed.record_asides is None:
            msg = f"feed {feed.name!r} decoded an Aside but has no record_asides"
            raise TypeError(msg)
        judged_asides, aside_write = feed.record_asides(ledger, asides)
        for i, item in judged_asides.items():
            status: Status = "noted" if item.status == "recorded" else item.status
            pre[i] = Outcome(messages[i], status, item.event_id, errors=item.errors)
        if aside_write is not None:
            writes.append(aside_write)

    judged: dict[int, Outcome] = {}

    def on_judged(items: Mapping[int, ItemResult]) -> None:
        judged.clear()
        for k, item in items.items():
            i = ledger_index[k]
            judged[i] = Outcome(messages[i], item.status, item.event_id, item.position, item.errors)

    def write(curs: Cursor[DictRow]) -> None:
        final = [
            pre.get(i) or judged.get(i) or Outcome(m, "recorded") for i, m in enumerate(messages)
        ]
        offsets.advance(curs, final, expected)
        deadletter.insert(curs, [o for o in final if o.refused], feed.dead_letter_topic)

    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic, m.partition)] = max(m.offset, last.get((m.topic, m.partition), -1))
    result = ledger.append_batch(
        ledger_items,
        allowed_organisations=feed.allowed_organisations,
        trackings=[Tracking(tracking_name(t, p), o) for (t, p), o in sorted(last.items())],
        extra_writes=[*writes, write],
        on_judged=on_judged,
    )
    out: list[Outcome] = []
    recorded = {ledger_index[k]: item for k, item in enumerate(result.items)}
    for i, m in enumerate(messages):
        if i in pre:
            out.append(pre[i])
            continue
        item = recorded[i]
        out.append(Outcome(m, item.status, item.event_id, item.position, item.errors))
    return out
