"""The offline audit: checking a bundle (or two checkpoints) with no database, no server.

This module reads only its arguments: a bundle's JSON and the verifier key the auditor
pinned. It imports the hashing (``domain/merkle.py``), the note format
(``domain/note.py``) and the canonical form and chain (``domain/integrity.py``), none of
which touches storage, so an auditor can run it on a machine that has never seen the
ledger (``carejourney audit verify FILE --key VKEY``).

A bundle (``FORMAT``) holds one person's events exactly as recorded (content, both
clocks, position, the library's notification id, version, hashes), for each its leaf
index and an inclusion proof, and one signed checkpoint. Verifying it checks, and names
each failure:

* the checkpoint's signature by the pinned key (and its origin, if given);
* each event's content against its content hash, and its chain hash recomputed from
  position, patient id, version, ledger clock, previous link and content hash;
* the library's notification id equals the ledger position;
* each chain (a person, or each person merged into them) runs from version 1 with no
  gap, each link naming the previous hash;
* leaf indexes rise with positions, and every event's leaf is in the checkpoint's tree
  (RFC 9162 §2.1.3.2 inclusion proof against the signed root).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from domain import merkle, note
from domain.integrity import chain_hash, content_hash, tree_leaf

FORMAT = "carejourney-audit-bundle/1"


@dataclass(slots=True)
class AuditReport:
    checkpoint: note.Checkpoint | None = None
    events: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def verify_bundle(
    bundle: Mapping[str, Any], verifier: note.Verifier, origin: str | None = None
) -> AuditReport:
    report = AuditReport()
    fail = report.failures.append
    if bundle.get("format") != FORMAT:
        fail(f"not an audit bundle of format {FORMAT}")
        return report
    try:
        checkpoint = note.open_checkpoint(str(bundle.get("checkpoint", "")), verifier, origin)
    except note.NoteError as exc:
        fail(f"checkpoint: {exc}")
        return report
    report.checkpoint = checkpoint
    events = bundle.get("events")
    if not isinstance(events, list) or not events:
        fail("the bundle holds no events for this person")
        return report
    report.events = len(events)
    chains: dict[str, tuple[int, str | None]] = {}  # patient id -> last version, hash
    last_place: tuple[int, int] | None = None
    for n, event in enumerate(events):
        try:
            problems = _check_event(event, checkpoint, chains)
            place = (int(event["position"]), int(event["leaf_index"]))
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            fail(f"event #{n}: malformed ({exc.__class__.__name__}: {exc})")
            continue
        where = f"event {event.get('event_id')} at position {event.get('position')}"
        for problem in problems:
            fail(f"{where}: {problem}")
        if last_place is not None and not (place[0] > last_place[0] and place[1] > last_place[1]):
            fail(f"{where}: out of ledger order (positions and leaves must rise together)")
        last_place = place
    return report


def _check_event(
    event: Mapping[str, Any],
    checkpoint: note.Checkpoint,
    chains: dict[str, tuple[int, str | None]],
) -> list[str]:
    problems: list[str] = []
    content = event["content"]
    digest = content_hash(content)
    if digest != event["content_hash"]:
        problems.append("content does not match its content hash")
    if content.get("event_id") != event["event_id"]:
        problems.append("content names another event id")
    if event.get("notification_id") != event["position"]:
        problems.append(
            f"the library's notification id {event.get('notification_id')} is not the position"
        )
    patient = str(event["patient_id"])
    version = int(event["version"])
    recomputed = chain_hash(
        position=int(event["position"]),
        patient_id=UUID(patient),
        version=version,
        recorded_at=datetime.fromisoformat(event["recorded_at"]),
        prev_hash=event["prev_hash"],
        content_digest=digest,
    )
    if recomputed != event["hash"]:
        problems.append(
            f"chain hash does not match (recorded {event['hash']}, recomputed {recomputed})"
        )
    last_version, last_hash = chains.get(patient, (0, None))
    if version != last_version + 1:
        problems.append(f"chain of patient {patient}: version {version} after {last_version}")
    elif event["prev_hash"] != last_hash:
        problems.append(f"chain of patient {patient}: previous-hash link broken")
    chains[patient] = (version, event["hash"])
    proof: Sequence[bytes] = [unb64(p) for p in event["inclusion_proof"]]
    index = int(event["leaf_index"])
    if not merkle.verify_inclusion(
        index, checkpoint.size, tree_leaf(event["hash"]), proof, checkpoint.root
    ):
        problems.append(
            f"leaf {index} is not in the signed tree of size {checkpoint.size}"
            " (inclusion proof fails)"
        )
    return problems


@dataclass(frozen=True, slots=True)
class ConsistencyResult:
    old: note.Checkpoint | None
    new: note.Checkpoint | None
    failure: str | None

    @property
    def ok(self) -> bool:
        return self.failure is None


def check_consistency(
    old_note: str,
    new_note: str,
    verifier: note.Verifier,
    proof: Sequence[bytes] | None,
) -> ConsistencyResult:
    """Did the log only grow from the old checkpoint to the new one? ``proof`` is the
    RFC 9162 consistency proof between their sizes (None: not obtained)."""
    try:
        old = note.open_checkpoint(old_note, verifier)
    except note.NoteError as exc:
        return ConsistencyResult(None, None, f"old checkpoint: {exc}")
    try:
        new = note.open_checkpoint(new_note, verifier, old.origin)
    except note.NoteError as exc:
        return ConsistencyResult(old, None, f"new checkpoint: {exc}")
    if new.size < old.size:
        return ConsistencyResult(old, new, f"the log shrank: {old.size} leaves then {new.size}")
    if proof is None:
        return ConsistencyResult(old, new, "no consistency proof between the two sizes")
    if not merkle.verify_consistency(old.size, new.size, old.root, new.root, proof):
        return ConsistencyResult(
            old,
            new,
            f"the tree of size {new.size} does not extend the tree of size {old.size}:"
            " history before the old checkpoint was rewritten",
        )
    return ConsistencyResult(old, new, None)
