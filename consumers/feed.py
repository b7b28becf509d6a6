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

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from eventsourcing.persistence import Tracking
from psycopg import Cursor
from psycopg.rows import DictRow

from consumers import deadletter, held, offsets
from consumers.outcome import Message, Outcome, Status
from domain.contract import FieldError
from domain.judgement import Checked, check_batch
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
    retraction_hold: float = 0.0  # seconds a retraction may wait for its target


def tracking_name(topic: str, partition: int) -> str:
    return f"kafka:{topic}:{partition}"


@dataclass(frozen=True, slots=True)
class Decoding:
    """A batch's messages decoded (``decode_batch``): the refused, the asides and the
    envelopes for the ledger, each with its index in the batch."""

    refused: dict[int, Rejection]
    asides: list[tuple[int, Any]]  # (index, payload) for ``Feed.record_asides``
    ledger_index: list[int]  # the batch index of each of ``items``
    items: list[RawEnvelope]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch decoded and its envelopes checked, with no database (``prepare``): what a
    worker process hands back to the loop, which judges and writes it
    (``record_prepared``)."""

    refused: dict[int, Rejection]
    asides: list[tuple[int, Any]]
    ledger_index: list[int]
    checked: Checked


def decode_batch(decode: Callable[[Message], Decoded], messages: Sequence[Message]) -> Decoding:
    refused: dict[int, Rejection] = {}
    asides: list[tuple[int, Any]] = []
    ledger_index: list[int] = []
    items: list[RawEnvelope] = []
    for i, message in enumerate(messages):
        decoded = decode(message)
        if isinstance(decoded, Rejection):
            refused[i] = decoded
        elif isinstance(decoded, Aside):
            asides.append((i, decoded.payload))
        else:
            ledger_index.append(i)
            items.append(decoded)
    return Decoding(refused, asides, ledger_index, items)


def check_decoded(
    decoding: Decoding, allowed: Collection[str] | None, tolerance: timedelta
) -> Prepared:
    """The envelopes of a decoded batch checked (``judgement.check_batch``)."""
    checked = check_batch(decoding.items, allowed, tolerance)
    return Prepared(decoding.refused, decoding.asides, decoding.ledger_index, checked)


def prepare(
    decode: Callable[[Message], Decoded],
    messages: Sequence[Message],
    allowed: Collection[str] | None,
    tolerance: timedelta,
) -> Prepared:
    """Decode ``messages`` and check the envelopes among them: the half of
    ``record_batch`` that needs no database, so the loop can run it in a worker process
    for the next batches while it writes this one."""
    return check_decoded(decode_batch(decode, messages), allowed, tolerance)


def record_batch(
    ledger: Ledger,
    feed: Feed,
    messages: Sequence[Message],
    expected: Mapping[tuple[str, int], int | None],
    topic_ids: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """Decode and record ``messages`` (any partitions, offsets ascending per partition)
    in one transaction with their offsets, counters and refusals.

    ``expected`` is each partition's stored offset as this consumer last saw it (None:
    nothing stored); if PostgreSQL holds another value the transaction is abandoned and
    ``offsets.Fenced`` raised (eventsourcing's ``IntegrityError`` when the tracking row itself
    refuses to go backwards). A retraction refused only because its target is not
    recorded yet is ``held`` when the feed holds retractions (``consumers/held.py``).
    """
    prepared = prepare(
        feed.decode, messages, feed.allowed_organisations, ledger.settings.future_tolerance
    )
    return record_prepared(ledger, feed, messages, prepared, expected, topic_ids)


def record_prepared(
    ledger: Ledger,
    feed: Feed,
    messages: Sequence[Message],
    prepared: Prepared,
    expected: Mapping[tuple[str, int], int | None],
    topic_ids: Mapping[str, str] | None = None,
) -> list[Outcome]:
    """The second half of ``record_batch``: ``messages`` as ``prepare`` left them, judged
    against what is recorded and written in one transaction (the arguments as there)."""
    offsets.ensure_tables(ledger)
    ledger_index = prepared.ledger_index
    pre: dict[int, Outcome] = {
        i: Outcome(messages[i], "rejected", r.event_id, errors=r.errors)
        for i, r in prepared.refused.items()
    }
    writes: list[ExtraWrite] = []
    if prepared.asides:
        if feed.record_asides is None:
            msg = f"feed {feed.name!r} decoded an Aside but has no record_asides"
            raise TypeError(msg)
        judged_asides, aside_write = feed.record_asides(ledger, prepared.asides)
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
            status: Status = item.status
            if (
                feed.retraction_hold > 0
                and status == "rejected"
                and held.waits_for_target(item.errors)
            ):
                status = "held"
            judged[i] = Outcome(messages[i], status, item.event_id, item.position, item.errors)

    def write(curs: Cursor[DictRow]) -> None:
        final = [
            pre.get(i) or judged.get(i) or Outcome(m, "recorded") for i, m in enumerate(messages)
        ]
        offsets.advance(curs, final, expected, topic_ids)
        deadletter.insert(curs, [o for o in final if o.refused], feed.dead_letter_topic)
        held.insert(curs, [o for o in final if o.status == "held"], feed.dead_letter_topic)

    last: dict[tuple[str, int], int] = {}
    for m in messages:
        last[(m.topic, m.partition)] = max(m.offset, last.get((m.topic, m.partition), -1))
    result = ledger.append_checked(
        prepared.checked,
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
        if i in judged and judged[i].status == "held":
            out.append(judged[i])
            continue
        item = recorded[i]
        out.append(Outcome(m, item.status, item.event_id, item.position, item.errors))
    return out


def retry_held(
    ledger: Ledger, feed: Feed, partitions: Collection[tuple[str, int]], limit: int = 500
) -> held.Retried:
    """Try this feed's held messages of ``partitions`` again, in one transaction with
    whatever they settle (``consumers/held.py``)."""
    done = held.Retried()
    rows = held.select(ledger, partitions, limit)
    if not rows:
        return done
    messages = [held.message(r) for r in rows]
    pre: dict[int, ItemResult] = {}
    items: list[RawEnvelope] = []
    index: list[int] = []
    for i, m in enumerate(messages):
        decoded = feed.decode(m)
        if isinstance(decoded, Rejection):  # scrubbed by an erasure while held
            pre[i] = ItemResult(i, rows[i]["event_id"], "rejected", errors=decoded.errors)
        elif isinstance(decoded, Aside):
            pre[i] = ItemResult(
                i, rows[i]["event_id"], "rejected", errors=(FieldError("", "not an event"),)
            )
        else:
            index.append(i)
            items.append(decoded)
    judged: dict[int, ItemResult] = {}

    def on_judged(out: Mapping[int, ItemResult]) -> None:
        judged.clear()
        judged.update({index[k]: item for k, item in out.items()})

    def write(curs: Cursor[DictRow]) -> None:
        refused = held.settle(curs, rows, {**judged, **pre}, feed.retraction_hold, done)
        deadletter.insert(
            curs,
            [Outcome(messages[i], s, rows[i]["event_id"], errors=e) for i, s, e in refused],
            feed.dead_letter_topic,
        )

    ledger.append_batch(
        items,
        allowed_organisations=feed.allowed_organisations,
        extra_writes=[write],
        on_judged=on_judged,
    )
    return done
