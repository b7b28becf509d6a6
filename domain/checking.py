"""Checking batches in worker processes while one writer appends (issue 16).

The check of a batch (the contract, the publisher's organisations, the future horizon,
each item's canonical content and its hash: ``judgement.check_batch``) needs no
database and is about half of an append's CPU. ``CheckPool`` runs it in worker
processes for a stream of batches, while the caller judges and writes the batches
before (``Ledger.append_checked``), so on two cores both are busy: the writer holds
the ledger's lock only for what needs it, and the next batches are being checked
meanwhile. Results come back in the batches' order, with at most ``ahead`` batches in
flight, so memory stays bounded for a stream of any length.

What travels back is plain data (``judgement.Checked``: contents, hashes, identifiers,
results): unpickling the contract's pydantic models cost more than validating them.
Workers are forked when the pool is made (make it before opening the ledger); with ``workers=0``
every batch is checked in the calling process, just before it is written, which is
exactly what ``Ledger.append_batch`` does.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import timedelta
from types import TracebackType
from typing import Any, TypeVar

from domain.judgement import Checked, RawEnvelope, check_batch

T = TypeVar("T")
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class CheckPool:
    """``check_batch`` for a stream of batches, in ``workers`` processes (0: in this one)."""

    def __init__(
        self,
        workers: int,
        tolerance: timedelta,
        allowed: Collection[str] | None = None,
        *,
        ahead: int | None = None,
    ) -> None:
        self.workers = workers
        self.tolerance = tolerance
        self.allowed = None if allowed is None else frozenset(allowed)
        self.ahead = ahead if ahead is not None else 2 * workers
        self._pool: ProcessPoolExecutor | None = None
        if workers > 0:
            # Forked, so a worker starts with everything imported (a fork server or
            # spawn would import the caller's whole ``__main__``, the CLI, per worker),
            # and forked now, at the first submit, before the caller opens the ledger:
            # its connection pool's threads do not exist yet in the children.
            self._pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=_worker
            )
            self._pool.submit(check_batch, [], None, tolerance).result()

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def checked(
        self, batches: Iterable[T], items: Callable[[T], Sequence[RawEnvelope]]
    ) -> Iterator[tuple[T, Checked]]:
        """Each batch with its check, in order; ``items(batch)`` is what is checked.
        Batches are read from ``batches`` only as far as ``ahead`` allows."""
        if self._pool is None:
            for batch in batches:
                yield batch, check_batch(items(batch), self.allowed, self.tolerance)
            return
        pending: deque[tuple[T, Future[Checked]]] = deque()
        source = iter(batches)
        for batch in source:
            pending.append((batch, self._submit(items(batch))))
            if len(pending) > self.ahead:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()

    def submit(self, work: Callable[..., T], *args: Any) -> Future[T]:
        """``work(*args)`` in a worker (a module-level function of plain data), or at
        once in this process with no workers: for a caller that checks more than the
        envelopes (the Kafka loop decodes its messages there too) and orders its own
        batches."""
        if self._pool is None:
            done: Future[T] = Future()
            try:
                done.set_result(work(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        return self._pool.submit(work, *args)

    def _submit(self, items: Sequence[RawEnvelope]) -> Future[Checked]:
        assert self._pool is not None
        return self._pool.submit(check_batch, list(items), self.allowed, self.tolerance)


def _worker() -> None:
    """A worker leaves stopping to its parent (a Ctrl-C reaches the whole process group;
    the parent finishes the batch in flight) and dies with it: a parent killed with
    SIGKILL would otherwise leave it waiting for work forever. (Linux only; the signal
    comes when the thread that made the pool ends: the main thread, in the CLI.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
