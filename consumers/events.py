"""The envelope feed: topic ``care.events.v1`` carries the contract's JSON envelopes,
keyed by NHS number (one person's events stay in one partition, in order).

Decoding only reads the JSON; the contract, dedupe on ``event_id``, retraction rules
and the source allow-list (``CAREJOURNEY_KAFKA_ALLOWED_ORGANISATIONS``; unset allows every
organisation) are the ledger's, so Kafka, HTTP and ``ingest`` judge an envelope alike.
Everything about offsets, batches and dead letters is the shared loop's
(``consumers/loop.py``, ``consumers/feed.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic_core

from consumers.feed import Decoded, Feed, Rejection
from consumers.outcome import Message
from domain.settings import Settings


def decode_envelope(message: Message) -> Decoded:
    """Raw bytes -> the JSON object for the ledger, or why it is not one.

    Parsing here (with the parser the contract uses) lets a contract failure still
    echo the publisher's ``event_id`` in the dead letter; a JSON value that is not an
    object is passed on for the ledger to name what it is.
    """
    if message.value is None:
        return Rejection.because("empty message: no envelope (a tombstone?)")
    try:
        parsed = pydantic_core.from_json(message.value)
    except ValueError as exc:
        return Rejection.because(f"not valid JSON: {exc}")
    return parsed if isinstance(parsed, dict) else message.value


def envelope_feed(settings: Settings, topics: Sequence[str] | None = None) -> Feed:
    """The ``carejourney consume`` feed, from settings (topics may be overridden)."""
    return Feed(
        name="events",
        topics=tuple(topics or (settings.events_topic,)),
        dead_letter_topic=settings.dead_letter_topic,
        decode=decode_envelope,
        allowed_organisations=settings.kafka_allowed,
    )
