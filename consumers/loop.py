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
* Reading ahead: while a batch is written, up to ``checks.ahead`` more are read and
  decoded and checked (``feed.prepare``) by the check pool's worker (in this process
  without one). They are written in order, unless the positions moved meanwhile (an
  assignment, a revocation, a re-seek, a stopped partition: ``_generation``): then all
  of them are dropped and every partition re-sought from PostgreSQL.
* PostgreSQL unavailable: the same batch is retried with exponential backoff (0.5 s to
  ``max_backoff``) until it commits or the loop is stopped. Broker unavailable:
  kafka-python reconnects by itself; start-up and dead-letter sends retry with backoff.
* Stop (``stop`` event, set by SIGTERM/SIGINT in the CLI): checked between batches and
  during backoff; a transaction in flight is finished, one waiting to be retried is
  abandoned (nothing of it was committed), then the clients close and ``run`` returns.
* Kafka commits are advisory (group mode only), sent after the PostgreSQL commit.
* Dead letters are produced by a thread of their own (``deadletter.Sender``), so a
  dead-letter topic that fails never holds up consumption.
* Never skip silently: a partition whose stored offset lies past its end (the broker
  lost messages: the fetch's high watermark says so; or Kafka answers "offset out of
  range"), or whose topic has another id than the one kept with the offset (made
  again), is paused, recorded in ``consumer_stopped`` and logged as an error, until the
  operator decides (``carejourney consume --reset-partition TOPIC:P --to ...``).
* A retraction read before its target is held (``consumers/held.py``) and retried
  after every batch that records events, until the feed's ``retraction_hold`` runs out.
* What the process is doing or waiting for (the group join, the broker, PostgreSQL,
  the dead-letter topic) is logged when it changes, in every periodic report, and
  kept in ``consumer_processes`` for ``consume --stats``.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from eventsourcing.persistence import IntegrityError as LibraryIntegrityError
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata
from psycopg.rows import DictRow

from consumers import deadletter, offsets, processes, retention
from consumers.broker import Broker
from consumers.feed import (
    Feed,
    Prepared,
    check_decoded,
    decode_batch,
    prepare,
    record_prepared,
    retry_held,
)
from consumers.outcome import Message, Outcome
from domain.checking import CheckPool
from domain.database import RETRYABLE_DB
from domain.ledger import Ledger

log = logging.getLogger(__name__)

FENCED = (offsets.Fenced, LibraryIntegrityError, psycopg.IntegrityError)
DEAD_LETTER_RETRY_SECONDS = 5.0
HELD_RETRY_SECONDS = 1.0  # held retractions are tried at least this often (their hold)
STOPS_CHECK_SECONDS = 5.0  # how often a stopped partition looks for the operator's reset
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """How the loop consumes; ``group_id=None`` means manual assignment of all partitions."""

    group_id: str | None
    batch_size: int = 2000  # as settings.consumer_batch_size
    batch_bytes: int = 1_048_576
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
    waiting: str | None = None  # what the loop waits for, when it takes nothing in
    stopped: dict[tuple[str, int], str] = field(default_factory=dict)

    @property
    def messages(self) -> int:
        return sum(self.statuses.values())

    def rate(self) -> float:
        return self.messages / max(time.monotonic() - self.started, 1e-9)


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A batch read and being prepared; ``generation`` is the loop's when it was read."""

    messages: list[Message]
    prepared: Future[Prepared]
    generation: int


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
        checks: CheckPool | None = None,
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
        self.sender: deadletter.Sender | None = None
        self.name = f"{processes.here()}:{feed.name}:{uuid.uuid4().hex[:6]}"
        self.topic_ids: dict[str, str] = {}
        self.stopped: dict[tuple[str, int], str] = self.totals.stopped
        self._reported = time.monotonic()
        self._fenced = 0  # fenced batches in a row
        self._retention_due = 0.0  # the scheduled retention step (consumers/retention.py)
        self._state = ""
        self._state_since = time.monotonic()
        self._heartbeat = 0.0
        self._holding = True  # held messages may wait from an earlier run
        self._held_at = 0.0
        self._stops_checked = 0.0
        self._join_started: float | None = None
        # Batches read ahead: decoded and checked by ``checks`` (a worker process, made
        # before the ledger) while the one before is written; in this process without.
        self.checks = checks or CheckPool(0, ledger.settings.future_tolerance)
        self._depth = 1 + (self.checks.workers > 0) * self.checks.ahead
        self._ahead: deque[_Ahead] = deque()
        self._generation = 0  # moves whenever positions move: what is ahead is stale
        self._decode_there = self.checks.workers > 0 and _travels(feed.decode)

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
        """Keep ``ahead`` batches decoded and checked (in the check pool's worker while
        this process writes), then write the oldest; then the periodic chores."""
        took = self._fill()
        before = self.totals.statuses["recorded"]
        if self._ahead and not self.stop.is_set():
            self._write_next()
        self._retry_held(recorded=self.totals.statuses["recorded"] > before)
        self._check_stops()
        self._watch(took or bool(self._ahead))
        now = time.monotonic()
        if now >= self._retention_due:
            self._retention_due = now + retention.RUN_EVERY_SECONDS
            self._apply_retention()
        if self.report is not None and now - self._reported >= self.options.report_every:
            self._reported = now
            self.totals.dead_letters_sent = self.sender.sent if self.sender else 0
            self.report(self.totals)

    def _fill(self) -> bool:
        """Poll while fewer than ``ahead`` batches wait (without blocking when some do)
        and hand each new batch to the check pool; True if messages came in."""
        assert self.consumer is not None
        if len(self._ahead) >= self._depth:
            return False
        try:
            polled = self.consumer.poll(
                timeout_ms=0 if self._ahead else self.options.poll_ms,
                max_records=self.options.batch_size,
            )
        except OffsetOutOfRangeError as exc:
            self._out_of_range(exc)
            return False
        except KafkaError as exc:
            if not self._ahead:
                self._waiting(f"the broker (poll failed: {exc})")
                self._sleep(1.0)
            return False
        self._verify_ends()
        messages: list[Message] = [
            m for records in polled.values() for m in records if not self._is_stopped(m)
        ]
        for chunk in chunks(messages, self.options.batch_size, self.options.batch_bytes):
            self._ahead.append(_Ahead(chunk, self._prepare(chunk), self._generation))
        return bool(messages)

    def _prepare(self, chunk: list[Message]) -> Future[Prepared]:
        args = (
            self.feed.allowed_organisations,
            self.ledger.settings.future_tolerance,
        )
        if self._decode_there:
            return self.checks.submit(prepare, self.feed.decode, chunk, *args)
        # A decode that cannot travel to a worker (a closure): decode here, check there.
        return self.checks.submit(check_decoded, decode_batch(self.feed.decode, chunk), *args)

    def _write_next(self) -> None:
        """Write the oldest batch waiting, unless the positions moved since it was read
        (a rebalance, a re-seek, a partition stopped): then every batch waiting is
        dropped and each partition re-sought from PostgreSQL, so nothing is skipped."""
        head = self._ahead[0]
        if head.generation != self._generation:
            self._drop_ahead()
            self._resync()
            return
        prepared = head.prepared.result()
        self._ahead.popleft()
        if not self._commit(head.messages, prepared):
            self._drop_ahead()  # re-sought from PostgreSQL: the rest will come again

    def _drop_ahead(self) -> None:
        for waiting in self._ahead:
            waiting.prepared.cancel()
        self._ahead.clear()

    def _apply_retention(self) -> None:
        """The scheduled retention step: never stops consuming when it fails."""
        try:
            with self.ledger.connection() as conn:
                done = retention.purge(conn, self.ledger.settings.rejection_retention_days)
        except (psycopg.Error, *RETRYABLE_DB) as exc:
            log.warning("retention step failed (%s); will retry", type(exc).__name__)
            self._retention_due = time.monotonic() + 60.0
            return
        if done.deleted or done.stripped:
            log.info("retention: %d rejection(s) deleted, %d stripped", done.deleted, done.stripped)

    def _commit(self, chunk: Sequence[Message], prepared: Prepared) -> bool:
        """Record one batch, retrying while PostgreSQL is away; False if re-sought."""
        delay = 0.5
        partitions = {(m.topic, m.partition) for m in chunk}
        while True:
            expected = {tp: self.expected.get(tp) for tp in partitions}
            try:
                outcomes = record_prepared(self.ledger, self.feed, chunk, prepared, expected)
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
                # Checked again against the clock of the retry, as the batch first was.
                prepared = prepare(
                    self.feed.decode,
                    chunk,
                    self.feed.allowed_organisations,
                    self.ledger.settings.future_tolerance,
                )
        self._fenced = 0
        self._committed(outcomes)
        if any(o.status == "held" for o in outcomes):
            self._holding = True
        return True

    def _committed(self, outcomes: Sequence[Outcome]) -> None:
        last: dict[tuple[str, int], int] = {}
        for o in outcomes:
            tp = (o.message.topic, o.message.partition)
            last[tp] = max(o.message.offset, last.get(tp, -1))
            self.totals.statuses[o.status] += 1
            if o.refused and self.sender is not None:
                self.sender.wake()
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

    def _connect(self, *, sender: bool = True) -> None:
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
                    self.topic_ids = self.broker.topic_ids(self.feed.topics)
                    self.consumer = self.broker.consumer(
                        self.options.group_id, self.options.batch_size, reset="none"
                    )
                    break
                self._waiting(f"topics {', '.join(missing)} to exist")
            except KafkaError as exc:
                self._waiting(f"the broker at {self.broker.bootstrap_servers} ({exc})")
            self._sleep(delay)
            delay = min(delay * 2, self.options.max_backoff)
        if sender:
            self.sender = deadletter.Sender(
                self.ledger,
                self._dead_letter_producer,
                self.feed.topics,
                DEAD_LETTER_RETRY_SECONDS,
            )
            self.sender.start()
        if self.options.group_id is None:
            partitions = [TopicPartition(t, p) for t in self.feed.topics for p in range(counts[t])]
            self.consumer.assign(partitions)
            self.assigned(partitions)
        else:
            self._join_started = time.monotonic()
            self.consumer.subscribe(list(self.feed.topics), listener=_Rebalance(self))

    def _dead_letter_producer(self) -> tuple[KafkaProducer, int]:
        """A producer whose request limit follows what the dead-letter topic takes."""
        limit = self.broker.message_limit(self.feed.dead_letter_topic)
        return self.broker.producer(max_request_size=limit), limit

    def assigned(self, partitions: Sequence[TopicPartition]) -> None:
        """Seek each partition to its stored offset + 1 (or its beginning), unless
        reading there would skip messages (see the module docstring)."""
        assert self.consumer is not None
        self._generation += 1  # every position is set again below
        if self._join_started is not None:
            log.info(
                "group %s joined after %.0f s",
                self.options.group_id,
                time.monotonic() - self._join_started,
            )
            self._join_started = None
        wanted = [(tp.topic, tp.partition) for tp in partitions]

        def read(
            conn: psycopg.Connection[DictRow],
        ) -> tuple[
            dict[tuple[str, int], int], dict[tuple[str, int], str], dict[tuple[str, int], str]
        ]:
            return (
                offsets.stored_offsets(conn, wanted),
                offsets.stored_topic_ids(conn, wanted),
                offsets.stopped_partitions(conn, self.feed.topics),
            )

        stored, stored_ids, stops = self._with_database(read)
        try:
            self.topic_ids.update(self.broker.topic_ids(self.feed.topics))
        except KafkaError as exc:
            log.warning("topic ids not readable now (%s): using those of start-up", exc)
        for tp in partitions:
            key = (tp.topic, tp.partition)
            offset = stored.get(key)
            self.expected[key] = offset
            now_id, then_id = self.topic_ids.get(tp.topic), stored_ids.get(key)
            if offset is None or offset < 0:  # every partition needs a position, even paused
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset + 1)
            if key in stops:
                self._pause(tp, stops[key])
            elif now_id and then_id and now_id != then_id:
                self._stop_partition(
                    offsets.Stop(
                        tp.topic,
                        tp.partition,
                        offset,
                        None,
                        then_id,
                        now_id,
                        _made_again(tp.topic, offset, then_id, now_id),
                    )
                )
        log.info(
            "assigned %s",
            ", ".join(f"{t}:{p}@{stored.get((t, p), -1) + 1}" for t, p in wanted) or "nothing",
        )

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """Nothing to commit: the offsets are in PostgreSQL with the events (and what
        was read ahead is dropped before anything more is written)."""
        self._generation += 1
        if self._join_started is None:
            self._join_started = time.monotonic()
        for tp in partitions:
            self.expected.pop((tp.topic, tp.partition), None)
            self.stopped.pop((tp.topic, tp.partition), None)

    # -- never skipping ----------------------------------------------------------------

    def _verify_ends(self) -> None:
        """After each poll, for every partition read: does it still reach the offset
        stored for it (the fetch's high watermark; tansu's ListOffsets cannot be trusted
        for this), and is its topic still the one the offset was stored for (the id in
        the client's metadata)? Either failing means reading on would skip messages."""
        assert self.consumer is not None
        for tp in self.consumer.assignment():
            key = (tp.topic, tp.partition)
            if key in self.stopped:
                continue
            stored = self.expected.get(key)
            end = self.consumer.highwater(tp)
            now_id, then_id = _topic_id(self.consumer, tp.topic), self.topic_ids.get(tp.topic)
            if now_id and then_id and now_id != then_id:
                reason = _made_again(tp.topic, stored, then_id, now_id)
            elif stored is not None and stored >= 0 and end is not None and stored + 1 > end:
                reason = (
                    f"stored offset {stored} lies past the partition's end {end} (the "
                    "broker lost messages, or the partition was made again): reading "
                    f"on would skip offsets {end} to {stored}"
                )
            else:
                continue
            self._stop_partition(
                offsets.Stop(tp.topic, tp.partition, stored, end, then_id, now_id, reason)
            )

    def _out_of_range(self, exc: OffsetOutOfRangeError) -> None:
        """Kafka says the offset we fetch is not in the partition: stop, never reset."""
        found = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        for tp, offset in found.items():
            self._stop_partition(
                offsets.Stop(
                    tp.topic,
                    tp.partition,
                    offset - 1,
                    None,
                    None,
                    self.topic_ids.get(tp.topic),
                    f"the broker says offset {offset} is out of range (messages lost or "
                    "deleted by retention): reading elsewhere would skip messages",
                )
            )
        if not found:
            log.error("Kafka said an offset is out of range (%s); re-seeking", exc)
            self._resync()

    def _stop_partition(self, stop: offsets.Stop) -> None:
        self._with_database(lambda conn: offsets.stop_partition(conn, stop))
        self._pause(TopicPartition(stop.topic, stop.partition), stop.reason)

    def _pause(self, tp: TopicPartition, reason: str) -> None:
        assert self.consumer is not None
        self.consumer.pause(tp)
        self._generation += 1  # read ahead of the stop: not written, read again if reset
        self.stopped[(tp.topic, tp.partition)] = reason
        log.error(
            "partition %s:%s STOPPED: %s. Nothing more is read there until an operator runs "
            "`carejourney consume --reset-partition %s:%s --to earliest|OFFSET`",
            tp.topic,
            tp.partition,
            reason,
            tp.topic,
            tp.partition,
        )

    def _is_stopped(self, m: Message) -> bool:
        return (m.topic, m.partition) in self.stopped

    def _check_stops(self) -> None:
        """Resume the stopped partitions an operator has reset meanwhile."""
        if not self.stopped:
            return
        now = time.monotonic()
        if now - self._stops_checked < STOPS_CHECK_SECONDS:
            return
        self._stops_checked = now
        stops = self._with_database(lambda conn: offsets.stopped_partitions(conn, self.feed.topics))
        lifted = [TopicPartition(t, p) for t, p in self.stopped if (t, p) not in stops]
        if not lifted:
            return
        for tp in lifted:
            del self.stopped[(tp.topic, tp.partition)]
            log.warning("partition %s:%s reset by an operator: reading on", tp.topic, tp.partition)
        # A fresh client: the old one's fetch state for a partition made again was seen
        # to stay at the old partition's high watermark (tansu), reading nothing.
        self._reconnect()

    def _reconnect(self) -> None:
        assert self.consumer is not None
        self.consumer.close(autocommit=False)
        self.consumer = None
        self._drop_ahead()
        self.expected.clear()
        self._connect(sender=False)

    # -- held retractions ------------------------------------------------------------

    def _retry_held(self, *, recorded: bool) -> None:
        if not self._holding or self.feed.retraction_hold <= 0 or self.consumer is None:
            return
        now = time.monotonic()
        if not recorded and now - self._held_at < HELD_RETRY_SECONDS:
            return
        self._held_at = now
        mine = {(tp.topic, tp.partition) for tp in self.consumer.assignment()} - set(self.stopped)
        try:
            done = retry_held(self.ledger, self.feed, mine)
        except FENCED as exc:
            log.info("held messages moved under this consumer (%s)", exc)
            return
        except RETRYABLE_DB as exc:
            log.warning("held messages not retried now (%s)", exc)
            return
        for status, n in done.statuses.items():
            self.totals.statuses[status] += n
            self.totals.statuses["held"] -= n
        if done.dead_lettered and self.sender is not None:
            self.sender.wake()
        if done.statuses:
            log.info(
                "held retractions: %s; %d still held",
                ", ".join(f"{n} {s}" for s, n in sorted(done.statuses.items())),
                done.still_held,
            )
        self._holding = done.still_held > 0 or sum(done.statuses.values()) > 0

    # -- what the loop is doing --------------------------------------------------------

    def _waiting(self, what: str | None) -> None:
        """Say (once, when it changes) what the loop waits for; None: it is consuming."""
        state = "consuming" if what is None else f"waiting for {what}"
        self.totals.waiting = what
        if state != self._state:
            if what is not None:
                log.warning("%s", state)
            elif self._state:
                log.info("consuming again after %.0f s", time.monotonic() - self._state_since)
            self._state = state
            self._state_since = time.monotonic()
            self._heartbeat = 0.0
        self._beat()

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self._heartbeat < min(self.options.report_every, 5.0):
            return
        self._heartbeat = now
        since = time.time() - (now - self._state_since)
        stopped = "; ".join(f"{t}:{p} stopped" for t, p in sorted(self.stopped))
        state = f"{self._state}; {stopped}" if stopped else self._state
        try:
            with self.ledger.connection() as conn:
                processes.beat(conn, self.name, self.feed, self.options.group_id, state, since)
        except RETRYABLE_DB:
            pass  # the batch path reports PostgreSQL being away

    def _watch(self, took_messages: bool) -> None:
        """After each poll: name what nothing came in for."""
        assert self.consumer is not None
        what: str | None = None
        if not took_messages:
            if self.options.group_id is not None and not self.consumer.assignment():
                started = self._join_started or self._state_since
                what = (
                    f"the consumer group {self.options.group_id} to assign partitions "
                    f"(join or rebalance, {time.monotonic() - started:.0f} s so far)"
                )
            elif not _broker_connected(self.consumer):
                what = f"the broker at {self.broker.bootstrap_servers} (not connected)"
            elif self.sender is not None and self.sender.waiting:
                what = self.sender.waiting
        if (
            what is not None
            and what.startswith("the consumer group")
            and self._state.startswith("waiting for the consumer group")
        ):
            self.totals.waiting = what  # the count goes up: no new log line each poll
            self._beat()
            return
        self._waiting(what)

    def _resync(self) -> None:
        assert self.consumer is not None
        self.assigned(sorted(self.consumer.assignment()))

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
        self._drop_ahead()  # read, never written: read again on the next start
        if self.sender is not None:
            self.sender.close(timeout=5)
            self.totals.dead_letters_sent = self.sender.sent
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        try:
            with self.ledger.connection() as conn:
                processes.gone(conn, self.name)
        except RETRYABLE_DB:
            pass


def _travels(decode: Callable[..., object]) -> bool:
    """Can ``decode`` be sent to a worker process (a module-level function can)?"""
    try:
        pickle.dumps(decode)
    except (pickle.PicklingError, AttributeError, TypeError):
        return False
    return True


def _made_again(topic: str, offset: int | None, then_id: str, now_id: str) -> str:
    """Why a partition stops when its topic's id is not the one its offset was stored for."""
    return (
        f"topic {topic} was made again (id {now_id}; the stored offset "
        f"{offset} belongs to id {then_id}): reading on could skip messages"
    )


def _topic_id(consumer: KafkaConsumer, topic: str) -> str | None:
    """The topic's id in the client's metadata (None when it does not know)."""
    try:
        found = consumer._client.cluster.topic_id(topic)
    except Exception:  # a private API: never let it break the loop
        return None
    return str(found) if found else None


def _broker_connected(consumer: KafkaConsumer) -> bool:
    """Is the consumer connected to any broker? (kafka-python reconnects by itself and
    says nothing; True when it cannot tell.)"""
    try:
        client = consumer._client
        return any(client.connected(b.node_id) for b in client.cluster.brokers())
    except Exception:  # a private API: never let it break the loop
        return True


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
