"""Verifying the ledger: recompute what was recorded from storage and compare.

Split from ``domain/ledger.py`` (which appends and reads back) so the two halves can
change independently: this module only reads. One person (``verify_person``): their
hash chain from the stored events, each event's Merkle leaf, and its inclusion in the
latest checkpoint. The whole ledger (``verify_all``): every chain, every stored event
having its index row, the Merkle tree recomputed against the stored one, and every
checkpoint. ``digest``: the head digest an auditor keeps (``verify --expect``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from psycopg import Connection
from psycopg.rows import DictRow

from domain import merkle, note, transparency
from domain.database import head_position
from domain.integrity import Break, ChainLink, content_hash, first_break, head_digest


class _Store(Protocol):
    @property
    def events_table_name(self) -> str: ...


class Ledger(Protocol):
    """What verification needs of ``domain.ledger.Ledger`` (a protocol, so this module
    does not import the ledger that delegates to it)."""

    @property
    def store(self) -> _Store: ...

    def connection(self) -> Any: ...

    def stored_content(self, row: Mapping[str, Any]) -> dict[str, Any]: ...


# Index rows with their stored events; LEFT JOIN so a missing stored event is a break.
SELECT_CHAIN = (
    "SELECT l.position, l.event_id, l.patient_id, l.version, l.type, l.occurred_at,"
    " l.recorded_at, l.source_organisation, l.content_hash, l.hash, l.prev_hash,"
    " s.topic, s.state, s.notification_id"
    " FROM ledger_events l LEFT JOIN journeys_events s"
    " ON s.originator_id = l.patient_id AND s.originator_version = l.version"
)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify_all`` found (``carejourney verify`` prints it)."""

    people: int
    events: int
    breaks: list[Break]
    position: int
    digest: str
    tree_size: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)  # the tree's and the checkpoints'

    @property
    def ok(self) -> bool:
        return not self.breaks and not self.problems


def verify_person(ledger: Ledger, patient_id: UUID) -> Break | None:
    """Recompute one person's chain from storage, then find each event's leaf in the
    Merkle tree and prove it in the latest checkpoint; the first problem or None.
    A person with no events is a problem too: there is nothing to verify."""
    with ledger.connection() as conn:
        return _verify_person(ledger, conn, patient_id) or _verify_in_tree(conn, patient_id)


def _verify_in_tree(conn: Connection[DictRow], patient_id: UUID) -> Break | None:
    rows = conn.execute(
        "SELECT position, event_id, hash FROM ledger_events WHERE patient_id = %s"
        " ORDER BY position",
        (patient_id,),
    ).fetchall()
    if not rows:
        return Break(patient_id, None, None, "no events are recorded for this person")
    leaves = transparency.leaves_at(conn, [r["position"] for r in rows])
    for r in rows:
        leaf = leaves.get(r["position"])
        if leaf is None or leaf.hash != transparency.leaf_of(r["hash"]):
            reason = "no leaf in the Merkle tree" if leaf is None else "Merkle leaf differs"
            return Break(patient_id, r["event_id"], r["position"], reason)
    checkpoint = transparency.latest_checkpoint(conn)
    if checkpoint is None:
        return None
    covered = [r for r in rows if leaves[r["position"]].index < checkpoint.size]
    try:
        proofs = transparency.inclusion_proofs(
            conn, [leaves[r["position"]].index for r in covered], checkpoint.size
        )
    except transparency.TreeError as exc:
        return Break(patient_id, None, None, f"checkpoint {checkpoint.id}: {exc}")
    for r, proof in zip(covered, proofs, strict=True):
        leaf = leaves[r["position"]]
        if not merkle.verify_inclusion(
            leaf.index, checkpoint.size, leaf.hash, proof, checkpoint.root
        ):
            return Break(
                patient_id,
                r["event_id"],
                r["position"],
                f"not included in checkpoint {checkpoint.id} (tree size {checkpoint.size})",
            )
    return None


def verify_all(
    ledger: Ledger,
    progress: Callable[[int], None] | None = None,
    *,
    verifier: note.Verifier | None = None,
    kept: Sequence[str] = (),
) -> VerifyReport:
    """Every person's chain, every stored event having its index row, the Merkle
    tree recomputed from the events against the stored tree, and every checkpoint
    (stored ones, and ``kept`` ones an auditor held outside) against it."""
    breaks: list[Break] = []
    events = 0
    with ledger.connection() as conn:
        people = [
            r["patient_id"]
            for r in conn.execute(
                "SELECT patient_id FROM ledger_heads UNION "
                "SELECT DISTINCT patient_id FROM ledger_events ORDER BY 1"
            ).fetchall()
        ]
        for patient in people:
            found = _verify_person(ledger, conn, patient)
            if found is not None:
                breaks.append(found)
            if progress is not None:
                progress(1)
        orphans = conn.execute(
            f"SELECT s.originator_id, s.originator_version, s.notification_id"
            f" FROM {ledger.store.events_table_name} s LEFT JOIN ledger_events l"
            " ON l.position = s.notification_id WHERE l.position IS NULL LIMIT 10"
        ).fetchall()
        for o in orphans:
            breaks.append(
                Break(
                    o["originator_id"],
                    None,
                    o["notification_id"],
                    f"stored event version {o['originator_version']} has no ledger index row",
                )
            )
        events = int(conn.execute("SELECT count(*) AS n FROM ledger_events").fetchone()["n"])
        tree, problems = transparency.log_problems(conn, verifier, kept)
        stored = int(conn.execute("SELECT count(*) AS n FROM ledger_checkpoints").fetchone()["n"])
    position, head = digest(ledger)
    return VerifyReport(len(people), events, breaks, position, head, tree.size, stored, problems)


def _verify_person(ledger: Ledger, conn: Connection[DictRow], patient_id: UUID) -> Break | None:
    rows = conn.execute(
        SELECT_CHAIN + " WHERE l.patient_id = %s ORDER BY l.version",
        (patient_id,),
    ).fetchall()
    head = conn.execute(
        "SELECT version, hash FROM ledger_heads WHERE patient_id = %s", (patient_id,)
    ).fetchone()
    links = []
    for row in rows:
        content = None
        if row["state"] is not None:
            content = ledger.stored_content(row)
            mismatch = _index_mismatch(row, content)
            if row["notification_id"] != row["position"]:
                return Break(
                    patient_id,
                    row["event_id"],
                    row["position"],
                    "the library's notification id is not the ledger position",
                    str(row["position"]),
                    str(row["notification_id"]),
                )
            if mismatch:
                return Break(
                    patient_id,
                    row["event_id"],
                    row["position"],
                    f"index row disagrees with stored content: {mismatch}",
                )
        links.append(
            ChainLink(
                row["position"],
                row["event_id"],
                patient_id,
                row["version"],
                row["recorded_at"],
                row["hash"],
                row["prev_hash"],
                content,
            )
        )
    return first_break(patient_id, links, (head["version"], head["hash"]) if head else None)


def digest(ledger: Ledger, at_position: int | None = None) -> tuple[int, str]:
    """The ledger's head digest at a position (default: now), as ``(position, hex)``."""
    with ledger.connection() as conn:
        if at_position is None:
            at_position = head_position(conn)
        rows = conn.execute(
            "SELECT DISTINCT ON (patient_id) patient_id, version, hash FROM ledger_events"
            " WHERE position <= %s ORDER BY patient_id, version DESC",
            (at_position,),
        )
        heads: Iterator[tuple[UUID, int, str]] = (
            (r["patient_id"], r["version"], r["hash"]) for r in rows
        )
        return at_position, head_digest(heads)


def _index_mismatch(row: Mapping[str, Any], content: Mapping[str, Any]) -> str | None:
    """The index columns are derived from the stored content; a difference is tampering."""
    if str(row["event_id"]) != content["event_id"]:
        return "event_id"
    if row["type"] != content["type"]:
        return "type"
    if row["occurred_at"] != datetime.fromisoformat(content["occurred_at"]):
        return "occurred_at"
    if row["source_organisation"] != content["source"]["organisation"]:
        return "source_organisation"
    if row["content_hash"] != content_hash(content):
        return "content_hash"
    return None
