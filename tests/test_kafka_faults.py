"""Kafka faults found with a publisher the project did not write (issue 16), each against
the real test broker (tansu) and real PostgreSQL:

1. a refused message over the dead-letter topic's limit is sent truncated with the
   reason, exactly once, and holds back no other dead letter;
2. after a broker restart the dead-letter producer is made anew and consumption never
   waits for the dead-letter topic;
3. a stored offset past the partition's end (the broker lost data) or a topic made
   again stops that partition loudly until the operator resets it: nothing skipped;
4. a retraction read before its target is held and retried, and dead-lettered with the
   reason only when its hold runs out;
and a consumer-group join is reported while it is waited for.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from kafka import KafkaProducer

from api.metrics import exposition
from consumers import deadletter, offsets, processes
from consumers.broker import DEFAULT_MAX_MESSAGE_BYTES, Broker, message_limit_of
from consumers.events import envelope_feed
from consumers.loop import LoopOptions
from domain.ledger import Ledger
from domain.settings import Settings
from tests.envelopes import NHS_A, NHS_B, envelope, later, retraction
from tests.fixtures_kafka import (
    free_port,
    kafka_env,
    produce,
    read_topic,
    start_tansu,
    stop_process,
    wait_for_broker,
)
from tests.kafka_inputs import consumed, recorded_ids, running_loop, totals, wait_for

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "cli.app", "consume"]


def _headers(record: object) -> dict[str, bytes]:
    return dict(record.headers)  # type: ignore[attr-defined]


def _counts(ledger: Ledger, topic: str) -> dict[str, int]:
    offsets.ensure_tables(ledger)
    with ledger.connection() as conn:
        rows = offsets.partition_stats(conn, [topic])
    out = {n: sum(getattr(r, n) for r in rows) for n in ("consumed", "recorded", "rejected")}
    out["held"] = sum(r.held for r in rows)
    out["pending"] = sum(r.dead_letters_pending for r in rows)
    return out


def _feed(ledger: Ledger, topic: str, hold: float = 0.0):
    return replace(
        envelope_feed(ledger.settings, [topic]),
        dead_letter_topic=f"{topic}.dlq",
        retraction_hold=hold,
    )


# -- 1. oversized dead letters -------------------------------------------------------------


def test_the_dead_letter_limit_follows_what_the_broker_reports(kafka_broker: Broker) -> None:
    """The smaller of the topic's and the brokers' limits; Kafka's default when no
    config says (tansu reports none)."""
    described = [
        {"topic": {"t.dlq": {"max.message.bytes": "200000", "cleanup.policy": "delete"}}},
        {"broker": {"1": {"message.max.bytes": "1048588"}}},
    ]
    assert message_limit_of(described) == 200_000
    assert message_limit_of([{"broker": {"1": {"message.max.bytes": "5000000"}}}]) == 5_000_000
    assert message_limit_of([{"topic": {"t": {}}}]) == DEFAULT_MAX_MESSAGE_BYTES
    assert kafka_broker.message_limit("no.such.topic") == DEFAULT_MAX_MESSAGE_BYTES


def test_an_oversized_dead_letter_is_sent_truncated_once_and_blocks_no_other(
    kafka_broker: Broker, make_topic, ledger: Ledger
) -> None:
    topic = make_topic(1)
    big = b'{"event_id": "' + b"x" * 1_500_000 + b'"'  # not JSON, 1.5 MB
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        api_version=kafka_broker.api_version,
        max_request_size=4_000_000,
    )
    values = [b"{small poison", big, b"{another small poison", json.dumps(envelope()).encode()]
    for value in values:
        producer.send(topic, key=NHS_A.encode(), value=value)
    producer.flush(60)
    producer.close(10)
    with running_loop(ledger, _feed(ledger, topic), kafka_broker, LoopOptions(group_id=None)):
        wait_for(lambda: consumed(ledger, topic) == 4, 120, "all four messages")
        wait_for(lambda: _counts(ledger, topic)["pending"] == 0, 60, "every dead letter sent")
        time.sleep(6)  # longer than the retry interval: a jam would re-produce by now
    assert _counts(ledger, topic) == {
        "consumed": 4,
        "recorded": 1,
        "rejected": 3,
        "held": 0,
        "pending": 0,
    }
    letters = read_topic(kafka_broker, f"{topic}.dlq", 3)
    by_offset = {int(_headers(r)["dlq.source.offset"]): r for r in letters}
    assert len(letters) == len(by_offset) == 3  # one each: nothing re-produced
    assert by_offset[0].value == values[0] and by_offset[2].value == values[2]
    cut = by_offset[1]
    h = _headers(cut)
    assert b"over the dead-letter topic's limit" in h["dlq.truncated"]
    assert int(h["dlq.original_size"]) == len(big)
    assert b"not valid JSON" in h["dlq.reason"]
    assert big.startswith(cut.value) and 0 < len(cut.value) < DEFAULT_MAX_MESSAGE_BYTES
    with ledger.connection() as conn:  # the whole message is kept where the header says
        row = conn.execute(
            "SELECT value FROM consumer_rejections WHERE id = %s",
            (int(h["dlq.rejection_id"]),),
        ).fetchone()
    assert bytes(row["value"]) == big


def test_fit_sends_a_reference_when_even_the_headers_are_too_big() -> None:
    from datetime import UTC, datetime

    row = {
        "id": 7,
        "key": b"k" * 100,
        "value": b"v" * 100,
        "header_keys": ["trace"],
        "header_values": [b"h" * 5_000],
        "reason": "not valid JSON",
        "errors": [{"loc": "", "msg": "not valid JSON"}],
        "status": "rejected",
        "event_id": None,
        "topic": "t",
        "partition": 0,
        "offset": 3,
        "created_at": datetime.now(UTC),
    }
    key, value, headers = deadletter.fit(row, 10_000)
    assert (key, value) == (row["key"], row["value"])
    key, value, headers = deadletter.fit(row, 2_000)
    names = [k for k, _ in headers]
    assert key is None and value is None and "trace" not in names
    assert dict(headers)["dlq.rejection_id"] == b"7"
    assert deadletter.record_size(key, value, headers) <= 2_000


# -- 2 and 3. a broker restart that lost its data ---------------------------------------------


def test_a_broker_that_lost_its_data_stops_the_partition_until_reset(
    ledger: Ledger, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker restarts empty and the topic is made again: the stored offsets lie past
    the new partitions' ends. The consumer stops those partitions loudly (error log,
    ``consumer_stopped``, ``--stats``), records nothing of the new messages until the
    operator resets, then records them all; dead letters after the restart arrive (the
    producer is made anew) and never held up consumption."""
    caplog.set_level(logging.INFO, logger="consumers")
    port = free_port()
    broker = Broker(f"127.0.0.1:{port}", (2, 8), timeout_ms=2_000)
    topic = "lost.events"
    proc = start_tansu(port, tmp_path / "tansu.log")
    before = [envelope(at=later(i)) for i in range(6)]
    after = [envelope(nhs=NHS_B, at=later(i)) for i in range(3)]
    feed = _feed(ledger, topic)
    try:
        wait_for_broker(broker)
        broker.create_topics({topic: 1, f"{topic}.dlq": 1})
        produce(broker, topic, [(NHS_A.encode(), json.dumps(e).encode()) for e in before])
        produce(broker, topic, [(NHS_A.encode(), b"{poison before")])
        options = LoopOptions(group_id=None, max_backoff=1.0, report_every=1.0)
        with running_loop(ledger, feed, broker, options) as loop:
            wait_for(lambda: consumed(ledger, topic) == 7, 60, "the first seven messages")
            wait_for(lambda: _counts(ledger, topic)["pending"] == 0, 60, "the first dead letter")
            stop_process(proc)  # memory storage: everything is gone
            proc = start_tansu(port, tmp_path / "tansu.log")
            wait_for_broker(broker)
            broker.create_topics({topic: 1, f"{topic}.dlq": 1})
            produce(
                broker,
                topic,
                [(NHS_B.encode(), json.dumps(e).encode()) for e in after]
                + [(NHS_B.encode(), b"{poison after")],
            )
            wait_for(lambda: bool(loop.stopped), 90, "the partition to be stopped")
            time.sleep(3)  # it would have read the new messages by now
            assert consumed(ledger, topic) == 7
            assert not set(recorded_ids(ledger)) & {e["event_id"] for e in after}
            with ledger.connection() as conn:
                (stats,) = offsets.partition_stats(conn, [topic])
            assert (stats.stopped and "made again" in stats.stopped) or "past the" in (
                stats.stopped or ""
            )
            shown = subprocess.run(
                [*CLI, "--stats", "--topic", topic],
                env=kafka_env(broker, database_url, topic),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            text = " ".join(shown.stdout.split())  # rich wraps at the terminal's width
            assert f"STOPPED {topic}:0" in text
            assert f"--reset-partition {topic}:0 --to earliest|OFFSET" in text
            assert "stopped for" in text  # the running consumer's state
            subprocess.run(
                [*CLI, "--reset-partition", f"{topic}:0", "--to", "earliest"],
                env=kafka_env(broker, database_url, topic),
                cwd=ROOT,
                capture_output=True,
                timeout=120,
                check=True,
            )
            wait_for(lambda: consumed(ledger, topic) == 11, 90, "the new messages after reset")
            wait_for(lambda: _counts(ledger, topic)["pending"] == 0, 90, "the new dead letter")
    finally:
        stop_process(proc)
    assert set(recorded_ids(ledger)) == {e["event_id"] for e in before + after}
    assert any(r.levelno == logging.ERROR and "STOPPED" in r.getMessage() for r in caplog.records)
    with ledger.connection() as conn:
        assert offsets.stopped_partitions(conn, [topic]) == {}
        assert totals(conn, topic)["rejected"] == 2


def test_a_stored_offset_past_the_end_stops_the_partition(
    kafka_broker: Broker, make_topic, ledger: Ledger
) -> None:
    """Without a restart: offsets stored for a longer partition (a restored backup of
    the database, another cluster) stop the partition; the topic id check does the same
    for a topic made again."""
    topic, other = make_topic(1), make_topic(1)
    events = [envelope(at=later(i)) for i in range(3)]
    produce(kafka_broker, topic, [(NHS_A.encode(), json.dumps(e).encode()) for e in events])
    produce(kafka_broker, other, [(NHS_A.encode(), json.dumps(envelope(nhs=NHS_B)).encode())])
    with ledger.connection() as conn:
        offsets.migrate(conn)
        offsets.reset_partition(conn, topic, 0, 100)  # stored offset 99: past the end (3)
        offsets.reset_partition(conn, other, 0, 0)
        conn.execute(
            "UPDATE consumer_partitions SET topic_id = 'the-old-one' WHERE topic = %s", (other,)
        )
        conn.commit()
    both = replace(_feed(ledger, topic), topics=(topic, other))
    with running_loop(ledger, both, kafka_broker, LoopOptions(group_id=None)) as loop:
        wait_for(lambda: len(loop.stopped) == 2, 60, "both partitions stopped")
    assert "past the partition's end 3" in loop.stopped[(topic, 0)]
    assert "made again" in loop.stopped[(other, 0)]
    assert recorded_ids(ledger) == []
    with ledger.connection() as conn:
        health = {r["topic"]: r for r in offsets.health(conn)}
    assert health[topic]["stopped"] == health[other]["stopped"] == 1
    text = exposition(lambda: [], lambda: list(health.values())).decode()
    assert f'carejourney_consumer_partitions_stopped{{topic="{topic}"}} 1.0' in text


# -- 4. a retraction before its target -------------------------------------------------------


def test_a_retraction_read_before_its_target_is_held_then_recorded(
    kafka_broker: Broker, make_topic, ledger: Ledger
) -> None:
    topic = make_topic(2)
    target = envelope(at=later(1))
    early = retraction(target, at=later(2))
    orphan = retraction(envelope(at=later(3)), at=later(4))  # its target never comes
    producer = kafka_broker.producer()
    producer.send(topic, partition=0, key=b"a", value=json.dumps(early).encode())
    producer.send(topic, partition=0, key=b"a", value=json.dumps(orphan).encode())
    producer.flush(30)
    feed = _feed(ledger, topic, hold=8.0)
    with running_loop(ledger, feed, kafka_broker, LoopOptions(group_id=None)):
        wait_for(lambda: _counts(ledger, topic)["held"] == 2, 60, "both retractions held")
        assert _counts(ledger, topic)["rejected"] == 0
        producer.send(topic, partition=1, key=b"b", value=json.dumps(target).encode())
        producer.flush(30)
        wait_for(lambda: early["event_id"] in recorded_ids(ledger), 60, "the held retraction")
        assert _counts(ledger, topic)["held"] == 1  # the orphan still waits
        wait_for(lambda: _counts(ledger, topic)["held"] == 0, 60, "the orphan's hold to end")
        wait_for(lambda: _counts(ledger, topic)["pending"] == 0, 60, "its dead letter")
    producer.close(10)
    assert set(recorded_ids(ledger)) == {target["event_id"], early["event_id"]}
    assert _counts(ledger, topic) == {
        "consumed": 3,
        "recorded": 2,
        "rejected": 1,
        "held": 0,
        "pending": 0,
    }
    (letter,) = read_topic(kafka_broker, f"{topic}.dlq", 1)
    reason = _headers(letter)["dlq.reason"].decode()
    assert "to retract (yet)" in reason and "held" in reason and "never came" in reason
    assert json.loads(letter.value)["event_id"] == orphan["event_id"]


# -- the group join --------------------------------------------------------------------------


def test_the_group_join_wait_is_logged_and_shown(
    kafka_broker: Broker, make_topic, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="consumers")
    topic = make_topic(1)
    produce(kafka_broker, topic, [(NHS_A.encode(), json.dumps(envelope()).encode())])
    options = LoopOptions(group_id=f"g-{topic}", report_every=1.0)
    seen: list[str] = []
    with running_loop(ledger, _feed(ledger, topic), kafka_broker, options):

        def joined() -> bool:
            offsets.ensure_tables(ledger)
            with ledger.connection() as conn:
                seen.extend(p.state for p in processes.states(conn, [topic]))
            return consumed(ledger, topic) == 1

        wait_for(joined, 180, "the group join and the message")
    assert any("waiting for the consumer group" in s for s in seen), seen
    messages = [r.getMessage() for r in caplog.records]
    assert any("waiting for the consumer group" in m for m in messages)
    assert any(m.startswith(f"group g-{topic} joined after") for m in messages)
    with ledger.connection() as conn:  # a clean stop leaves no stale process row
        assert processes.states(conn, [topic]) == []


def test_settings_hold_retractions_by_default() -> None:
    assert Settings().consumer_retraction_hold_seconds == 300
    assert envelope_feed(Settings(consumer_retraction_hold_seconds=12)).retraction_hold == 12
