"""Person merges (HL7 A40): which patient ids stand for one person, and since when.

A ``PatientsMerged`` event is recorded on the *survivor's* stream and names the merged
person's ``patient_id`` (``{"merged_patient_id": ..., "reason"?: ...}``; the ledger
resolved the publisher's NHS number, so the log never holds one). While the merge
stands:

* both NHS numbers resolve to the survivor, for new events and for ``Ledger.patient_id``;
* ``Ledger.history(survivor)`` includes the merged person's events (ledger order);
* folds read the survivor's stream plus the streams merged into it.

Retracting the ``PatientsMerged`` (an ``EventRetracted`` naming it) undoes the merge;
retracting that retraction restores it (docs/adt.md, "Person merges"), so a merge's standing is the
fold of its *retraction tree*: an event is retracted when at least one retraction naming
it is not itself retracted.

Rules (docs/adt.md says the same):

* a person cannot be merged into themself, nor into the person they already resolve to;
* a person already merged into someone stays so until that merge is retracted: a second
  merge of the same person is rejected (retract the first, then merge again);
* chains are allowed and transitive: A into B, then B into C makes A, B and C resolve to
  C. The survivor named by a message is resolved first, so "C into A" after "A into B"
  lands on B. No cycle can form: the survivor is always a root and never the merged
  person;
* restoring a merge (retracting its retraction) is rejected when the merged person has
  meanwhile been merged elsewhere or the merge would close a cycle.

Two ledger tables (``domain/database.py``), written in the same transaction as the
events that change them:

* ``person_merges`` — every merge ever recorded, with ``standing``; a partial unique index
  allows one standing merge per merged person. Retracted merges stay (with
  ``standing = false``) so a retraction can be retracted and ``known_at`` reads can ask
  which merges stood at a past time;
* ``merge_retractions`` — every retraction whose chain of targets ends at a merge.

Batches that hold a merge, or a retraction of a merge (or of a retraction in a merge's
tree: ``MergeState.trees``), read and decide again under a session advisory lock held
until their commit, so merge decisions are made on the committed state. Other batches
do not take it; an event resolved just before a concurrent merge commits lands on the
merged person's stream, which the survivor's history and folds include anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.rows import DictRow

from domain import optout
from domain.contract import EventType
from domain.merge_walk import chain_root, root_of, walk_up

MERGE_TYPE: str = EventType.PATIENTS_MERGED.value
MERGE_LOCK = 0x0CA3E_4E26  # pg_advisory_lock key: "merge decisions are being made"

# Every standing merge on the way up from a set of people (what a batch must see).
STANDING_UP = walk_up("SELECT unnest(%s::uuid[])") + (
    "SELECT merge_event_id, merged_patient_id, patient_id AS survivor_patient_id"
    " FROM up WHERE depth > 0"
)

# The walk the other way: a person and everyone merged into them (transitively).
STANDING_DOWN = """
    WITH RECURSIVE down AS (
        SELECT %s::uuid AS patient_id
        UNION
        SELECT m.merged_patient_id FROM person_merges m
        JOIN down ON m.survivor_patient_id = down.patient_id WHERE m.standing
    )
    SELECT patient_id FROM down
"""


@dataclass(slots=True)
class Merge:
    """One recorded merge and whether it stands now (or in the batch being placed)."""

    event_id: UUID
    merged: UUID
    survivor: UUID
    standing: bool


@dataclass(slots=True)
class MergeState:
    """The merges a batch can see, changed item by item as the ledger places the batch
    (so a merge early in a batch redirects the later items), plus the writes to make."""

    up: dict[UUID, Merge] = field(default_factory=dict)  # merged patient -> standing merge
    merges: dict[UUID, Merge] = field(default_factory=dict)  # merge event id -> merge
    tree_of: dict[UUID, UUID] = field(default_factory=dict)  # retraction -> merge event
    children: dict[UUID, list[UUID]] = field(default_factory=dict)  # target -> retractions
    new_merges: list[Merge] = field(default_factory=list)
    new_retractions: list[tuple[UUID, UUID, UUID]] = field(default_factory=list)
    changed: set[UUID] = field(default_factory=set)  # merge events whose standing changed
    trees: bool = False  # the batch's retraction targets reach a merge's retraction tree

    def effective(self, patient: UUID) -> UUID:
        """The person a patient id stands for now: the root of its chain of merges."""
        return chain_root(patient, self._survivor)

    def _survivor(self, patient: UUID) -> UUID | None:
        merge = self.up.get(patient)
        return merge.survivor if merge is not None else None

    def merge(self, event_id: UUID, merged: UUID, survivor: UUID) -> str | None:
        """Merge ``merged`` into ``survivor`` (already resolved to its root), or say why not."""
        if merged == survivor:
            return "cannot merge a person into themself"
        if self.effective(merged) == survivor:
            return "the merged person is already merged into this person"
        if merged in self.up:
            return (
                "the merged person is already merged into another person; retract that merge first"
            )
        record = Merge(event_id, merged, survivor, standing=True)
        self.merges[event_id] = record
        self.up[merged] = record
        self.new_merges.append(record)
        return None

    def retract(self, retraction_id: UUID, target: UUID) -> str | None:
        """Apply a retraction to the merge whose tree ``target`` is in, if any; a
        retraction that would restore an impossible merge is refused (nothing changes)."""
        merge_id = target if target in self.merges else self.tree_of.get(target)
        if merge_id is None:
            return None
        merge = self.merges[merge_id]
        self.children.setdefault(target, []).append(retraction_id)
        self.tree_of[retraction_id] = merge_id
        now_standing = not self._retracted(merge_id)
        if now_standing and not merge.standing:
            problem = None
            if merge.merged in self.up:
                problem = "the merged person is now merged into another person"
            elif self.effective(merge.survivor) == merge.merged:
                problem = "the two people would be merged into each other"
            if problem is not None:
                self.children[target].pop()
                del self.tree_of[retraction_id]
                return f"this would restore merge {merge_id}, but {problem}"
            self.up[merge.merged] = merge
        elif merge.standing and not now_standing:
            del self.up[merge.merged]
        if now_standing != merge.standing:
            merge.standing = now_standing
            self.changed.add(merge_id)
        self.new_retractions.append((retraction_id, target, merge_id))
        return None

    def _retracted(self, event_id: UUID) -> bool:
        return any(not self._retracted(r) for r in self.children.get(event_id, ()))

    def writes(self) -> list[Callable[[Cursor[DictRow]], None]]:
        """The table changes for the recorded batch (empty if it touched no merge)."""
        if not (self.new_merges or self.new_retractions):
            return []
        return [self._write]

    def _write(self, curs: Cursor[DictRow]) -> None:
        # Order matters for the one-standing-merge index: stand down first, then insert,
        # then stand up, so only the batch's final state is ever checked.
        new = {m.event_id for m in self.new_merges}
        changed = [self.merges[m] for m in self.changed if m not in new]
        down = [m.event_id for m in changed if not m.standing]
        up = [m.event_id for m in changed if m.standing]
        if down:
            curs.execute(
                "UPDATE person_merges SET standing = false WHERE merge_event_id = ANY(%s)", (down,)
            )
        if self.new_merges:
            curs.execute(
                "INSERT INTO person_merges (merge_event_id, merged_patient_id,"
                " survivor_patient_id, standing)"
                " SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::boolean[])",
                (
                    [m.event_id for m in self.new_merges],
                    [m.merged for m in self.new_merges],
                    [m.survivor for m in self.new_merges],
                    [m.standing for m in self.new_merges],
                ),
            )
        if up:
            curs.execute(
                "UPDATE person_merges SET standing = true WHERE merge_event_id = ANY(%s)", (up,)
            )
        if self.new_retractions:
            curs.execute(
                "INSERT INTO merge_retractions (retraction_event_id, target_event_id,"
                " merge_event_id) SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[])",
                tuple(list(col) for col in zip(*self.new_retractions, strict=True)),
            )


def load(
    conn: psycopg.Connection[DictRow], patients: Iterable[UUID], targets: Sequence[UUID]
) -> MergeState:
    """The merges a batch needs: the retraction trees its retraction targets belong to,
    and every standing merge on the way up from the people it names."""
    state = MergeState()
    people = set(patients)
    if targets:
        trees = [
            r["merge_event_id"]
            for r in conn.execute(
                "SELECT merge_event_id FROM person_merges WHERE merge_event_id = ANY(%s)"
                " UNION SELECT merge_event_id FROM merge_retractions"
                " WHERE retraction_event_id = ANY(%s)",
                (list(targets), list(targets)),
            )
        ]
        if trees:
            state.trees = True
            for r in conn.execute(
                "SELECT merge_event_id, merged_patient_id, survivor_patient_id, standing"
                " FROM person_merges WHERE merge_event_id = ANY(%s)",
                (trees,),
            ):
                state.merges[r["merge_event_id"]] = Merge(
                    r["merge_event_id"],
                    r["merged_patient_id"],
                    r["survivor_patient_id"],
                    r["standing"],
                )
                people.update((r["merged_patient_id"], r["survivor_patient_id"]))
            for r in conn.execute(
                "SELECT retraction_event_id, target_event_id, merge_event_id"
                " FROM merge_retractions WHERE merge_event_id = ANY(%s)"
                " ORDER BY retraction_event_id",
                (trees,),
            ):
                state.tree_of[r["retraction_event_id"]] = r["merge_event_id"]
                state.children.setdefault(r["target_event_id"], []).append(r["retraction_event_id"])
    if people:
        for r in conn.execute(STANDING_UP, (list(people),)):
            merge = state.merges.get(r["merge_event_id"]) or Merge(
                r["merge_event_id"], r["merged_patient_id"], r["survivor_patient_id"], True
            )
            state.merges.setdefault(merge.event_id, merge)
            state.up[merge.merged] = merge
    return state


@contextmanager
def serialised(conn: psycopg.Connection[DictRow]) -> Iterator[None]:
    """Hold the merge lock (session level, autocommit connection) while a batch that can
    change merges is validated and written."""
    conn.execute("SELECT pg_advisory_lock(%s)", (MERGE_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MERGE_LOCK,))


def effective(conn: psycopg.Connection[Any], patient: UUID) -> UUID:
    """The person a patient id stands for now (itself unless merged)."""
    return root_of(conn, "SELECT %s::uuid", (patient,)) or patient


# The register's person for an NHS number (or a local identifier: assigning authority,
# value), then up its chain of standing merges: one round trip for the API's every
# person read (``person_now``).
BY_NHS_NUMBER = "SELECT patient_id FROM identity_register WHERE nhs_number = %s"
BY_LOCAL_ID = "SELECT patient_id FROM local_identifiers WHERE authority = %s AND value = %s"


def person_now(
    conn: psycopg.Connection[Any], nhs_number: str | None, local_id: tuple[str, str] | None = None
) -> UUID | None:
    """The person an NHS number (or a local id) identifies now (the survivor while a
    merge stands), or None when it is not registered; ``effective(lookup(...))`` in one
    statement (the walk of ``domain/merge_walk.py``)."""
    if nhs_number is not None:
        return root_of(conn, BY_NHS_NUMBER, (nhs_number,))
    if local_id is not None:
        return root_of(conn, BY_LOCAL_ID, local_id)
    return None


def family(
    conn: psycopg.Connection[DictRow], patient: UUID, known_at: datetime | None = None
) -> list[UUID]:
    """The patient and everyone merged into it (transitively): now, or as the ledger
    knew it at ``known_at`` (merges and retractions recorded by then)."""
    if known_at is None:
        return [r["patient_id"] for r in conn.execute(STANDING_DOWN, (patient,))]
    found = [patient]
    frontier = [patient]
    while frontier:
        rows = conn.execute(
            "SELECT m.merge_event_id, m.merged_patient_id FROM person_merges m"
            " JOIN ledger_events l ON l.event_id = m.merge_event_id"
            " WHERE m.survivor_patient_id = ANY(%s) AND l.recorded_at <= %s",
            (frontier, known_at),
        ).fetchall()
        if not rows:
            break
        children: dict[UUID, list[UUID]] = {}
        for r in conn.execute(
            "SELECT r.retraction_event_id, r.target_event_id FROM merge_retractions r"
            " JOIN ledger_events l ON l.event_id = r.retraction_event_id"
            " WHERE r.merge_event_id = ANY(%s) AND l.recorded_at <= %s",
            ([r["merge_event_id"] for r in rows], known_at),
        ):
            children.setdefault(r["target_event_id"], []).append(r["retraction_event_id"])
        state = MergeState(children=children)
        frontier = [
            r["merged_patient_id"]
            for r in rows
            if not state._retracted(r["merge_event_id"]) and r["merged_patient_id"] not in found
        ]
        found.extend(frontier)
    return found


def family_rows(
    conn: psycopg.Connection[DictRow], select: str, patient: UUID, known_at: datetime | None
) -> list[DictRow]:
    """``select`` (columns ``FROM ledger_events l ...``) for the patient and everyone
    merged into them, recorded by ``known_at`` when given, in ledger order: the one read
    of a person's history (``Ledger.history``, the audit bundle)."""
    query = select + " WHERE l.patient_id = ANY(%s)"
    params: list[Any] = [family(conn, patient, known_at)]
    if known_at is not None:
        query += " AND l.recorded_at <= %s"
        params.append(known_at)
    return conn.execute(query + " ORDER BY l.position", params).fetchall()


def erase_person(
    conn: psycopg.Connection[DictRow],
    nhs_number: str | None,
    local_id: tuple[str, str] | None = None,
) -> UUID | None:
    """Erase the person an NHS number (or a local id) identifies now: every identifier,
    NHS number and local, that resolves to the same survivor (a merge says they are one
    person). Returns that person's id."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MERGE_LOCK,))
        root = person_now(conn, nhs_number, local_id)
        if root is None:
            return None
        people = family(conn, root)
        optout.forget_numbers(conn, people)  # an opt-out outlives the erased number
        conn.execute("DELETE FROM identity_register WHERE patient_id = ANY(%s)", (people,))
        conn.execute("DELETE FROM local_identifiers WHERE patient_id = ANY(%s)", (people,))
    return root


def merged_patient(content: dict[str, Any]) -> UUID:
    """The merged person's id in a stored ``PatientsMerged`` content."""
    return UUID(str(content["data"]["merged_patient_id"]))
