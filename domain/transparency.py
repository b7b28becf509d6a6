"""The ledger's Merkle tree and signed checkpoints in PostgreSQL.

The tree (RFC 9162 hashing, ``domain/merkle.py``) has one leaf per recorded event in
position order; the leaf is the event's 32 chain-hash bytes (``domain/integrity.py``:
it commits to position, patient id, version, ledger clock, previous link and content
hash). ``ledger_tree_nodes`` keeps every *complete* node ``(level, index)``: level 0 is
the leaf hashes (with the position of their event), higher levels the perfect subtrees
as soon as all their leaves exist. Complete nodes never change, so the table is
append-only like the events; a root or a proof's right-edge subtree is folded from at
most ``log2(n)`` of them, read in one statement.

``append`` runs inside the recorder's transaction, under its table lock, after the
positions and hashes are known: one statement reads the tree size and its frontier
(the ``popcount(n)`` nodes a new leaf can combine with), then the new nodes (one a leaf
on average) go in by binary COPY. ``backfill`` builds the tree of a ledger written
before the tree existed (the migration; idempotent).

Checkpoints (``ledger_checkpoints``) are C2SP signed notes over (origin, size, root);
the log refuses to sign one inconsistent with the last it signed.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import Connection, Cursor
from psycopg.rows import tuple_row

from domain import merkle, note
from domain.integrity import tree_leaf

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS ledger_tree_nodes (
        level     smallint NOT NULL,
        index     bigint NOT NULL,
        hash      bytea NOT NULL,
        position  bigint,
        PRIMARY KEY (level, index),
        CHECK ((level = 0) = (position IS NOT NULL))
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS ledger_tree_leaf_position_idx"
    " ON ledger_tree_nodes (position) WHERE level = 0",
    """
    CREATE TABLE IF NOT EXISTS ledger_checkpoints (
        id         bigserial PRIMARY KEY,
        origin     text NOT NULL,
        tree_size  bigint NOT NULL,
        root_hash  bytea NOT NULL,
        key_name   text NOT NULL,
        key_id     text NOT NULL,
        note       text NOT NULL,
        issued_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS ledger_checkpoints_size_idx ON ledger_checkpoints (tree_size)",
    # Where each Kafka topic's copy of the checkpoints has got to (mutable, like any
    # tracking row): a restart neither loses nor repeats one.
    """
    CREATE TABLE IF NOT EXISTS checkpoint_publications (
        topic          text PRIMARY KEY,
        checkpoint_id  bigint NOT NULL
    )
    """,
)

# The tree size and its frontier, in one statement (the frontier node of bit b of n is
# (b, (n >> b) - 1)).
FRONTIER = """
    WITH s AS (SELECT coalesce(max(index) + 1, 0) AS n FROM ledger_tree_nodes WHERE level = 0)
    SELECT s.n, t.level, t.index, t.hash FROM s
    LEFT JOIN LATERAL (
        SELECT t.level, t.index, t.hash FROM generate_series(0, 62) AS b
        JOIN ledger_tree_nodes t ON t.level = b AND t.index = (s.n >> b) - 1
        WHERE (s.n >> b) & 1 = 1
    ) t ON true
"""
COPY_NODES = "COPY ledger_tree_nodes (level, index, hash, position) FROM STDIN (FORMAT BINARY)"
NODE_TYPES = ("int2", "int8", "bytea", "int8")
NODES = (
    "SELECT level, index, hash FROM ledger_tree_nodes"
    " WHERE (level, index) IN (SELECT * FROM unnest(%s::smallint[], %s::bigint[]))"
)
SIZE = "SELECT coalesce(max(index) + 1, 0) FROM ledger_tree_nodes WHERE level = 0"


class TreeError(Exception):
    """The stored tree cannot answer: a node is missing, or the size is beyond it."""


leaf_of = tree_leaf


# -- maintaining the tree ------------------------------------------------------------------


def append(curs: Cursor[Any], positions: Sequence[int], chain_hashes: Sequence[str]) -> int:
    """Add the events just placed (ascending positions) as the next leaves; returns the
    new tree size. Call under the ledger's table lock, in the append's transaction."""
    with curs.connection.cursor(row_factory=tuple_row) as rows:
        found = rows.execute(FRONTIER).fetchall()
    size = int(found[0][0])
    frontier = {(r[1], r[2]): bytes(r[3]) for r in found if r[1] is not None}
    leaves = [leaf_of(h) for h in chain_hashes]
    created = merkle.new_nodes(size, frontier, leaves)
    with curs.copy(COPY_NODES) as copy:
        copy.set_types(NODE_TYPES)
        for level, index, value in created:
            copy.write_row((level, index, value, positions[index - size] if level == 0 else None))
    return size + len(leaves)


def backfill(conn: Connection[Any], events_table: str, chunk: int = 10_000) -> int:
    """Give every event after the tree's last leaf its leaf (a ledger recorded before
    the tree existed); returns the leaves added. Holds the ledger's table lock while it
    works, so appends wait rather than interleave."""
    with conn.cursor(row_factory=tuple_row) as curs:
        last = curs.execute(
            "SELECT coalesce(max(position), 0) FROM ledger_tree_nodes WHERE level = 0"
        ).fetchone()
        head = curs.execute("SELECT coalesce(max(position), 0) FROM ledger_events").fetchone()
        assert last is not None and head is not None
        if head[0] <= last[0]:
            return 0
    added = 0
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(f"LOCK TABLE {events_table} IN EXCLUSIVE MODE")
        after_row = curs.execute(
            "SELECT coalesce(max(position), 0) FROM ledger_tree_nodes WHERE level = 0"
        ).fetchone()
        assert after_row is not None
        after = int(after_row[0])
        while True:
            rows = curs.execute(
                "SELECT position, hash FROM ledger_events WHERE position > %s"
                " ORDER BY position LIMIT %s",
                (after, chunk),
            ).fetchall()
            if not rows:
                return added
            append(curs, [r[0] for r in rows], [r[1] for r in rows])
            added += len(rows)
            after = rows[-1][0]


# -- reading the tree ------------------------------------------------------------------------


def tree_size(conn: Connection[Any]) -> int:
    with conn.cursor(row_factory=tuple_row) as curs:
        row = curs.execute(SIZE).fetchone()
    return int(row[0]) if row else 0


def _nodes(conn: Connection[Any], wanted: set[merkle.Node]) -> dict[merkle.Node, bytes]:
    if not wanted:
        return {}
    levels = [n[0] for n in wanted]
    indexes = [n[1] for n in wanted]
    with conn.cursor(row_factory=tuple_row) as curs:
        rows = curs.execute(NODES, (levels, indexes)).fetchall()
    found = {(r[0], r[1]): bytes(r[2]) for r in rows}
    missing = wanted - set(found)
    if missing:
        level, index = min(missing)
        msg = f"the stored tree lacks node (level {level}, index {index})"
        raise TreeError(msg)
    return found


def _check_size(conn: Connection[Any], size: int) -> None:
    have = tree_size(conn)
    if size > have:
        msg = f"tree size {size} is beyond the log's {have} leaves"
        raise TreeError(msg)


def root(conn: Connection[Any], size: int) -> bytes:
    _check_size(conn, size)
    return merkle.range_hash(0, size, _nodes(conn, set(merkle.root_nodes(size))))


def inclusion_proof(conn: Connection[Any], index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) from the stored nodes (O(log n) of them, one statement)."""
    _check_size(conn, size)
    ranges = merkle.inclusion_ranges(index, size)
    nodes = _nodes(conn, merkle.nodes_for(ranges))
    return [merkle.range_hash(a, b, nodes) for a, b in ranges]


def consistency_proof(conn: Connection[Any], old: int, new: int) -> list[bytes]:
    _check_size(conn, new)
    ranges = merkle.consistency_ranges(old, new)
    nodes = _nodes(conn, merkle.nodes_for(ranges))
    return [merkle.range_hash(a, b, nodes) for a, b in ranges]


@dataclass(frozen=True, slots=True)
class Leaf:
    index: int
    position: int
    hash: bytes


def leaf_at(conn: Connection[Any], position: int) -> Leaf | None:
    with conn.cursor(row_factory=tuple_row) as curs:
        row = curs.execute(
            "SELECT index, hash FROM ledger_tree_nodes WHERE level = 0 AND position = %s",
            (position,),
        ).fetchone()
    return None if row is None else Leaf(int(row[0]), position, bytes(row[1]))


def leaves_at(conn: Connection[Any], positions: Sequence[int]) -> dict[int, Leaf]:
    with conn.cursor(row_factory=tuple_row) as curs:
        rows = curs.execute(
            "SELECT index, position, hash FROM ledger_tree_nodes"
            " WHERE level = 0 AND position = ANY(%s)",
            (list(positions),),
        ).fetchall()
    return {int(r[1]): Leaf(int(r[0]), int(r[1]), bytes(r[2])) for r in rows}


# -- checkpoints -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    id: int
    origin: str
    size: int
    root: bytes
    key_name: str
    key_id: str
    note: str
    issued_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "origin": self.origin,
            "tree_size": self.size,
            "root_hash": base64.b64encode(self.root).decode(),
            "key_name": self.key_name,
            "key_id": self.key_id,
            "issued_at": self.issued_at.isoformat(),
            "note": self.note,
        }


CHECKPOINT_COLUMNS = "id, origin, tree_size, root_hash, key_name, key_id, note, issued_at"


def _checkpoint(row: Sequence[Any]) -> StoredCheckpoint:
    return StoredCheckpoint(
        int(row[0]), row[1], int(row[2]), bytes(row[3]), row[4], row[5], row[6], row[7]
    )


def latest_checkpoint(conn: Connection[Any]) -> StoredCheckpoint | None:
    with conn.cursor(row_factory=tuple_row) as curs:
        row = curs.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return None if row is None else _checkpoint(row)


def checkpoints(conn: Connection[Any], after_id: int = 0) -> Iterator[StoredCheckpoint]:
    with conn.cursor(row_factory=tuple_row) as curs:
        rows = curs.execute(
            f"SELECT {CHECKPOINT_COLUMNS} FROM ledger_checkpoints WHERE id > %s ORDER BY id",
            (after_id,),
        ).fetchall()
    return (_checkpoint(r) for r in rows)


class InconsistentLog(Exception):
    """The tree no longer holds what the last signed checkpoint committed to."""


def issue_checkpoint(
    conn: Connection[Any], signer: note.Signer, origin: str, *, force: bool = False
) -> StoredCheckpoint:
    """Sign the tree as it is now and store the note. The same size as the last
    checkpoint returns that one (unless ``force``); a tree whose prefix no longer hashes
    to the last checkpoint's root is refused (a log must never sign two inconsistent
    checkpoints: c2sp.org/tlog-checkpoint)."""
    size = tree_size(conn)
    last = latest_checkpoint(conn)
    if last is not None:
        if last.size > size:
            msg = f"the tree has {size} leaves, the last checkpoint signed {last.size}"
            raise InconsistentLog(msg)
        if root(conn, last.size) != last.root:
            msg = f"the tree's first {last.size} leaves no longer hash to the last checkpoint"
            raise InconsistentLog(msg)
        if last.size == size and last.origin == origin and not force:
            return last
    head = root(conn, size)
    text = note.checkpoint_text(origin, size, head)
    signed = note.sign(text, signer)
    verifier = signer.verifier
    with conn.cursor(row_factory=tuple_row) as curs:
        row = curs.execute(
            "INSERT INTO ledger_checkpoints (origin, tree_size, root_hash, key_name, key_id, note)"
            f" VALUES (%s, %s, %s, %s, %s, %s) RETURNING {CHECKPOINT_COLUMNS}",
            (origin, size, head, verifier.name, verifier.key_id.hex(), signed),
        ).fetchone()
    assert row is not None
    return _checkpoint(row)


def publish_pending(
    conn: Connection[Any], topic: str, send: Callable[[StoredCheckpoint], None]
) -> int:
    """Send every checkpoint the topic has not had yet, in order, then move its mark;
    returns how many went. ``send`` must have delivered (flushed) before it returns."""
    with conn.cursor(row_factory=tuple_row) as curs:
        row = curs.execute(
            "SELECT checkpoint_id FROM checkpoint_publications WHERE topic = %s", (topic,)
        ).fetchone()
    sent = 0
    last = int(row[0]) if row else 0
    for checkpoint in checkpoints(conn, last):
        send(checkpoint)
        sent += 1
        last = checkpoint.id
        with conn.cursor() as curs:
            curs.execute(
                "INSERT INTO checkpoint_publications (topic, checkpoint_id) VALUES (%s, %s)"
                " ON CONFLICT (topic) DO UPDATE SET checkpoint_id = excluded.checkpoint_id",
                (topic, last),
            )
    return sent


# -- checking the tree against the events (verify) ------------------------------------------


@dataclass(frozen=True, slots=True)
class TreeProblem:
    what: str
    position: int | None = None
    leaf_index: int | None = None

    def describe(self) -> str:
        where = []
        if self.leaf_index is not None:
            where.append(f"leaf {self.leaf_index}")
        if self.position is not None:
            where.append(f"position {self.position}")
        return f"tree {' '.join(where)}: {self.what}" if where else f"tree: {self.what}"


@dataclass(slots=True)
class TreeCheck:
    size: int = 0
    events: int = 0
    problems: list[TreeProblem] | None = None
    roots: dict[int, bytes] | None = None  # recomputed from the events, at asked sizes


LEAVES_VS_EVENTS = """
    SELECT t.index, t.position, t.hash, l.position, l.hash
    FROM ledger_tree_nodes t
    FULL JOIN ledger_events l ON l.position = t.position AND t.level = 0
    WHERE t.level = 0 OR t.level IS NULL
    ORDER BY coalesce(t.position, l.position)
"""
INTERIOR = (
    "SELECT level, index, hash FROM ledger_tree_nodes WHERE level > 0"
    " ORDER BY (index + 1) << level::int, level"
)


def check_tree(conn: Connection[Any], sizes: set[int], limit: int = 20) -> TreeCheck:
    """Recompute the whole tree from the events' chain hashes and compare it with the
    stored one node by node; also the root at each of ``sizes`` (the checkpoints').

    Two server-side cursors stream the leaves (joined to the events by position) and the
    interior nodes in the order a rebuild produces them, so memory stays O(log n)."""
    problems: list[TreeProblem] = []
    roots: dict[int, bytes] = {}
    frontier = merkle.Frontier()
    check = TreeCheck(problems=problems, roots=roots)

    def note_problem(problem: TreeProblem) -> None:
        if len(problems) < limit:
            problems.append(problem)

    with conn.transaction():
        leaves = conn.cursor("tree_leaves", row_factory=tuple_row)
        interior = conn.cursor("tree_interior", row_factory=tuple_row)
        try:
            leaves.execute(LEAVES_VS_EVENTS)
            interior.execute(INTERIOR)
            pending_interior = iter(interior)
            expected_index = 0
            if 0 in sizes:
                roots[0] = merkle.EMPTY_ROOT

            def compare(level: int, index: int, value: bytes) -> None:
                if level == 0:
                    return
                stored = next(pending_interior, None)
                if stored is None or (stored[0], stored[1]) != (level, index):
                    note_problem(TreeProblem(f"node (level {level}, index {index}) missing"))
                    return
                if bytes(stored[2]) != value:
                    note_problem(TreeProblem(f"node (level {level}, index {index}) does not match"))

            for t_index, t_position, t_hash, e_position, e_hash in leaves:
                if e_position is not None:
                    check.events += 1
                if t_index is None:
                    note_problem(TreeProblem("event has no leaf", position=e_position))
                    continue
                if t_index != expected_index:
                    note_problem(
                        TreeProblem(
                            f"leaves out of order (expected leaf {expected_index})",
                            t_position,
                            t_index,
                        )
                    )
                expected_index = t_index + 1
                if e_position is None:
                    note_problem(TreeProblem("names a position with no event", t_position, t_index))
                    frontier.push(bytes(t_hash), compare)  # keep the stored leaf's place
                else:
                    leaf = leaf_of(e_hash)
                    if leaf != bytes(t_hash):
                        note_problem(
                            TreeProblem("leaf does not match the event's hash", e_position, t_index)
                        )
                    frontier.push(leaf, compare)
                if frontier.size in sizes:
                    roots[frontier.size] = frontier.root()
            extra = next(pending_interior, None)
            if extra is not None:
                note_problem(
                    TreeProblem(f"node (level {extra[0]}, index {extra[1]}) has no leaves")
                )
        finally:
            leaves.close()
            interior.close()
    check.size = frontier.size
    return check


def inclusion_proofs(conn: Connection[Any], indexes: Sequence[int], size: int) -> list[list[bytes]]:
    """Several leaves' proofs in one tree, from one read of the nodes they need."""
    _check_size(conn, size)
    all_ranges = [merkle.inclusion_ranges(i, size) for i in indexes]
    nodes = _nodes(conn, merkle.nodes_for(r for ranges in all_ranges for r in ranges))
    return [[merkle.range_hash(a, b, nodes) for a, b in ranges] for ranges in all_ranges]


def inclusion_answer(conn: Connection[Any], position: int, size: int | None) -> dict[str, Any]:
    """The inclusion proof of the event at ``position`` (JSON-ready, base64 hashes);
    without a size, in the tree of the latest checkpoint."""
    if size is None:
        last = latest_checkpoint(conn)
        if last is None:
            msg = "no checkpoint has been issued yet: name a tree_size"
            raise TreeError(msg)
        size = last.size
    leaf = leaf_at(conn, position)
    if leaf is None:
        msg = f"no event at position {position} in the tree"
        raise TreeError(msg)
    if leaf.index >= size:
        msg = f"the event at position {position} is leaf {leaf.index}, not in a tree of {size}"
        raise TreeError(msg)
    (proof,) = inclusion_proofs(conn, [leaf.index], size)
    return {
        "position": position,
        "leaf_index": leaf.index,
        "tree_size": size,
        "leaf_hash": _b64(leaf.hash),
        "root_hash": _b64(root(conn, size)),
        "hashes": [_b64(p) for p in proof],
    }


def consistency_answer(conn: Connection[Any], old: int, new: int) -> dict[str, Any]:
    if old > new:
        msg = f"no consistency proof from size {old} down to size {new}"
        raise TreeError(msg)
    proof = consistency_proof(conn, old, new)
    return {
        "from": old,
        "to": new,
        "from_root": _b64(root(conn, old)),
        "to_root": _b64(root(conn, new)),
        "hashes": [_b64(p) for p in proof],
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def log_problems(
    conn: Connection[Any],
    verifier: note.Verifier | None,
    kept: Sequence[str] = (),
) -> tuple[TreeCheck, list[str]]:
    """The tree recomputed from the events and compared with the stored tree, every
    stored checkpoint (signature, if a verifier is given, and root) and every kept one
    (checkpoints an auditor held outside the database; they need the verifier)."""
    stored = list(checkpoints(conn))
    outside: list[note.Checkpoint] = []
    problems: list[str] = []
    for n, text in enumerate(kept, start=1):
        if verifier is None:
            problems.append(f"kept checkpoint #{n}: no verifier key to check it with")
            continue
        try:
            outside.append(note.open_checkpoint(text, verifier))
        except note.NoteError as exc:
            problems.append(f"kept checkpoint #{n}: {exc}")
    sizes = {c.size for c in stored} | {c.size for c in outside}
    check = check_tree(conn, sizes)
    problems.extend(p.describe() for p in check.problems or [])
    roots = check.roots or {}
    for c in stored:
        name = f"checkpoint {c.id} (tree size {c.size})"
        if verifier is not None:
            try:
                body = note.open_checkpoint(c.note, verifier)
            except note.NoteError as exc:
                problems.append(f"{name}: {exc}")
                continue
            if (body.size, body.root) != (c.size, c.root):
                problems.append(f"{name}: the stored columns disagree with the signed note")
        problems.extend(_against(name, c.size, c.root, check.size, roots))
    for n, c in enumerate(outside, start=1):
        problems.extend(
            _against(
                f"kept checkpoint #{n} (tree size {c.size})", c.size, c.root, check.size, roots
            )
        )
    return check, problems


def _against(name: str, size: int, signed: bytes, have: int, roots: dict[int, bytes]) -> list[str]:
    if size > have:
        return [f"{name}: the ledger now holds only {have} events: the log shrank"]
    if roots.get(size) != signed:
        return [f"{name}: the events no longer hash to its root: history before it was rewritten"]
    return []
