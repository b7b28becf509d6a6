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
from domain.integrity import (
    Break,
    ChainLink,
    chain_hash,
    content_hash,
    first_break,
    head_digest,
)


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
    (stored ones, and ``kept`` ones an auditor held outside) against it.

    One snapshot (a repeatable-read transaction), so appends running alongside neither
    break nor extend what is verified. The chains are checked in one streaming pass in
    position order (``_stream_chains``; ``progress`` is called with the events done),
    not one query per person: per-person queries cost a round trip and two index
    probes each and made a 1 M-event verify 20 times slower than a rebuild. A person
    the pass flags is then checked again by ``_verify_person`` (the per-person check
    ``carejourney verify NHS`` runs), so what is reported names the same first break as
    before.
    """
    breaks: list[Break] = []
    with ledger.connection() as conn:
        with conn.transaction():
            # The pooled connection's own settings are left as they are.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            position = head_position(conn)
            flagged, heads = _stream_chains(ledger, conn, progress)
            for patient in sorted(flagged):
                breaks.append(_verify_person(ledger, conn, patient) or flagged[patient])
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
            events = sum(version for version, _ in heads.values())
            tree, problems = transparency.log_problems(conn, verifier, kept)
            stored = int(
                conn.execute("SELECT count(*) AS n FROM ledger_checkpoints").fetchone()["n"]
            )
            if flagged or orphans:
                # The heads seen in the pass are the intact chains' only: recompute.
                events = int(
                    conn.execute("SELECT count(*) AS n FROM ledger_events").fetchone()["n"]
                )
                _, head = _digest(conn, position)
            else:
                head = head_digest((p, v, h) for p, (v, h) in sorted(heads.items()))
        people = len(heads) + len(flagged)
    return VerifyReport(people, events, breaks, position, head, tree.size, stored, problems)


def _stream_chains(
    ledger: Ledger, conn: Connection[DictRow], progress: Callable[[int], None] | None
) -> tuple[dict[UUID, Break], dict[UUID, tuple[int, str]]]:
    """Every chain at once, in position order: (people flagged with a first reason,
    every other person's last (version, hash)).

    A person's versions come in position order (the recorder assigns both under one
    lock), so each event is checked against the person's previous (version, hash)
    alone, and memory is one entry per person (~0.3 kB), not per event. The stored
    event is joined by its notification id (= position): both sides are read in index
    order, a merge join, so the pass is linear in the ledger's size. Each event is
    checked as ``_verify_person`` checks it (index columns against the stored content,
    notification id, version sequence, previous hash, recomputed hash); at the end each
    person's last event against ``ledger_heads``."""
    flagged: dict[UUID, Break] = {}
    last: dict[UUID, tuple[int, str]] = {}
    done = 0
    with conn.cursor("verify_chains") as rows:
        rows.itersize = 5_000
        rows.execute(
            "SELECT l.position, l.event_id, l.patient_id, l.version, l.type, l.occurred_at,"
            " l.recorded_at, l.source_organisation, l.content_hash, l.hash, l.prev_hash,"
            " s.topic, s.state, s.originator_id, s.originator_version"
            f" FROM ledger_events l LEFT JOIN {ledger.store.events_table_name} s"
            " ON s.notification_id = l.position ORDER BY l.position"
        )
        for row in rows:
            done += 1
            if progress is not None and done % 10_000 == 0:
                progress(10_000)
            patient = row["patient_id"]
            if patient in flagged:
                continue
            reason = _event_problem(ledger, row, last.get(patient))
            if reason is None:
                last[patient] = (row["version"], row["hash"])
            else:
                flagged[patient] = Break(patient, row["event_id"], row["position"], reason)
                last.pop(patient, None)
    if progress is not None and done % 10_000:
        progress(done % 10_000)
    intact: dict[UUID, tuple[int, str]] = {}
    with conn.cursor("verify_heads") as heads:
        heads.itersize = 10_000
        heads.execute("SELECT patient_id, version, hash FROM ledger_heads")
        for head in heads:
            patient = head["patient_id"]
            if patient in flagged:
                continue
            found = last.pop(patient, None)
            if found == (head["version"], head["hash"]):
                intact[patient] = found
            else:
                flagged[patient] = Break(
                    patient, None, None, "chain head does not match the last event"
                )
    for patient in last:  # events but no head
        flagged[patient] = Break(patient, None, None, "chain head does not match the last event")
    return flagged, intact


def _event_problem(
    ledger: Ledger, row: Mapping[str, Any], previous: tuple[int, str] | None
) -> str | None:
    """What is wrong with one event given the person's previous (version, hash), or None."""
    if row["state"] is None:
        return "stored event missing"
    if (row["originator_id"], row["originator_version"]) != (row["patient_id"], row["version"]):
        return "the library's notification id is not the ledger position"
    content = ledger.stored_content(row)
    digest_ = content_hash(content)
    mismatch = _index_mismatch(row, content, digest_)
    if mismatch:
        return f"index row disagrees with stored content: {mismatch}"
    version, prev_hash = previous if previous is not None else (0, None)
    if row["version"] != version + 1:
        return "version sequence broken"
    if row["prev_hash"] != prev_hash:
        return "previous-hash link broken"
    recomputed = chain_hash(
        position=row["position"],
        patient_id=row["patient_id"],
        version=row["version"],
        recorded_at=row["recorded_at"],
        prev_hash=prev_hash,
        content_digest=digest_,
    )
    if recomputed != row["hash"]:
        return "content does not match its hash"
    return None


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
        return _digest(conn, at_position)


def _digest(conn: Connection[DictRow], at_position: int) -> tuple[int, str]:
    rows = conn.execute(
        "SELECT DISTINCT ON (patient_id) patient_id, version, hash FROM ledger_events"
        " WHERE position <= %s ORDER BY patient_id, version DESC",
        (at_position,),
    )
    heads: Iterator[tuple[UUID, int, str]] = (
        (r["patient_id"], r["version"], r["hash"]) for r in rows
    )
    return at_position, head_digest(heads)


def _index_mismatch(
    row: Mapping[str, Any], content: Mapping[str, Any], digest_: str | None = None
) -> str | None:
    """The index columns are derived from the stored content; a difference is tampering."""
    if str(row["event_id"]) != content["event_id"]:
        return "event_id"
    if row["type"] != content["type"]:
        return "type"
    if row["occurred_at"] != datetime.fromisoformat(content["occurred_at"]):
        return "occurred_at"
    if row["source_organisation"] != content["source"]["organisation"]:
        return "source_organisation"
    if row["content_hash"] != (digest_ or content_hash(content)):
        return "content_hash"
    return None
