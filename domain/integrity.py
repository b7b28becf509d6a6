"""Tamper evidence: the canonical form of a recorded event and its hash chain.

Canonical form: RFC 8785 (JSON Canonicalization Scheme). For each recorded event

    content_hash = sha256(JCS(content))
    hash = sha256(JCS({"position", "patient_id", "version", "recorded_at", "prev_hash",
                       "content_hash"}))

where ``content`` is the envelope content the ledger stored (``contract.envelope_content``:
no NHS number, times in UTC with ``Z``).
``prev_hash`` is the hash of the same person's previous event (``null`` for the
first), so altering, removing or re-ordering any event breaks every later link; the
position and the ledger clock are inside the hash, so moving an event in the global
order is caught too. The patient id, never the NHS number, is hashed: a hash over a
10-digit number could be reversed by brute force.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson
import rfc8785

from domain.contract import PLAIN_CONTENT_TYPES, utc_text


def canonical(value: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of a JSON value.

    The ``rfc8785`` package is the definition, but it is pure Python (~100 µs for one
    event) and the ledger canonicalises every event it records. So values inside the
    subset where the standard library's C encoder already writes JCS bytes take that
    path: ASCII keys (so code-point order = UTF-16 order), integers within ±(2**53 - 1),
    and floats that are integral (written as integers, as JCS does) or lie in
    [1e-4, 1e16) (where Python's shortest repr and ECMAScript's agree). Anything else
    (other floats, non-ASCII keys, unencodable strings) goes to ``rfc8785`` itself.
    ``tests/test_canonical.py`` holds the two paths byte-equal on arbitrary JSON.
    """
    try:
        plain = _jcs_subset(value)
        return json.dumps(
            plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (_OutsideSubset, UnicodeEncodeError):
        return rfc8785.dumps(value)


class _OutsideSubset(Exception):
    """The value needs the reference canonicaliser."""


_SAFE_INT = 2**53 - 1


def _jcs_subset(value: Any) -> Any:
    if isinstance(value, str) or value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if -_SAFE_INT <= value <= _SAFE_INT:
            return value
        raise _OutsideSubset
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return int(value)
        if 1e-4 <= abs(value) < 1e16:
            return value
        raise _OutsideSubset
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise _OutsideSubset
            out[key] = _jcs_subset(item)
        return out
    if isinstance(value, list | tuple):
        return [_jcs_subset(item) for item in value]
    raise _OutsideSubset


def canonical_content(content: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of an envelope content (``contract.envelope_content``).

    The content of a type the contract gives no number and no publisher-chosen key
    (``contract.PLAIN_CONTENT_TYPES``: all but two) is strings, booleans, null and
    objects with fixed ASCII keys, and for those orjson with sorted keys writes the JCS
    bytes in C (its string escapes are JCS's; ``tests/test_canonical.py`` holds the two
    equal), without ``canonical``'s walk. Anything orjson refuses (a lone surrogate, a
    value that is not JSON) goes the general way. Content read back from storage takes
    the same path: a tampered content that orjson writes differently from JCS still
    cannot match the stored hash, since equal bytes parse to equal values.
    """
    if content.get("type") in PLAIN_CONTENT_TYPES:
        try:
            return orjson.dumps(content, option=_PLAIN_OPTIONS)
        except TypeError:
            pass
    return canonical(content)


# Sorted keys; datetimes and dataclasses are not JSON and must not be written as if they were.
_PLAIN_OPTIONS = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def content_hash(content: Mapping[str, Any]) -> str:
    """Idempotency fingerprint: equal for two envelopes with the same canonical content."""
    return hashlib.sha256(canonical_content(content)).hexdigest()


def chain_hash(
    *,
    position: int,
    patient_id: UUID,
    version: int,
    recorded_at: datetime,
    prev_hash: str | None,
    content_digest: str,
) -> str:
    """The link: the event's place (position, person, version, ledger clock), the
    previous link, and its content's hash (which commits to every byte of the content,
    so the content is canonicalised once per event, not twice)."""
    clock = _clock_text(recorded_at)
    if (
        _plain(content_digest)
        and (prev_hash is None or _plain(prev_hash))
        and 0 <= position <= _SAFE_INT
        and 0 <= version <= _SAFE_INT
    ):
        # The JCS bytes written out (keys in order, nothing to escape): the recorder
        # hashes every event under the write lock, and this takes half the time of
        # ``canonical``; tests/test_canonical.py holds the two equal.
        prev = "null" if prev_hash is None else f'"{prev_hash}"'
        text = (
            f'{{"content_hash":"{content_digest}","patient_id":"{patient_id}",'
            f'"position":{position},"prev_hash":{prev},"recorded_at":"{clock}",'
            f'"version":{version}}}'
        )
        return hashlib.sha256(text.encode()).hexdigest()
    body = {
        "position": position,
        "patient_id": str(patient_id),
        "version": version,
        "recorded_at": clock,
        "prev_hash": prev_hash,
        "content_hash": content_digest,
    }
    return hashlib.sha256(canonical(body)).hexdigest()


@lru_cache(maxsize=64)
def _clock_text(moment: datetime) -> str:
    """``utc_text``, remembered: every event of a batch has the same ledger clock, and
    the recorder hashes them all under the write lock."""
    return utc_text(moment)


def _plain(text: str) -> bool:
    """A string JSON writes as itself between quotes (a hex digest is)."""
    return text.isascii() and text.isalnum()


@dataclass(frozen=True, slots=True)
class ChainLink:
    """What verification needs of one stored event (content as read back from storage)."""

    position: int
    event_id: UUID
    patient_id: UUID
    version: int
    recorded_at: datetime
    hash: str
    prev_hash: str | None
    event: Mapping[str, Any] | None  # None: the stored event itself is missing


@dataclass(frozen=True, slots=True)
class Break:
    """The first broken link of a chain, named so an auditor can find it."""

    patient_id: UUID
    event_id: UUID | None
    position: int | None
    reason: str
    expected: str | None = None
    found: str | None = None

    def describe(self) -> str:
        where = f"event {self.event_id} at position {self.position}"
        if self.event_id is None:
            where = f"person {self.patient_id}"
        text = f"{where}: {self.reason}"
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}, found {self.found})"
        return text


def first_break(
    patient_id: UUID,
    links: Iterable[ChainLink],
    head: tuple[int, str] | None,
) -> Break | None:
    """Recompute one person's chain in version order; report the first broken link.

    ``head`` is the separately kept (version, hash) of the person's last event, so
    deleting the last event (which leaves a shorter but internally valid chain) is
    caught as well.
    """
    prev_hash: str | None = None
    last: ChainLink | None = None
    for expected_version, link in enumerate(links, start=1):
        if link.version != expected_version:
            return Break(
                patient_id,
                link.event_id,
                link.position,
                "version sequence broken",
                str(expected_version),
                str(link.version),
            )
        if link.event is None:
            return Break(patient_id, link.event_id, link.position, "stored event missing")
        if link.prev_hash != prev_hash:
            return Break(
                patient_id,
                link.event_id,
                link.position,
                "previous-hash link broken",
                prev_hash,
                link.prev_hash,
            )
        recomputed = chain_hash(
            position=link.position,
            patient_id=link.patient_id,
            version=link.version,
            recorded_at=link.recorded_at,
            prev_hash=prev_hash,
            content_digest=content_hash(link.event),
        )
        if recomputed != link.hash:
            return Break(
                patient_id,
                link.event_id,
                link.position,
                "content does not match its hash",
                link.hash,
                recomputed,
            )
        prev_hash = link.hash
        last = link
    found = (last.version, last.hash) if last else None
    if head != found:
        return Break(
            patient_id,
            last.event_id if last else None,
            last.position if last else None,
            "chain head does not match the last event",
            f"version {head[0]} hash {head[1]}" if head else "no events",
            f"version {found[0]} hash {found[1]}" if found else "no events",
        )
    return None


def head_digest(heads: Iterable[tuple[UUID, int, str]]) -> str:
    """One digest over every person's head (sorted by patient id) at a ledger position.

    An auditor who saves ``POSITION:DIGEST`` can later ask ``verify --expect`` whether
    the ledger up to that position is still exactly what it was.
    """
    digest = hashlib.sha256()
    for patient_id, version, hash_ in heads:
        digest.update(f"{patient_id}:{version}:{hash_}\n".encode())
    return digest.hexdigest()


def tree_leaf(chain_hash_hex: str) -> bytes:
    """The Merkle tree's leaf hash of an event: SHA-256(0x00 || its 32 chain-hash bytes)
    (RFC 9162 §2.1.1; the chain hash already commits to position, patient id, version,
    ledger clock, previous link and content hash)."""
    return hashlib.sha256(b"\x00" + bytes.fromhex(chain_hash_hex)).digest()
