"""How a worker process hands publishers' envelopes to the ledger: one transaction at a
time, with envelopes posted one by one while a transaction runs going together in the
next (group commit).

Why one at a time: the database serialises appends on the ledger's table lock anyway;
two in one process only competed for the GIL while one of them held that lock, which
stalled every other process's appends too (bench/api.py's 500-event POSTs: 8,200-9,700
events/s with appends running freely, 11,300-11,600 one at a time, same run).

Why coalesce: a single envelope costs a dozen statements and a commit, about as much as
a batch of a hundred. Envelopes queued behind a running transaction are appended
together, up to ``most`` of them, when they share the caller's organisations (the
ledger checks ``source.organisation`` per batch). Each caller gets its own item's result,
exactly as the ledger's batch semantics give it: items are judged in order, one bad
envelope never affects another, a duplicate within the transaction reports the first
one's position. A batch POST is appended as its own transaction, in its turn. If a
transaction fails as a whole (the database is down), every caller in it gets the error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from functools import partial

import anyio.to_thread

from domain.ledger import BatchResult, Ledger, RawEnvelope


@dataclass(slots=True)
class _Job:
    items: Sequence[RawEnvelope]
    allowed: frozenset[str] | None
    single: bool
    done: asyncio.Future[BatchResult]


class Appender:
    """The process's append queue (``app.state.appender``)."""

    def __init__(self, ledger: Ledger, most: int = 500) -> None:
        self.ledger = ledger
        self.most = most
        self._queue: deque[_Job] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def append(
        self,
        items: Sequence[RawEnvelope],
        allowed: Collection[str] | None,
        *,
        single: bool = False,
    ) -> BatchResult:
        """Append ``items`` as one batch (``single``: one envelope that may share a
        transaction with others); the result lists ``items``' outcomes only, indexed
        from 0."""
        job = _Job(
            items,
            None if allowed is None else frozenset(allowed),
            single,
            asyncio.get_running_loop().create_future(),
        )
        self._queue.append(job)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        # A caller that goes away (client disconnect) stops waiting; its envelopes are
        # appended all the same, like a request whose thread had already started.
        return await asyncio.shield(job.done)

    async def _drain(self) -> None:
        while self._queue:
            jobs = self._take()
            items = [item for job in jobs for item in job.items]
            # Only an administrator's key publishes with no organisations to check: it is
            # also exempt from the authority rules (domain/authority.py).
            call = partial(
                self.ledger.append_batch,
                items,
                allowed_organisations=jobs[0].allowed,
                authority_exempt=jobs[0].allowed is None,
            )
            try:
                result = await anyio.to_thread.run_sync(call)
            except Exception as exc:
                for job in jobs:
                    if not job.done.done():
                        job.done.set_exception(exc)
                continue
            start = 0
            for job in jobs:
                part = result.items[start : start + len(job.items)]
                job.done.set_result(
                    BatchResult([replace(item, index=item.index - start) for item in part])
                )
                start += len(job.items)

    def _take(self) -> list[_Job]:
        """The next job, and the single envelopes queued right behind it with the same
        organisations (when it is one too), up to ``most``."""
        first = self._queue.popleft()
        jobs = [first]
        if first.single:
            while (
                self._queue
                and len(jobs) < self.most
                and self._queue[0].single
                and self._queue[0].allowed == first.allowed
            ):
                jobs.append(self._queue.popleft())
        return jobs
