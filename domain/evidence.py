"""Evidence for an auditor: one person's audit bundle, read from the ledger.

The bundle is what ``domain/audit.py`` verifies offline: the person's events exactly as
stored (the library's stored event decoded to its content, the index row's both clocks,
position, version and hashes, and the library's own notification id, so a swap of
either is visible), each event's leaf index and inclusion proof, and one signed
checkpoint whose tree holds them all (the latest, or a new one issued now when the
latest does not reach the person's last event yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from domain import merges, note, transparency
from domain.audit import FORMAT, b64
from domain.contract import utc_text
from domain.ledger import SELECT_STORED, Ledger, row_json

# The index row's columns each bundled event carries, in the bundle's order.
_INDEX_COLUMNS = (
    "event_id",
    "patient_id",
    "version",
    "type",
    "occurred_at",
    "recorded_at",
    "source_organisation",
    "content_hash",
    "hash",
    "prev_hash",
)


class NoEvidence(Exception):
    """The bundle cannot be made (no checkpoint covers the events and none may be signed,
    or the tree lacks an event)."""


def build_bundle(
    ledger: Ledger,
    patient_id: UUID,
    *,
    signer: note.Signer | None,
    origin: str,
    definitions_version: str,
    known_at: datetime | None = None,
) -> dict[str, Any]:
    with ledger.connection() as conn:
        rows = merges.family_rows(conn, SELECT_STORED, patient_id, known_at)
        leaves = transparency.leaves_at(conn, [r["position"] for r in rows])
        missing = [r["position"] for r in rows if r["position"] not in leaves]
        if missing:
            msg = f"the tree has no leaf for position {missing[0]}"
            raise NoEvidence(msg)
        need = max((leaf.index + 1 for leaf in leaves.values()), default=0)
        checkpoint = transparency.latest_checkpoint(conn)
        if checkpoint is None or checkpoint.size < need or checkpoint.origin != origin:
            if signer is None:
                msg = "no checkpoint covers the person's events yet: run `carejourney checkpoint`"
                raise NoEvidence(msg)
            checkpoint = transparency.issue_checkpoint(conn, signer, origin)
        proofs = transparency.inclusion_proofs(
            conn, [leaves[r["position"]].index for r in rows], checkpoint.size
        )
    events = [
        _event(ledger, row, leaves[row["position"]], proof)
        for row, proof in zip(rows, proofs, strict=True)
    ]
    return {
        "format": FORMAT,
        "patient_id": str(patient_id),
        "known_at": None if known_at is None else utc_text(known_at),
        "built_at": utc_text(datetime.now(UTC)),
        "definitions_version": definitions_version,
        "leaf": "SHA-256(0x00 || the 32 bytes of the event's chain hash), RFC 9162 §2.1.1",
        "checkpoint": checkpoint.note,
        "events": events,
    }


def _event(
    ledger: Ledger,
    row: Mapping[str, Any],
    leaf: transparency.Leaf,
    proof: list[bytes],
) -> dict[str, Any]:
    content = ledger.stored_content(row) if row["state"] is not None else None
    return {
        "position": row["position"],
        "notification_id": row["notification_id"],
        "leaf_index": leaf.index,
        "leaf_hash": b64(leaf.hash),
        **row_json(row, *_INDEX_COLUMNS),
        "content": content,
        "inclusion_proof": [b64(p) for p in proof],
    }
