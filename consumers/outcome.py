"""What became of one Kafka message: the types the feed, the offsets and the dead
letters share. A leaf module (it imports nothing of ours but the contract's error type),
so those three can each import it without importing one another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from domain.contract import FieldError

Status = Literal["recorded", "duplicate", "conflict", "rejected", "noted"]
REFUSED: frozenset[str] = frozenset({"rejected", "conflict"})


class Message(Protocol):
    """What the loop hands to ``decode``: kafka-python's ``ConsumerRecord`` fits."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """One message's fate; ``position`` is set for recorded (and known duplicate) events."""

    message: Message
    status: Status
    event_id: str | None = None
    position: int | None = None
    errors: tuple[FieldError, ...] = field(default=())

    @property
    def refused(self) -> bool:
        return self.status in REFUSED

    def reason(self) -> str:
        return "; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in self.errors)
