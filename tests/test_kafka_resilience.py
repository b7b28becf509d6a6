"""The consumer under failure: SIGKILL at random points, a PostgreSQL restart mid-ingest,
and two processes sharing the partitions as a consumer group. Each time the ledger ends
up holding exactly the distinct valid input, the counts are exact, and every poison
message reaches the dead-letter topic (at least once, identified by its source)."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka.consumer.fetcher import ConsumerRecord

from consumers.broker import Broker
from consumers.events import envelope_feed
from consumers.feed import record_batch
from consumers.loop import LoopOptions
from domain.ledger import Ledger
from domain.settings import Settings
from tests.fixtures_kafka import kafka_env, produce, read_topic
from tests.kafka_inputs import (
    FeedInput,
    mixed_input,
    recorded_ids,
    running_loop,
    totals,
    wait_for,
)
from tests.own_postgres import pg_ctl, restart

# Every test here runs a real broker and kills or restarts processes.
pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "cli.app", "consume"]
ROOT = Path(__file__).resolve().parent.parent


def _expect_exact(ledger: Ledger, topic: str, feed_input: FeedInput) -> None:
    ids = recorded_ids(ledger)
    assert len(ids) == len(set(ids))
    assert set(ids) == feed_input.valid_ids
    with ledger.connection() as conn:
        counts = totals(conn, topic)
    assert counts == {
        "consumed": feed_input.total,
        "recorded": len(feed_input.valid_ids),
        "duplicates": feed_input.duplicates,
        "conflicts": 0,
        "rejected": len(feed_input.poison),
        "noted": 0,
        "dead_letters_pending": 0,
    }


def _expect_dead_letters(
    broker: Broker, topic: str, feed_input: FeedInput, positions: list[tuple[int, int]]
) -> None:
    """At-least-once: repeats are allowed, identified by their source headers."""
    letters = read_topic(broker, f"{topic}.dlq", len(feed_input.poison))
    sources = set()
    for record in letters:
        h = {k: v.decode() for k, v in record.headers}
        sources.add((int(h["dlq.source.partition"]), int(h["dlq.source.offset"])))
    assert sources == {positions[i] for i in feed_input.poison}


def _all_consumed(ledger: Ledger, topic: str, total: int) -> bool:
    with ledger.connection() as conn:
        if conn.execute("SELECT to_regclass('consumer_partitions') AS t").fetchone()["t"]:
            return totals(conn, topic)["consumed"] == total
    return False


def _consumed(ledger: Ledger, topic: str) -> int:
    with ledger.connection() as conn:
        if conn.execute("SELECT to_regclass('consumer_partitions') AS t").fetchone()["t"]:
            return totals(conn, topic)["consumed"]
    return 0


def _spawn(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )


def test_sigkill_at_random_points_loses_and_doubles_nothing(
    kafka_broker: Broker, make_topic, database_url: str, tmp_path: Path
) -> None:
    topic = make_topic(8)
    # Enough input that three kills land before the end even at a quiet machine's rate
    # (~3,000 messages/s: the 0.2 s poll plus the pause overshoot by up to ~900).
    feed_input = mixed_input(4_000, seed=5)
    positions = list(produce(kafka_broker, topic, feed_input.messages))
    env = kafka_env(kafka_broker, database_url, topic)
    env["CAREJOURNEY_KAFKA_ALLOWED_ORGANISATIONS"] = ",".join(feed_input.organisations)
    env["CAREJOURNEY_CONSUMER_BATCH_SIZE"] = "100"  # many commits: many places to die
    rng = random.Random(2026)
    ledger = Ledger(database_url, Settings())
    log = tmp_path / "consume.log"
    try:
        kills = 0
        for fraction in sorted(rng.uniform(0.1, 0.5) for _ in range(3)):
            proc = _spawn(env, "--assign", log=log)
            target = int(feed_input.total * fraction)
            wait_for(
                lambda t=target, p=proc: _consumed(ledger, topic) >= t or p.poll() is not None,
                120,
                f"{target} messages before the kill",
            )
            time.sleep(rng.uniform(0, 0.1))  # land anywhere: mid-batch, mid-commit, mid-send
            assert proc.poll() is None, log.read_text()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
        consumed = _consumed(ledger, topic)
        assert kills == 3 and consumed < feed_input.total, f"all {consumed} consumed before"
        proc = _spawn(env, "--assign", log=log)
        wait_for(
            lambda: (
                _all_consumed(ledger, topic, feed_input.total)
                and totals_pending(ledger, topic) == 0
            ),
            180,
            "the rest after the kills",
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
        _expect_exact(ledger, topic, feed_input)
    finally:
        ledger.close()
    _expect_dead_letters(kafka_broker, topic, feed_input, positions)


def totals_pending(ledger: Ledger, topic: str) -> int:
    with ledger.connection() as conn:
        return totals(conn, topic)["dead_letters_pending"]


def test_postgres_restart_mid_ingest_loses_and_doubles_nothing(
    kafka_broker: Broker,
    make_topic,
    own_postgres: tuple[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server crashes (``pg_ctl -m immediate``) mid-ingest and is down for longer
    than the connection pool waits, so the loop's own backoff is what carries it."""
    url, server = own_postgres
    monkeypatch.setenv("POSTGRES_CONNECT_TIMEOUT", "1")  # read by eventsourcing's pool
    caplog.set_level(logging.WARNING, logger="consumers")
    topic = make_topic(6)
    # Enough input that the crash lands mid-ingest even at a quiet machine's rate (the
    # loop must be writing to notice the server is gone).
    feed_input = mixed_input(6_000, seed=9)
    positions = list(produce(kafka_broker, topic, feed_input.messages))
    settings = Settings(
        kafka_allowed_organisations=",".join(feed_input.organisations),
        consumer_retraction_hold_seconds=0,  # poison retractions: dead letters at once
    )
    ledger = Ledger(url, settings)
    feed = replace(envelope_feed(settings, [topic]), dead_letter_topic=f"{topic}.dlq")
    options = LoopOptions(group_id=None, batch_size=100, max_backoff=1.0)
    try:
        with running_loop(ledger, feed, kafka_broker, options):
            wait_for(lambda: _consumed(ledger, topic) >= 600, 120, "600 messages")
            pg_ctl(server, "-m", "immediate", "-w", "stop")  # a crash, not a clean stop
            wait_for(
                lambda: "PostgreSQL unavailable" in caplog.text,
                60,
                "the loop to notice the server is gone",
            )
            time.sleep(3)
            restart(server)  # the same data directory and socket
            wait_for(
                lambda: _all_consumed(ledger, topic, feed_input.total),
                180,
                "the rest after the restart",
            )
            wait_for(lambda: totals_pending(ledger, topic) == 0, 60, "the dead letters")
        _expect_exact(ledger, topic, feed_input)
    finally:
        ledger.close()
    _expect_dead_letters(kafka_broker, topic, feed_input, positions)


def _assigned(log: Path) -> list[str]:
    """The partitions a process was given at its last assignment (its log lines)."""
    lines = re.findall(r"assigned (.*)", log.read_text())
    return [] if not lines else [p for p in lines[-1].split(", ") if p != "nothing"]


def test_two_consumers_in_one_group_share_the_partitions(
    kafka_broker: Broker, make_topic, database_url: str, tmp_path: Path
) -> None:
    topic = make_topic(6)
    feed_input = mixed_input(2_000, seed=13)
    half = feed_input.total // 2
    env = kafka_env(kafka_broker, database_url, topic)
    env["CAREJOURNEY_KAFKA_ALLOWED_ORGANISATIONS"] = ",".join(feed_input.organisations)
    env["CAREJOURNEY_CONSUMER_BATCH_SIZE"] = "100"
    group = f"g-{topic}"
    ledger = Ledger(database_url, Settings())
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        positions = list(produce(kafka_broker, topic, feed_input.messages[:half]))
        procs.append(_spawn(env, "--group", group, log=logs[0]))
        wait_for(lambda: _consumed(ledger, topic) > 0, 120, "the first member to consume")
        procs.append(_spawn(env, "--group", group, log=logs[1]))  # rebalance mid-ingest
        wait_for(lambda: _assigned(logs[1]) != [], 120, "the second member's partitions")
        positions += list(produce(kafka_broker, topic, feed_input.messages[half:]))
        wait_for(
            lambda: (
                _all_consumed(ledger, topic, feed_input.total)
                and totals_pending(ledger, topic) == 0
            ),
            180,
            "everything",
        )
        a, b = _assigned(logs[0]), _assigned(logs[1])
        assert a and b and not set(a) & set(b), (a, b)
        assert {p.split("@")[0] for p in a + b} == {f"{topic}:{p}" for p in range(6)}
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(60) for proc in procs] == [0, 0]
        _expect_exact(ledger, topic, feed_input)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        ledger.close()
    _expect_dead_letters(kafka_broker, topic, feed_input, positions)


def test_consume_stats_prints_exact_counts(database_url: str, ledger: Ledger) -> None:
    """``consume --stats --json`` reads the counters PostgreSQL committed with the events."""
    feed = envelope_feed(ledger.settings, ["t.stats"])
    records = [
        ConsumerRecord("t.stats", 2, -1, o, 0, 0, None, v, [], None, 0, len(v), -1)
        for o, v in ((7, b"{"), (8, b"[]"))
    ]
    record_batch(ledger, feed, records, {("t.stats", 2): None})
    env = dict(
        os.environ, CAREJOURNEY_DATABASE_URL=database_url, CAREJOURNEY_EVENTS_TOPIC="t.stats"
    )
    done = subprocess.run(
        [*CLI, "--stats", "--json"], env=env, cwd=ROOT, capture_output=True, timeout=120, check=True
    )
    (row,) = json.loads(done.stdout)
    assert row["topic"] == "t.stats" and row["partition"] == 2 and row["last_offset"] == 8
    assert (row["consumed"], row["rejected"], row["recorded"]) == (2, 2, 0)
    assert row["dead_letters_pending"] == 2
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM consumer_rejections").fetchone()[0] == 2
