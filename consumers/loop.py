"""The consuming loop shared by every feed: poll, record each batch with its offsets in
one transaction, dead-letter the refusals, and survive everything else.

Behaviour (docs/kafka.md):

* Positions live in PostgreSQL. On assignment (``subscribe`` with a rebalance listener
  in a consumer group, or ``assign`` of every partition with ``group_id=None``) each
  partition is sought to its stored offset + 1, or to its beginning when nothing is
  stored. On revocation there is nothing to commit: the offsets went with the events.
* Each poll's batch (split only to respect ``batch_size``/``batch_bytes``) goes to
  ``feed.record_batch`` = one transaction. If PostgreSQL says another writer moved a
  partition (``Fenced`` / ``IntegrityError``: a zombie after a rebalance, or our own
  commit whose acknowledgement was lost in a restart), the rest of the poll is dropped
  and every partition re-sought from PostgreSQL, so nothing is applied twice.
* PostgreSQL unavailable: the same batch is retried with exponential backoff (0.5 s to
  ``max_backoff``) until it commits or the loop is stopped. Broker unavailable:
  kafka-python reconnects by itself; start-up and dead-letter sends retry with backoff.
* Stop (``stop`` event, set by SIGTERM/SIGINT in the CLI): checked between batches and
  during backoff; a transaction in flight is finished, one waiting to be retried is
  abandoned (nothing of it was committed), then the clients close and ``run`` returns.
* Kafka commits are advisory (group mode only), sent after the PostgreSQL commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from eventsourcing.persistence import IntegrityError as LibraryIntegrityError
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from psycopg.rows import DictRow

from consumers import deadletter, offsets
from consumers.broker import Broker
from consumers.feed import Feed, record_batch
from consumers.outcome import Message, Outcome
from domain.database import RETRYABLE_DB
from domain.ledger import Ledger

log = logging.getLogger(__name__)

FENCED = (offsets.Fenced, LibraryIntegrityError, psycopg.IntegrityError)
DEAD_LETTER_RETRY_SECONDS = 5.0
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """How the loop consumes; ``group_id=None`` means manual assignment of all partitions."""

    group_id: str | None
    batch_size: int = 500
    batch_bytes: int = 262_144
    poll_ms: int = 500
    max_backoff: float = 30.0
    report_every: float = 10.0


@dataclass(slots=True)
class Totals:
    """What this run did (the exact, durable counts are ``offsets.partition_stats``)."""

    started: float = field(default_factory=time.monotonic)
    statuses: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    dead_letters_sent: int = 0

    @property
    def messages(self) -> int:
        return sum(self.statuses.values())

    def rate(self) -> float:
        return self.messages / max(time.monotonic() - self.started, 1e-9)


class Stopped(Exception):
    """The stop event was set while the loop was waiting to retry."""


class ConsumerLoop:
    """Consume one feed into the ledger until ``stop`` is set; see the module docstring."""

    def __init__(
        self,
        ledger: Ledger,
        feed: Feed,
        broker: Broker,
        options: LoopOptions,
        stop: threading.Event,
        report: Callable[[Totals], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.feed = feed
        self.broker = broker
        self.options = options
        self.stop = stop
        self.report = report
        self.totals = Totals()
        self.expected: dict[tuple[str, int], int | None] = {}
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None
        self._dead_letters_due = True  # rows an earlier run could not send
        self._dead_letters_retry_at = 0.0
        self._reported = time.monotonic()
        self._fenced = 0  # fenced batches in a row

    # -- the loop ----------------------------------------------------------------------

    def run(self) -> Totals:
        try:
            self._with_database(lambda _conn: offsets.ensure_tables(self.ledger))
            self._connect()
            while not self.stop.is_set():
                self._step()
        except Stopped:
            log.info("stopped while waiting to retry; nothing half-done was committed")
        finally:
            self._close()
        return self.totals

    def _step(self) -> None:
        assert self.consumer is not None
        try:
            polled = self.consumer.poll(
                timeout_ms=self.options.poll_ms, max_records=self.options.batch_size
            )
        except KafkaError as exc:
            log.warning("Kafka poll failed (%s); retrying", exc)
            self._sleep(1.0)
            return
        messages: list[Message] = [m for records in polled.values() for m in records]
        for chunk in chunks(messages, self.options.batch_size, self.options.batch_bytes):
            if self.stop.is_set() or not self._commit(chunk):
                break  # stopped, or re-sought from PostgreSQL: the rest will come again
        self._send_dead_letters()
        now = time.monotonic()
        if self.report is not None and now - self._reported >= self.options.report_every:
            self._reported = now
            self.report(self.totals)

    def _commit(self, chunk: Sequence[Message]) -> bool:
        """Record one batch, retrying while PostgreSQL is away; False if re-sought."""
        delay = 0.5
        partitions = {(m.topic, m.partition) for m in chunk}
        while True:
            expected = {tp: self.expected.get(tp) for tp in partitions}
            try:
                outcomes = record_batch(self.ledger, self.feed, chunk, expected)
                break
            except FENCED as exc:
                log.info("stored offsets moved (%s): re-seeking from PostgreSQL", exc)
                self._fenced += 1
                if self._fenced > 1:  # again without progress: do not spin
                    self._sleep(min(0.1 * 2**self._fenced, self.options.max_backoff))
                self._resync()
                return False
            except RETRYABLE_DB as exc:
                log.warning("PostgreSQL unavailable (%s); retrying in %.1f s", exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.options.max_backoff)
        self._fenced = 0
        self._committed(outcomes)
        return True

    def _committed(self, outcomes: Sequence[Outcome]) -> None:
        last: dict[tuple[str, int], int] = {}
        for o in outcomes:
            tp = (o.message.topic, o.message.partition)
            last[tp] = max(o.message.offset, last.get(tp, -1))
            self.totals.statuses[o.status] += 1
            if o.refused:
                self._dead_letters_due = True
        self.expected.update(last)
        self.totals.batches += 1
        if self.options.group_id is not None and self.consumer is not None:
            advisory = {
                TopicPartition(t, p): OffsetAndMetadata(o + 1, "", -1) for (t, p), o in last.items()
            }
            try:
                self.consumer.commit_async(advisory)
            except KafkaError as exc:  # advisory only: PostgreSQL holds the truth
                log.debug("advisory Kafka commit failed: %s", exc)

    # -- partitions --------------------------------------------------------------------

    def _connect(self) -> None:
        """Wait for the broker and the source topics, make sure the dead-letter topic
        exists, then subscribe (group) or assign every partition (manual)."""
        delay = 0.5
        while True:
            self._check_stop()
            try:
                counts = self.broker.partitions(self.feed.topics)
                missing = [t for t in self.feed.topics if t not in counts]
                if not missing:
                    self.broker.create_topics({self.feed.dead_letter_topic: max(counts.values())})
                    self.consumer = self.broker.consumer(
                        self.options.group_id, self.options.batch_size
                    )
                    self.producer = self.broker.producer()
                    break
                log.warning("waiting for topics %s to exist", ", ".join(missing))
            except KafkaError as exc:
                log.warning(
                    "Kafka unavailable at %s (%s); retrying in %.1f s",
                    self.broker.bootstrap_servers,
                    exc,
                    delay,
                )
            self._sleep(delay)
            delay = min(delay * 2, self.options.max_backoff)
        if self.options.group_id is None:
            partitions = [TopicPartition(t, p) for t in self.feed.topics for p in range(counts[t])]
            self.consumer.assign(partitions)
            self.assigned(partitions)
        else:
            self.consumer.subscribe(list(self.feed.topics), listener=_Rebalance(self))

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek each partition to its stored offset + 1 (or its beginning)."""
        assert self.consumer is not None
        wanted = [(tp.topic, tp.partition) for tp in partitions]
        stored = self._with_database(lambda conn: offsets.stored_offsets(conn, wanted))
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            self.expected[(tp.topic, tp.partition)] = offset
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset + 1)
        log.info(
            "assigned %s",
            ", ".join(f"{t}:{p}@{stored.get((t, p), -1) + 1}" for t, p in wanted) or "nothing",
        )

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Nothing to commit: the offsets are in PostgreSQL with the events."""
        for tp in partitions:
            self.expected.pop((tp.topic, tp.partition), None)

    def _resync(self) -> None:
        assert self.consumer is not None
        self.assigned(sorted(self.consumer.assignment()))

    # -- dead letters ------------------------------------------------------------------

    def _send_dead_letters(self, *, force: bool = False) -> None:
        """Produce the unsent dead letters (this run's and any left by an earlier one);
        after a failure, wait ``DEAD_LETTER_RETRY_SECONDS`` before the next try."""
        if not self._dead_letters_due or self.producer is None:
            return
        now = time.monotonic()
        if not force and now < self._dead_letters_retry_at:
            return
        producer = self.producer
        done = False
        try:
            while True:
                with self.ledger.connection() as conn:
                    sent, done = deadletter.send_pending(conn, producer, self.feed.topics)
                self.totals.dead_letters_sent += sent
                if done or sent == 0:
                    break
        except RETRYABLE_DB as exc:
            log.warning("cannot read dead letters (%s); will retry", exc)
        self._dead_letters_due = not done
        if not done:
            self._dead_letters_retry_at = now + DEAD_LETTER_RETRY_SECONDS

    # -- plumbing ----------------------------------------------------------------------

    def _with_database(self, work: Callable[[psycopg.Connection[DictRow]], T]) -> T:
        """Run a read or set-up against PostgreSQL, retrying while it is away."""
        delay = 0.5
        while True:
            try:
                with self.ledger.connection() as conn:
                    return work(conn)
            except RETRYABLE_DB as exc:
                log.warning("PostgreSQL unavailable (%s); retrying in %.1f s", exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.options.max_backoff)

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Stopped

    def _close(self) -> None:
        if self.producer is not None:
            try:
                self._send_dead_letters(force=True)
                self.producer.close(timeout=5)
            except KafkaError as exc:
                log.warning("closing the dead-letter producer: %s", exc)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)


class _Rebalance(ConsumerRebalanceListener):
    """Group mode: hand partition changes to the loop (runs inside ``poll``)."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.loop.revoked(revoked)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.loop.assigned(assigned)


def chunks(messages: Sequence[Message], size: int, max_bytes: int) -> Iterator[list[Message]]:
    """Split a poll into batches of at most ``size`` messages and about ``max_bytes`` of
    values (at least one message each): a cap on each transaction's size and lock time
    whatever the messages weigh (and on the statement size that once hung psycopg's
    pipeline mode here; docs/kafka.md)."""
    batch: list[Message] = []
    weight = 0
    for m in messages:
        size_of = len(m.value or b"")
        if batch and (len(batch) >= size or weight + size_of > max_bytes):
            yield batch
            batch, weight = [], 0
        batch.append(m)
        weight += size_of
    if batch:
        yield batch
