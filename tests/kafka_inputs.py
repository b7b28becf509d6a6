"""Kafka test inputs and waits: a realistic feed with resends and poison, and helpers to
run the consumer loop in a thread and wait for what PostgreSQL says it has done.

The expected outcome is known by construction (never read back from the code under
test): the distinct valid envelopes must be recorded once each, every resend is a
duplicate, every poison message a dead letter with a reason of its kind.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError as LibraryOperationalError

from consumers import offsets
from consumers.broker import Broker
from consumers.feed import Feed
from consumers.loop import ConsumerLoop, LoopOptions
from domain.ledger import Ledger
from domain.synthetic import delivery_order, generate_people
from tests.envelopes import envelope

UNAUTHORISED_ORG = "ZZZ99"
POISON_REASONS = {
    "json": "not valid JSON",
    "contract": "nhs_number",
    "source": "not authorised",
    "retraction": "to retract",
}


@dataclass
class FeedInput:
    """Messages in send order, and what must become of them."""

    messages: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    valid_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    poison: dict[int, str] = field(default_factory=dict)  # message index -> kind
    organisations: frozenset[str] = frozenset()

    @property
    def total(self) -> int:
        return len(self.messages)


def mixed_input(
    total: int, seed: int, *, dup_rate: float = 0.05, poison_rate: float = 0.01
) -> FeedInput:
    """``total`` messages: synthetic envelopes in delivery order, ~dup_rate of them sent
    again later (same key, so a later offset of the same partition), ~poison_rate poison
    spread over the four kinds of refusal."""
    rng = random.Random(seed)
    dups = round(total * dup_rate)
    poison = max(4, round(total * poison_rate))
    wanted = total - dups - poison
    people = list(generate_people(people=max(wanted // 14, 10), seed=seed))
    valid = delivery_order(people, seed)
    if len(valid) < wanted:
        msg = f"synthetic cohort too small: {len(valid)} < {wanted}"
        raise ValueError(msg)
    valid = valid[:wanted]
    organisations = frozenset({e["source"]["organisation"] for e in valid} | {"A81001"})
    numbers = sorted({e["nhs_number"] for e in valid})
    items: list[tuple[float, str, Any]] = [(float(i), "valid", e) for i, e in enumerate(valid)]
    for i in rng.sample(range(wanted), dups):
        items.append((rng.uniform(i + 0.5, wanted), "dup", valid[i]))
    kinds = list(POISON_REASONS)
    for n in range(poison):
        items.append((rng.uniform(0, wanted), kinds[n % len(kinds)], rng.choice(numbers)))
    items.sort(key=lambda item: item[0])
    out = FeedInput(
        valid_ids={e["event_id"] for e in valid}, duplicates=dups, organisations=organisations
    )
    for _, kind, payload in items:
        if kind in ("valid", "dup"):
            out.messages.append((payload["nhs_number"].encode(), json.dumps(payload).encode()))
            continue
        out.poison[len(out.messages)] = kind
        out.messages.append((payload.encode(), _poison(kind, payload)))
    return out


def _poison(kind: str, nhs: str) -> bytes:
    if kind == "json":
        return b'{"event_id": "' + str(uuid.uuid4()).encode() + b'", "type": '
    if kind == "contract":
        bad = nhs[:9] + str((int(nhs[9]) + 1) % 10)  # wrong check digit
        return json.dumps(envelope("CaseIdentified", nhs=bad)).encode()
    if kind == "source":
        return json.dumps(
            envelope("CaseIdentified", nhs=nhs, organisation=UNAUTHORISED_ORG)
        ).encode()
    target = {"retracted_event_id": str(uuid.uuid4()), "reason": "entered in error"}
    return json.dumps(envelope("EventRetracted", nhs=nhs, data=target)).encode()


def totals(conn: psycopg.Connection[Any], topic: str) -> dict[str, int]:
    rows = offsets.partition_stats(conn, [topic])
    names = (
        "consumed",
        "recorded",
        "duplicates",
        "conflicts",
        "rejected",
        "noted",
        "dead_letters_pending",
    )
    return {n: sum(getattr(r, n) for r in rows) for n in names}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition``; a database that is away (a restart test) counts as "not yet"."""
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f} s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.2)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except (LibraryOperationalError, psycopg.OperationalError):
        return False


def consumed(ledger: Ledger, topic: str) -> int:
    with ledger.connection() as conn:
        if conn.execute("SELECT to_regclass('consumer_partitions') AS t").fetchone()["t"] is None:
            return 0
        return totals(conn, topic)["consumed"]


def recorded_ids(ledger: Ledger) -> list[str]:
    with ledger.connection() as conn:
        return [
            str(r["event_id"])
            for r in conn.execute("SELECT event_id FROM ledger_events").fetchall()
        ]


@contextmanager
def running_loop(
    ledger: Ledger, feed: Feed, broker: Broker, options: LoopOptions
) -> Iterator[ConsumerLoop]:
    """The loop in a thread; stopped (like SIGTERM) and joined on exit, its error raised."""
    stop = threading.Event()
    loop = ConsumerLoop(ledger, feed, broker, options, stop)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"consume-{feed.name}", daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the consumer loop did not stop within 60 s"
    if failure:
        raise failure[0]
