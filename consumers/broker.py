"""How we talk to Kafka with kafka-python: client options, topics, partitions.

Why a module of its own: every kafka-python client the consumers make (consumer, dead-
letter producer, admin) needs the same bootstrap servers and pinned ``api_version`` (tansu
0.6 needs ``(2, 8)``: kafka-python's version probe fails against it), and start-up must
survive a broker that is not there yet without blocking forever (kafka-python's metadata
calls can wait without limit, so every call here is bounded and the caller retries).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from domain.settings import Settings

log = logging.getLogger(__name__)

UNKNOWN_TOPIC = 3  # Kafka error code UNKNOWN_TOPIC_OR_PARTITION
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes default
LIMIT_CONFIGS = ("max.message.bytes", "message.max.bytes")


def message_limit_of(described: Iterable[object]) -> int:
    """The smallest size limit in ``describe_configs`` answers (kafka-python returns
    ``{"topic"|"broker": {name: {config: value}}}``), or Kafka's default if none says."""
    limits: list[int] = []
    for answer in described:
        if not isinstance(answer, Mapping):
            continue
        for by_name in answer.values():
            for configs in (by_name or {}).values():
                for name in LIMIT_CONFIGS:
                    value = (configs or {}).get(name)
                    if isinstance(value, Mapping):  # some versions give {value: ...}
                        value = value.get("value")
                    if value is not None and str(value).isdigit():
                        limits.append(int(value))
    return min(limits, default=DEFAULT_MAX_MESSAGE_BYTES)


def parse_api_version(text: str | None) -> tuple[int, ...] | None:
    """``"2.8"`` -> ``(2, 8)``; unset lets kafka-python probe the broker."""
    if not text:
        return None
    try:
        return tuple(int(part) for part in text.strip().split("."))
    except ValueError:
        msg = f"Kafka api_version must look like 2.8, not {text!r}"
        raise ValueError(msg) from None


@dataclass(frozen=True, slots=True)
class Broker:
    """Where the brokers are and how to speak to them."""

    bootstrap_servers: str
    api_version: tuple[int, ...] | None = None
    client_id: str = "carejourney"
    timeout_ms: int = 5_000

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        bootstrap_servers: str | None = None,
        api_version: str | None = None,
    ) -> Broker:
        servers = bootstrap_servers or settings.kafka_bootstrap_servers
        if not servers:
            msg = "no Kafka brokers configured: set KAFKA_BOOTSTRAP_SERVERS"
            raise ValueError(msg)
        return cls(servers, parse_api_version(api_version or settings.kafka_api_version))

    def _common(self) -> dict[str, object]:
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "client_id": self.client_id,
            "request_timeout_ms": max(self.timeout_ms, 30_000),
        }
        if self.api_version is not None:
            options["api_version"] = self.api_version
        return options

    def consumer(
        self, group_id: str | None, max_poll_records: int, reset: str = "earliest"
    ) -> KafkaConsumer:
        """A consumer that never commits on its own. ``reset`` is what happens to an
        offset Kafka says is out of range: the ledger's loop passes ``"none"`` (it seeks
        every partition itself and must hear of it, never skip)."""
        return KafkaConsumer(
            **self._common(),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset=reset,
            allow_auto_create_topics=False,
            max_poll_records=max_poll_records,
            bootstrap_timeout_ms=self.timeout_ms,
        )

    def producer(self, max_request_size: int = DEFAULT_MAX_MESSAGE_BYTES) -> KafkaProducer:
        """Dead letters: acknowledged by all in-sync replicas, bounded blocking, requests
        no larger than the broker takes (``message_limit``)."""
        return KafkaProducer(
            **self._common(),
            acks="all",
            linger_ms=5,
            max_block_ms=self.timeout_ms,
            bootstrap_timeout_ms=self.timeout_ms,
            max_request_size=max_request_size,
        )

    def message_limit(self, topic: str) -> int:
        """The largest record ``topic`` takes: the smaller of the topic's
        ``max.message.bytes`` and the brokers' ``message.max.bytes`` where they report
        them, else Kafka's default (tansu reports neither)."""
        admin = self.admin()
        try:
            nodes = [str(b.node_id) for b in admin._client.cluster.brokers()]
            resources = [ConfigResource(ConfigResourceType.TOPIC, topic)] + [
                ConfigResource(ConfigResourceType.BROKER, n) for n in nodes
            ]
            found = [admin.describe_configs([r]) for r in resources]
        except KafkaError as exc:
            log.info("broker configs not readable (%s): assuming Kafka's defaults", exc)
            return DEFAULT_MAX_MESSAGE_BYTES
        finally:
            admin.close()
        return message_limit_of(found)

    def topic_ids(self, topics: Iterable[str]) -> dict[str, str]:
        """Each existing topic's id (changes when a topic is deleted and made again)."""
        return {t["name"]: str(t["topic_id"]) for t in self._existing(topics) if t.get("topic_id")}

    def _existing(self, topics: Iterable[str]) -> list[dict[str, Any]]:
        """The descriptions of the topics that exist (missing ones are left out)."""
        admin = self.admin()
        try:
            found = admin.describe_topics(list(topics))
        finally:
            admin.close()
        return [t for t in found if t["error_code"] != UNKNOWN_TOPIC]

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**self._common(), bootstrap_timeout_ms=self.timeout_ms)

    def partitions(self, topics: Iterable[str]) -> dict[str, int]:
        """Partition counts of the topics that exist (missing ones are left out)."""
        return {t["name"]: len(t["partitions"]) for t in self._existing(topics) if t["partitions"]}

    def create_topics(self, wanted: Mapping[str, int]) -> list[str]:
        """Create the topics that do not exist yet (name -> partitions); returns the
        names created. Replication factor 1: a single broker (tests, compose)."""
        admin = self.admin()
        created: list[str] = []
        try:
            for name, partitions in wanted.items():
                try:
                    admin.create_topics([NewTopic(name, partitions, 1)])
                    created.append(name)
                except TopicAlreadyExistsError:
                    continue
        finally:
            admin.close()
        return created


__all__ = ["Broker", "KafkaError", "parse_api_version"]
