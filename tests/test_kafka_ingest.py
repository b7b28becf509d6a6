"""Kafka ingestion in-process against the real broker and PostgreSQL: exactly-once effect,
dead letters with reasons, fencing of a stale consumer, dead letters left unsent by a
crash, and a broker that is not there yet."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path
from uuid import UUID

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from consumers import deadletter, offsets
from consumers.broker import Broker
from consumers.events import envelope_feed
from consumers.feed import record_batch
from consumers.loop import LoopOptions
from domain.ledger import Ledger
from domain.settings import Settings
from tests.envelopes import NHS_A, envelope, later
from tests.fixtures_kafka import (
    free_port,
    produce,
    read_topic,
    start_tansu,
    stop_process,
    wait_for_broker,
)
from tests.kafka_inputs import (
    POISON_REASONS,
    consumed,
    mixed_input,
    recorded_ids,
    running_loop,
    totals,
    wait_for,
)

# Every test here runs a real Kafka-protocol broker (tansu) in a subprocess.
pytestmark = pytest.mark.slow


def _headers(record: ConsumerRecord) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def test_ten_thousand_events_with_resends_and_poison(
    kafka_broker: Broker, make_topic, database_url: str
) -> None:
    """10,000 messages over 50 partitions, ~5% resent, ~1% poison: the ledger holds
    exactly the distinct valid events, the DLQ exactly the poison with its reasons, and
    the per-partition counts are exact."""
    topic = make_topic(50)
    feed_input = mixed_input(10_000, seed=41)
    where = produce(kafka_broker, topic, feed_input.messages)
    positions = list(where)  # (partition, offset) in send order
    assert len({p for p, _ in positions}) > 40  # the keys really spread over the partitions
    settings = Settings(kafka_allowed_organisations=",".join(feed_input.organisations))
    ledger = Ledger(database_url, settings)
    feed = replace(envelope_feed(settings, [topic]), dead_letter_topic=f"{topic}.dlq")
    try:
        with running_loop(ledger, feed, kafka_broker, LoopOptions(group_id=None)):
            wait_for(
                lambda: consumed(ledger, topic) == feed_input.total,
                300,
                "all 10,000 messages to be committed",
            )
        ids = recorded_ids(ledger)
        assert len(ids) == len(set(ids)) == len(feed_input.valid_ids)
        assert set(ids) == feed_input.valid_ids
        with ledger.connection() as conn:
            counts = totals(conn, topic)
        assert counts == {
            "consumed": 10_000,
            "recorded": len(feed_input.valid_ids),
            "duplicates": feed_input.duplicates,
            "conflicts": 0,
            "rejected": len(feed_input.poison),
            "noted": 0,
            "dead_letters_pending": 0,
        }
    finally:
        ledger.close()
    letters = read_topic(kafka_broker, f"{topic}.dlq", len(feed_input.poison))
    by_source = {}
    for record in letters:
        h = _headers(record)
        assert h["dlq.source.topic"] == topic
        by_source[(int(h["dlq.source.partition"]), int(h["dlq.source.offset"]))] = (record, h)
    assert len(letters) == len(by_source) == len(feed_input.poison)
    expected = {positions[i]: kind for i, kind in feed_input.poison.items()}
    assert set(by_source) == set(expected)
    for source, kind in expected.items():
        record, h = by_source[source]
        assert POISON_REASONS[kind] in h["dlq.reason"], (kind, h["dlq.reason"])
        assert record.value == where[source]  # the original bytes
        assert record.key is not None
        assert json.loads(h["dlq.errors"])[0]["msg"]
    assert Counter(h["dlq.status"] for _, h in by_source.values()) == {"rejected": 100}


def _record(
    topic: str, partition: int, offset: int, value: bytes, key: bytes | None = NHS_A.encode()
) -> ConsumerRecord:
    """A record as kafka-python hands it over (the loop's input type)."""
    return ConsumerRecord(
        topic,
        partition,
        -1,
        offset,
        0,
        0,
        key,
        value,
        [("trace", b"t1")],
        None,
        len(key or b""),
        len(value),
        -1,
    )


def test_a_stale_consumer_is_fenced_and_commits_nothing(ledger: Ledger) -> None:
    """After a rebalance the old owner of a partition may still hold a batch: whichever
    commits second finds the stored offset moved and its whole transaction is dropped."""
    feed = envelope_feed(ledger.settings, ["t.fence"])
    first = envelope()
    outcomes = record_batch(
        ledger, feed, [_record("t.fence", 0, 0, json.dumps(first).encode())], {("t.fence", 0): None}
    )
    assert [o.status for o in outcomes] == ["recorded"]
    # The new owner moved on to offset 3; the zombie still believes offset 0 is stored.
    new_owner = envelope("CaseIdentified", at=later(1))
    record_batch(
        ledger,
        feed,
        [_record("t.fence", 0, 3, json.dumps(new_owner).encode())],
        {("t.fence", 0): 0},
    )
    zombie = envelope("Admitted", at=later(2))
    with pytest.raises(offsets.Fenced):
        record_batch(
            ledger,
            feed,
            [
                _record("t.fence", 0, 5, json.dumps(zombie).encode()),
                _record("t.fence", 0, 6, b"not json"),
            ],
            {("t.fence", 0): 0},
        )
    assert ledger.event_status(UUID(zombie["event_id"])) is None
    with ledger.connection() as conn:
        assert offsets.stored_offsets(conn, [("t.fence", 0)]) == {("t.fence", 0): 3}
        assert totals(conn, "t.fence")["consumed"] == 2
        rows = conn.execute("SELECT count(*) AS n FROM consumer_rejections").fetchone()
        assert rows["n"] == 0
    # Replaying an offset already applied is refused by the tracking row itself.
    with pytest.raises(Exception, match="tracking"):
        record_batch(
            ledger,
            feed,
            [_record("t.fence", 0, 3, json.dumps(new_owner).encode())],
            {("t.fence", 0): 3},
        )


def test_dead_letters_left_unsent_by_a_crash_are_sent_on_restart(
    kafka_broker: Broker, make_topic, ledger: Ledger
) -> None:
    """A refusal committed with its batch but never produced (the process died between
    the commit and the send) reaches the DLQ when the next consumer starts."""
    topic = make_topic(1)
    feed = replace(envelope_feed(ledger.settings, [topic]), dead_letter_topic=f"{topic}.dlq")
    where = produce(kafka_broker, topic, [(b"k", b"{oops")])
    ((partition, offset),) = where
    outcomes = record_batch(
        ledger, feed, [_record(topic, partition, offset, b"{oops")], {(topic, partition): None}
    )
    assert outcomes[0].status == "rejected"
    with ledger.connection() as conn:
        assert totals(conn, topic)["dead_letters_pending"] == 1
    with running_loop(ledger, feed, kafka_broker, LoopOptions(group_id=None)):
        wait_for(lambda: _pending(ledger, topic) == 0, 60, "the unsent dead letter")
    (letter,) = read_topic(kafka_broker, f"{topic}.dlq", 1)
    h = _headers(letter)
    assert letter.value == b"{oops"
    assert letter.key == NHS_A.encode()  # the original key and headers travel with it
    assert h["trace"] == "t1"
    assert (h["dlq.source.partition"], h["dlq.source.offset"]) == (str(partition), str(offset))
    assert "not valid JSON" in h["dlq.reason"]
    with ledger.connection() as conn:  # offset 0 was applied: nothing is consumed twice
        assert totals(conn, topic)["consumed"] == 1


def _pending(ledger: Ledger, topic: str) -> int:
    with ledger.connection() as conn:
        return totals(conn, topic)["dead_letters_pending"]


def test_a_broker_that_is_not_there_yet_is_waited_for(ledger: Ledger, tmp_path: Path) -> None:
    """Started before its broker, the consumer retries with backoff, then consumes."""
    port = free_port()
    broker = Broker(f"127.0.0.1:{port}", (2, 8), timeout_ms=1_000)
    feed = replace(
        envelope_feed(ledger.settings, ["late.events"]), dead_letter_topic="late.events.dlq"
    )
    events = [envelope(), envelope("CaseIdentified", at=later(1))]
    with running_loop(ledger, feed, broker, LoopOptions(group_id=None, max_backoff=1.0)):
        proc = start_tansu(port, tmp_path / "tansu.log")
        try:
            wait_for_broker(broker)
            broker.create_topics({"late.events": 2})
            produce(
                broker,
                "late.events",
                [(e["nhs_number"].encode(), json.dumps(e).encode()) for e in events],
            )
            wait_for(lambda: consumed(ledger, "late.events") == 2, 90, "both events")
        finally:
            stop_process(proc)
    assert sorted(recorded_ids(ledger)) == sorted(e["event_id"] for e in events)


def test_scrub_removes_an_erased_number_from_kept_dead_letters(ledger: Ledger) -> None:
    """Kept dead letters hold original bytes; erasing a person scrubs every row that
    mentions the number (in the value, in any usual spelling, or as the key)."""
    feed = envelope_feed(ledger.settings, ["t.erase"])
    other, bad = "4010232137", "9434765918"  # bad: NHS_A with a wrong check digit
    record_batch(
        ledger,
        feed,
        [
            _record("t.erase", 0, 0, json.dumps(envelope()).encode()),
            _record("t.erase", 0, 1, b'{"nhs_number": "943 476 5919", "type": ', key=None),
            _record(
                "t.erase",
                0,
                2,
                json.dumps(envelope("Nope", nhs=other, data={})).encode(),
                key=other.encode(),
            ),
            _record("t.erase", 0, 3, json.dumps(envelope(nhs=bad)).encode(), key=bad.encode()),
            _record("t.erase", 0, 4, json.dumps(envelope("Nope", data={})).encode()),
        ],
        {("t.erase", 0): None},
    )
    patient, scrubbed = deadletter.erase_person(ledger, NHS_A)
    assert patient is not None
    assert scrubbed == 2
    with ledger.connection() as conn:
        rows = {
            r["offset"]: r
            for r in conn.execute(
                'SELECT "offset", key, value, header_values, reason, scrubbed_at'
                " FROM consumer_rejections"
            ).fetchall()
        }
    assert sorted(rows) == [1, 2, 3, 4]
    for offset in (1, 4):
        r = rows[offset]
        assert r["scrubbed_at"] is not None
        assert r["key"] is None and r["value"] is None
        assert r["header_values"] == [None]
    for offset, number in ((2, other), (3, bad)):
        r = rows[offset]
        assert r["scrubbed_at"] is None
        assert number.encode() in bytes(r["value"])
        assert bytes(r["key"]) == number.encode()
    assert deadletter.erase_person(ledger, NHS_A) == (None, 0)  # nothing left to find


def test_cli_erase_scrubs_kept_dead_letters(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``carejourney erase`` is where an operator erases: it reaches the dead letters."""
    from typer.testing import CliRunner

    from cli.app import app
    from domain.settings import get_settings

    feed = envelope_feed(ledger.settings, ["t.cli-erase"])
    record_batch(
        ledger,
        feed,
        [
            _record("t.cli-erase", 0, 0, json.dumps(envelope()).encode()),
            _record("t.cli-erase", 0, 1, json.dumps(envelope("Nope", data={})).encode()),
        ],
        {("t.cli-erase", 0): None},
    )
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["erase", NHS_A])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "scrubbed 1 kept dead letter" in result.output
    with ledger.connection() as conn:
        row = conn.execute("SELECT key, value FROM consumer_rejections").fetchone()
    assert row == {"key": None, "value": None}
