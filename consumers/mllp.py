"""HL7 v2 over MLLP into the ledger, acknowledged only after commit (docs/adt.md).

Framing is python-hl7's asyncio MLLP server (``hl7.mllp.start_hl7_server``: start block
0x0B, end 0x1C 0x0D, its ``limit`` is ``CAREJOURNEY_MLLP_MAX_BYTES``); mapping and
recording are the ADT import's own (``consumers/adt_ingest.append_messages``), so a
message gets the same result over MLLP as from ``carejourney adt import``; refusals are
kept for the publisher (``consumers/publisher_outcomes.py``).

Why the ACK waits for the commit: ``AA`` makes an interface engine drop the message from
its queue, so an ``AA`` for anything not yet durable could lose it. Each connection reads
messages as fast as they come and hands them to one committer for the whole process; the
committer records everything waiting (from every connection, in arrival order, up to
``most``) in one transaction, and only then are the ACKs written, in each connection's
order. Messages that arrive while a transaction runs go together in the next one
(pipelining), so a sender that does not wait for each ACK costs one commit per batch.

When a transaction fails (PostgreSQL down) no ACK is sent for its messages: every
connection that had one in it is closed, and that connection's messages still waiting
are dropped unrecorded. The sender sees no ACK and resends from its first unacknowledged
message once it reconnects; what had committed comes back as a duplicate and gets ``AA``.
So nothing is lost, nothing doubled, and a connection's messages never commit out of
order. The committer waits (0.5 s doubling to ``max_backoff``) before trying again.

A connection with bad framing (no start block, a block over the limit, binary garbage)
is closed after its earlier messages are answered; so is one silent for
``CAREJOURNEY_MLLP_IDLE_TIMEOUT_SECONDS`` (also the longest a whole message, or an ACK
write, may take). Neither touches the listener or any other connection. Logs name the
peer, MSH-10 and the outcome, never an identifier or a reason text (which may quote one).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hl7.mllp import InvalidBlockError, start_hl7_server
from hl7.mllp.streams import HL7StreamReader, HL7StreamWriter

from consumers import acknowledgement
from consumers import publisher_outcomes as outcomes
from consumers.acknowledgement import Answer
from consumers.adt_ingest import append_messages
from consumers.hl7v2 import namespace, text_of, value
from domain.database import RETRYABLE_DB
from domain.ledger import Ledger
from domain.settings import Settings

log = logging.getLogger(__name__)


class NotCommitted(Exception):
    """The message's transaction did not commit (or it was dropped behind one that did
    not): the connection closes without an ACK, and the sender resends."""


@dataclass(slots=True)
class _Connection:
    peer: str
    failed: bool = False


@dataclass(slots=True)
class _Pending:
    raw: bytes
    connection: _Connection
    done: asyncio.Future[bytes]


@dataclass(slots=True)
class Stats:
    """Counts since start (read by tests and the bench; logged on stop)."""

    connections: int = 0
    messages: int = 0
    transactions: int = 0
    failed_transactions: int = 0
    framing_faults: int = 0
    timeouts: int = 0
    codes: dict[str, int] = field(default_factory=dict)


class Committer:
    """The process's one queue into the ledger: a transaction at a time."""

    def __init__(
        self, ledger: Ledger, settings: Settings, *, most: int = 500, max_backoff: float = 5.0
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.most = most
        self.max_backoff = max_backoff
        self.stats = Stats()
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._ids = itertools.count(1)
        self._prefix = f"CJ{int(time.time()):x}"

    def submit(self, raw: bytes, connection: _Connection) -> asyncio.Future[bytes]:
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(raw, connection, done))
        self._wake.set()
        return done

    async def run(self) -> None:
        delay = 0.5
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                if not batch:
                    continue
                try:
                    acks = await asyncio.to_thread(self._commit, [p.raw for p in batch])
                except RETRYABLE_DB as exc:
                    self.stats.failed_transactions += 1
                    log.warning(
                        "PostgreSQL unavailable (%s): %d message(s) not recorded, not"
                        " acknowledged; their connections close so senders resend",
                        type(exc).__name__,
                        len(batch),
                    )
                    for pending in batch:
                        pending.connection.failed = True
                        _settle(pending.done, NotCommitted("ledger unavailable"))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)
                    continue
                delay = 0.5
                self.stats.transactions += 1
                for pending, ack in zip(batch, acks, strict=True):
                    _settle(pending.done, ack)

    def _take(self) -> list[_Pending]:
        """Up to ``most`` waiting messages, in arrival order; those of a connection that
        failed are dropped (answered by its closing)."""
        batch: list[_Pending] = []
        while self._queue and len(batch) < self.most:
            pending = self._queue.popleft()
            if pending.connection.failed or pending.done.done():
                _settle(pending.done, NotCommitted("dropped behind a failed transaction"))
                continue
            batch.append(pending)
        return batch

    def _commit(self, raws: Sequence[bytes]) -> list[bytes]:
        """Record (one transaction) and build each message's ACK; runs in a thread."""
        headers = [acknowledgement.header(raw) for raw in raws]
        answers: list[Answer | None] = [acknowledgement.precheck(h) for h in headers]
        to_record = [i for i, answer in enumerate(answers) if answer is None]
        texts = [text_of(raws[i]) for i in to_record]
        results = append_messages(self.ledger, texts, self.settings) if texts else []
        refused = outcomes.of_messages(results, texts, self.settings, "mllp")
        refused += [
            outcomes.Refusal(
                self.settings.adt_facilities.get(namespace(h.segment("MSH"), 4))
                if h is not None
                else None,
                "mllp",
                "rejected",
                None,
                value(h.segment("MSH"), 10) if h is not None else None,
                value(h.segment("MSH"), 9, 1, 2) if h is not None else None,
                a.errors,
            )
            for h, a in zip(headers, answers, strict=True)
            if a is not None
        ]
        try:
            outcomes.record(self.ledger, refused)
        except RETRYABLE_DB as exc:  # the events have committed: answer them all the same
            log.warning("refusals not kept (%s): PostgreSQL unavailable", type(exc).__name__)
        for i, result in zip(to_record, results, strict=True):
            answers[i] = (
                acknowledgement.refused(result.status, result.item.errors)
                if result.refused
                else acknowledgement.accepted()
            )
        acks = []
        for source, answer in zip(headers, answers, strict=True):
            assert answer is not None
            self.stats.codes[answer.code] = self.stats.codes.get(answer.code, 0) + 1
            acks.append(acknowledgement.build(source, answer, f"{self._prefix}{next(self._ids)}"))
        return acks


def _settle(done: asyncio.Future[bytes], outcome: bytes | Exception) -> None:
    if done.done():
        return
    if isinstance(outcome, Exception):
        done.set_exception(outcome)
        done.exception()  # a closed connection may never read it: do not warn
    else:
        done.set_result(outcome)


@dataclass(slots=True)
class Listener:
    """The MLLP server and its committer (``serve`` runs both until cancelled)."""

    ledger: Ledger
    settings: Settings
    host: str
    port: int
    most: int = 500
    max_backoff: float = 5.0
    on_listening: Callable[[int], None] | None = None
    committer: Committer | None = None
    _server: Any = None

    async def serve(self) -> None:
        committer = Committer(
            self.ledger, self.settings, most=self.most, max_backoff=self.max_backoff
        )
        self.committer = committer
        worker = asyncio.create_task(committer.run())
        self._server = await start_hl7_server(
            self._connected, self.host, self.port, limit=self.settings.mllp_max_bytes
        )
        port = self._server.sockets[0].getsockname()[1]
        log.warning("MLLP listener on %s:%d", self.host, port)
        if self.on_listening is not None:
            self.on_listening(port)
        try:
            async with self._server:
                await self._server.serve_forever()
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _connected(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        assert self.committer is not None
        peer = writer.get_extra_info("peername")
        connection = _Connection(f"{peer[0]}:{peer[1]}" if peer else "?")
        self.committer.stats.connections += 1
        answers: asyncio.Queue[asyncio.Future[bytes] | None] = asyncio.Queue()
        sender = asyncio.create_task(self._answer(answers, writer, connection))
        timeout = self.settings.mllp_idle_timeout_seconds
        try:
            while not connection.failed:
                try:
                    block = await asyncio.wait_for(reader.readblock(), timeout)
                except asyncio.IncompleteReadError as exc:
                    if exc.partial.strip():
                        self._fault(connection, "connection closed inside a message")
                    break
                except TimeoutError:
                    self.committer.stats.timeouts += 1
                    log.warning("%s: nothing for %ss: closing", connection.peer, timeout)
                    break
                except InvalidBlockError:
                    self._fault(connection, "data before the MLLP start block (0x0B)")
                    break
                except ValueError:  # the reader's limit (CAREJOURNEY_MLLP_MAX_BYTES)
                    self._fault(
                        connection,
                        f"message over CAREJOURNEY_MLLP_MAX_BYTES ({self.settings.mllp_max_bytes})",
                    )
                    break
                except (ConnectionError, OSError):
                    break
                self.committer.stats.messages += 1
                await answers.put(self.committer.submit(block, connection))
        finally:
            await answers.put(None)
            await sender
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    def _fault(self, connection: _Connection, what: str) -> None:
        assert self.committer is not None
        self.committer.stats.framing_faults += 1
        log.warning("%s: bad MLLP framing (%s): closing the connection", connection.peer, what)

    async def _answer(
        self,
        answers: asyncio.Queue[asyncio.Future[bytes] | None],
        writer: HL7StreamWriter,
        connection: _Connection,
    ) -> None:
        """Write each ACK once its message has committed, in the connection's order."""
        timeout = self.settings.mllp_idle_timeout_seconds
        while (done := await answers.get()) is not None:
            try:
                ack = await done
            except NotCommitted:
                connection.failed = True
                writer.transport.abort()  # no ACK: the sender resends
                continue
            if connection.failed:
                continue
            try:
                writer.writeblock(ack)
                await asyncio.wait_for(writer.drain(), timeout)
            except (TimeoutError, ConnectionError, OSError):
                log.warning("%s: ACK not delivered: closing", connection.peer)
                connection.failed = True
                writer.transport.abort()


def run(ledger: Ledger, settings: Settings, host: str, port: int, **kwargs: Any) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end the process; nothing half-done is
    ever acknowledged, so stopping at any point is safe)."""
    listener = Listener(ledger, settings, host, port, **kwargs)
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(listener.serve())
