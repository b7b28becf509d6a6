"""The alerts' Kafka publisher against the real test broker: every change of the alert
feed reaches the topic exactly once, keyed by holder, even when the publisher is
SIGKILLed at random points (mid-batch, between the broker's acknowledgement and the
PostgreSQL commit)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from psycopg.types.json import Jsonb

from consumers.alerts_topic import alert_publisher
from consumers.broker import Broker
from domain.ledger import Ledger
from domain.settings import Settings
from domain.synthetic import delivery_order, generate_people
from projections import alert_feed
from projections.runner import Runner
from tests.fixtures_kafka import kafka_env, read_topic
from tests.kafka_inputs import wait_for

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "cli.app"]


def _load(ledger: Ledger, people: int, seed: int) -> int:
    """A synthetic cohort, projected; the alert feed synced. Returns the feed's head."""
    envelopes = delivery_order(list(generate_people(people=people, seed=seed)), seed)
    for start in range(0, len(envelopes), 2000):
        ledger.append_batch(envelopes[start : start + 2000])
    runner = Runner.for_ledger(ledger)
    runner.migrate()
    runner.run_once()
    with ledger.connection() as conn:
        alert_feed.sync(conn)
        return alert_feed.head(conn)


def _published(ledger: Ledger, topic: str) -> int:
    with ledger.connection() as conn:
        if conn.execute("SELECT to_regclass('topic_publications') AS t").fetchone()["t"] is None:
            return 0
        row = conn.execute(
            "SELECT seq FROM topic_publications WHERE topic = %s", (topic,)
        ).fetchone()
        return 0 if row is None else int(row["seq"])


def _feed(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.connection() as conn:
        return alert_feed.changes(conn, 0, limit=1_000_000)


def _check_topic(broker: Broker, topic: str, feed: list[dict[str, Any]]) -> None:
    records = read_topic(broker, topic, len(feed))
    seqs = Counter(int(dict(r.headers)["seq"]) for r in records)
    doubled = {s for s, n in seqs.items() if n > 1}
    lost = {c["seq"] for c in feed} - set(seqs)
    assert not doubled and not lost, (sorted(doubled)[:10], sorted(lost)[:10])
    by_seq = {c["seq"]: c for c in feed}
    for record in records:
        body = json.loads(record.value)
        change = by_seq[body["seq"]]
        assert body["alert_id"] == str(change["alert_id"]) and body["change"] == change["change"]
        holder = (
            f"team:{change['organisation']}" if change["team_queue"] else change["coordinator_id"]
        )
        assert record.key.decode() == holder
        assert "nhs_number" not in body and "patient_id" not in body
    # One holder's changes are in feed order on their partition.
    last: dict[bytes, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        seq = int(dict(record.headers)["seq"])
        assert seq > last.get(record.key, 0)
        last[record.key] = seq


def test_publisher_sends_each_change_once_in_order(
    kafka_broker: Broker, make_topic, database_url: str
) -> None:
    topic = make_topic(3)
    ledger = Ledger(database_url, Settings())
    try:
        head = _load(ledger, 40, seed=3)
        assert head > 50
        publisher = alert_publisher(database_url, kafka_broker, topic, batch=25)
        with publisher.connect() as conn:
            publisher.migrate(conn)
        while publisher.publish_once().sent:
            pass
        assert _published(ledger, topic) == head
        # A second publisher (a restart) finds everything on the topic, sends nothing.
        again = alert_publisher(database_url, kafka_broker, topic)
        assert again.publish_once().sent == 0
        _check_topic(kafka_broker, topic, _feed(ledger))
    finally:
        if publisher.producer is not None:
            publisher.producer.close(5)
        ledger.close()


def test_a_lost_commit_is_found_on_the_topic_and_not_sent_again(
    kafka_broker: Broker, make_topic, database_url: str
) -> None:
    """The broker took a batch but PostgreSQL never heard: the restart reads the topic."""
    topic = make_topic(2)
    ledger = Ledger(database_url, Settings())
    try:
        head = _load(ledger, 20, seed=4)
        first = alert_publisher(database_url, kafka_broker, topic, batch=10)
        with first.connect() as conn:
            first.migrate(conn)
        first.publish_once()
        with ledger.connection() as conn:
            saved = conn.execute(
                "SELECT seq, offsets FROM topic_publications WHERE topic = %s", (topic,)
            ).fetchone()
        assert saved["seq"] == 10
        first.publish_once()
        with ledger.connection() as conn:  # forget the second batch's commit
            conn.execute(
                "UPDATE topic_publications SET seq = %s, offsets = %s WHERE topic = %s",
                (saved["seq"], Jsonb(saved["offsets"]), topic),
            )
        first.producer.close(5)  # type: ignore[union-attr]
        second = alert_publisher(database_url, kafka_broker, topic, batch=1000)
        done = second.publish_once()
        assert done.skipped == 10 and done.sent == head - 20
        second.producer.close(5)  # type: ignore[union-attr]
        _check_topic(kafka_broker, topic, _feed(ledger))
    finally:
        ledger.close()


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_doubles_no_alert(
    kafka_broker: Broker, make_topic, database_url: str, tmp_path: Path
) -> None:
    topic = make_topic(4)
    ledger = Ledger(database_url, Settings())
    env = kafka_env(kafka_broker, database_url, "unused")
    env["CAREJOURNEY_ALERTS_TOPIC"] = topic
    log = tmp_path / "publish.log"
    rng = random.Random(15)

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [*CLI, "alerts", "publish", "--batch", "7", "--poll", "0.1"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    try:
        head = _load(ledger, 120, seed=15)
        kills = 0
        for fraction in sorted(rng.uniform(0.1, 0.6) for _ in range(3)):
            proc = spawn()
            target = int(head * fraction)
            wait_for(
                lambda t=target, p=proc: _published(ledger, topic) >= t or p.poll() is not None,
                120,
                f"{target} changes published before the kill",
            )
            time.sleep(rng.uniform(0, 0.05))  # land anywhere: mid-batch, mid-commit
            assert proc.poll() is None, log.read_text()[-2000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
        assert kills == 3 and _published(ledger, topic) < head
        proc = spawn()
        wait_for(lambda: _published(ledger, topic) == head, 180, "the rest after the kills")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-2000:]
        _check_topic(kafka_broker, topic, _feed(ledger))
    finally:
        ledger.close()


def test_ledger_topic_has_every_event_once_in_order_without_identifiers(
    kafka_broker: Broker, make_topic, database_url: str
) -> None:
    from consumers.ledger_topic import ledger_publisher

    topic = make_topic(3)
    ledger = Ledger(database_url, Settings())
    try:
        _load(ledger, 15, seed=6)
        head = ledger.head_position()
        first = ledger_publisher(database_url, kafka_broker, topic, "k", batch=50)
        with first.connect() as conn:
            first.migrate(conn)
        first.publish_once()
        with ledger.connection() as conn:
            saved = conn.execute(
                "SELECT seq, offsets FROM topic_publications WHERE topic = %s", (topic,)
            ).fetchone()
        first.publish_once()
        with ledger.connection() as conn:  # the second batch's commit is lost
            conn.execute(
                "UPDATE topic_publications SET seq = %s, offsets = %s WHERE topic = %s",
                (saved["seq"], Jsonb(saved["offsets"]), topic),
            )
        first.producer.close(5)  # type: ignore[union-attr]
        again = ledger_publisher(database_url, kafka_broker, topic, "k", batch=100_000)
        done = again.publish_once()
        assert done.skipped == 50 and done.seq == head
        again.producer.close(5)  # type: ignore[union-attr]
        with ledger.connection() as conn:
            rows = conn.execute(
                "SELECT position, patient_id FROM ledger_events ORDER BY position"
            ).fetchall()
        records = read_topic(kafka_broker, topic, len(rows))
        positions = Counter(int(dict(r.headers)["seq"]) for r in records)
        assert positions == Counter(r["position"] for r in rows)  # each once, none lost
        text = b" ".join(r.value for r in records).decode()
        assert all(str(r["patient_id"]) not in text for r in rows)
        last: dict[bytes, int] = {}
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            body = json.loads(record.value)
            assert record.key.decode() == body["person"]
            assert body["position"] > last.get(record.key, 0)
            last[record.key] = body["position"]
    finally:
        ledger.close()
