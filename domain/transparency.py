"""The ledger's Merkle tree and signed checkpoints in PostgreSQL.

The tree (RFC 9162 hashing, ``domain/merkle.py``) has one leaf per recorded event in
position order; the leaf hash is SHA-256(0x00 || the event's 32 chain-hash bytes)
(``domain.integrity.tree_leaf``: the chain hash commits to position, patient id,
version, ledger clock, previous link and content hash).

Storage: one ``ledger_tree`` row per append, never changed afterwards (append-only,
like the events): the leaves it added (their first index, their positions) and, packed
in ``hashes``, their leaf hashes followed by every interior *complete* node the append
created, in creation order, plus the tree's frontier after it (at most 63 hashes: all a
later append needs). A complete node ``(level, index)`` is created by leaf
``j = (index + 1) * 2**level - 1``; the nodes created by the leaves before ``j`` number
``j - popcount(j)``, so a node's offset in its row is arithmetic, and any set of nodes is
read with one statement (``substring`` of an uncompressed, out-of-line ``bytea`` reads
only the pages it needs). An append writes one row whatever its size (measured first
with one row per node: 4,000 index-maintained rows for a 2,000-event batch cost 10-20 ms
under the lock; bench/append.py reports the tree's cost now).

``append`` runs inside the recorder's transaction, under its table lock, once the
positions and hashes are known: one indexed read (the last row: size and frontier),
O(log n) hashes per leaf at worst (O(1) on average), one INSERT. Proofs and roots fold
from at most ``log2(n)`` complete nodes each. ``backfill`` builds the tree of a ledger
written before the tree existed (the migration; idempotent).

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

HASH = 32

SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS ledger_tree (
        first_leaf     bigint PRIMARY KEY,
        leaf_count     integer NOT NULL CHECK (leaf_count > 0),
        last_position  bigint NOT NULL UNIQUE,
        positions      bigint[] NOT NULL,
        hashes         bytea NOT NULL,
        frontier       bytea NOT NULL
    )
    """,
    "ALTER TABLE ledger_tree ALTER COLUMN hashes SET STORAGE EXTERNAL",
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

LAST = (
    "SELECT first_leaf + leaf_count, frontier, last_position FROM ledger_tree"
    " ORDER BY first_leaf DESC LIMIT 1"
)
INSERT = (
    "INSERT INTO ledger_tree (first_leaf, leaf_count, last_position, positions, hashes,"
    " frontier) VALUES (%s, %s, %s, %s, %s, %s)"
)
# Each wanted node's 32 bytes: the row holding its creating leaf j, then the offset
# (leaf: j - first; interior: after the row's leaves, c(j) - c(first) + level - 1, where
# c(x) = x - popcount(x) counts the interior nodes leaves [0, x) create).
NODES = """
    SELECT w.level, w.index, substring(b.hashes FROM (1 + 32 * CASE WHEN w.level = 0
        THEN w.j - b.first_leaf
        ELSE b.leaf_count + w.c - (b.first_leaf - bit_count(b.first_leaf::bit(64)))
             + w.level - 1 END)::int FOR 32), w.j < b.first_leaf + b.leaf_count
    FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::bigint[]) AS w(level, index, j, c)
    CROSS JOIN LATERAL (
        SELECT first_leaf, leaf_count, hashes FROM ledger_tree
        WHERE first_leaf <= w.j ORDER BY first_leaf DESC LIMIT 1
    ) b
"""
LEAVES = """
    SELECT p.p, b.first_leaf + k.k - 1, substring(b.hashes FROM (1 + 32 * (k.k - 1))::int FOR 32)
    FROM unnest(%s::bigint[]) AS p(p)
    CROSS JOIN LATERAL (
        SELECT first_leaf, positions, hashes FROM ledger_tree
        WHERE last_position >= p.p ORDER BY last_position LIMIT 1
    ) b
    CROSS JOIN LATERAL (SELECT array_position(b.positions, p.p) AS k) k
    WHERE k.k IS NOT NULL
"""
SIZE = "SELECT coalesce(max(first_leaf + leaf_count), 0) FROM ledger_tree"


class TreeError(Exception):
    """The stored tree cannot answer: a node is missing, or the size is beyond it."""


leaf_of = tree_leaf


def _split(blob: bytes) -> list[bytes]:
    return [blob[i : i + HASH] for i in range(0, len(blob), HASH)]


# -- maintaining the tree ------------------------------------------------------------------


def append(curs: Cursor[Any], positions: Sequence[int], chain_hashes: Sequence[str]) -> int:
    """Add the events just placed (ascending positions) as the next leaves; returns the
    new tree size. Call under the ledger's table lock, in the append's transaction."""
    with curs.connection.cursor(row_factory=tuple_row) as rows:
        last = rows.execute(LAST).fetchone()
    size, stack = (0, []) if last is None else (int(last[0]), _split(bytes(last[1])))
    leaves = [tree_leaf(h) for h in chain_hashes]
    interior = merkle.grow(size, stack, leaves)
    curs.execute(
        INSERT,
        (
            size,
            len(leaves),
            positions[-1],
            list(positions),
            b"".join(leaves) + b"".join(interior),
            b"".join(stack),
        ),
    )
    return size + len(leaves)


def backfill(conn: Connection[Any], events_table: str, chunk: int = 10_000) -> int:
    """Give every event after the tree's last leaf its leaf (a ledger recorded before
    the tree existed); returns the leaves added. Holds the ledger's table lock while it
    works, so appends wait rather than interleave."""

    def last_position(curs: Cursor[Any]) -> int:
        row = curs.execute(LAST).fetchone()
        return 0 if row is None else int(row[2])

    with conn.cursor(row_factory=tuple_row) as curs:
        head = curs.execute("SELECT coalesce(max(position), 0) FROM ledger_events").fetchone()
        assert head is not None
        if head[0] <= last_position(curs):
            return 0
    added = 0
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as curs:
        curs.execute(f"LOCK TABLE {events_table} IN EXCLUSIVE MODE")
        after = last_position(curs)
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
    nodes = sorted(wanted)
    levels = [level for level, _ in nodes]
    indexes = [index for _, index in nodes]
    creators = [merkle.creating_leaf(level, index) for level, index in nodes]
    before = [merkle.interior_before(j) for j in creators]
    with conn.cursor(row_factory=tuple_row) as curs:
        rows = curs.execute(NODES, (levels, indexes, creators, before)).fetchall()
    found = {(r[0], r[1]): bytes(r[2]) for r in rows if r[3] and r[2] is not None}
    found = {node: value for node, value in found.items() if len(value) == HASH}
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
    (proof,) = inclusion_proofs(conn, [index], size)
    return proof


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


def leaves_at(conn: Connection[Any], positions: Sequence[int]) -> dict[int, Leaf]:
    """The leaves of the events at these positions (those the tree has)."""
    with conn.cursor(row_factory=tuple_row) as curs:
        rows = curs.execute(LEAVES, (list(positions),)).fetchall()
    return {int(r[0]): Leaf(int(r[1]), int(r[0]), bytes(r[2])) for r in rows}


def leaf_at(conn: Connection[Any], position: int) -> Leaf | None:
    return leaves_at(conn, [position]).get(position)


# -- C2SP tlog-tiles (c2sp.org/tlog-tiles) -----------------------------------------------------

TILE_WIDTH = 256  # hashes in a full tile; a tile spans 8 levels of the tree
TILE_HEIGHT = 8
MAX_TILE_LEVEL = 63
# The leaves' own data (each event's 32-byte chain hash), in leaf order, for one bundle.
ENTRIES = """
    SELECT b.first_leaf + u.k - 1, e.hash
    FROM ledger_tree b
    CROSS JOIN LATERAL unnest(b.positions) WITH ORDINALITY AS u(position, k)
    JOIN ledger_events e ON e.position = u.position
    WHERE b.first_leaf < %(end)s AND b.first_leaf + b.leaf_count > %(start)s
      AND b.first_leaf + u.k - 1 >= %(start)s AND b.first_leaf + u.k - 1 < %(end)s
    ORDER BY 1
"""


def tile_index_path(index: int) -> str:
    """``<N>`` of a tile path: zero-padded 3-digit elements, all but the last ``x``-led
    (1234067 -> ``x001/x234/067``)."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    return "/".join([*(f"x{g}" for g in reversed(groups[1:])), groups[0]])


def _tile_span(level: int, index: int, width: int, size: int) -> tuple[int, int]:
    """The first node index and the node height of a tile's hashes, or ``TreeError``
    when the tree of ``size`` leaves does not hold all ``width`` of them (yet)."""
    if not 0 <= level <= MAX_TILE_LEVEL or not 1 <= width <= TILE_WIDTH or index < 0:
        raise TreeError("no such tile")
    height = TILE_HEIGHT * level
    first = index * TILE_WIDTH
    if (first + width) << height > size:
        msg = f"the tree of {size} leaves does not hold that tile"
        raise TreeError(msg)
    return first, height


def tile(conn: Connection[Any], level: int, index: int, width: int = TILE_WIDTH) -> bytes:
    """The tile ``<level>/<index>`` (``width`` < 256: the partial one): the hashes of the
    complete nodes at height ``8 * level``, indexes ``index * 256`` up, each the MTH of
    ``256**level`` consecutive leaves (level 0: the leaf hashes). Complete nodes never
    change, so neither does any tile once the tree holds it."""
    first, height = _tile_span(level, index, width, tree_size(conn))
    wanted = {(height, first + i) for i in range(width)}
    found = _nodes(conn, wanted)
    return b"".join(found[(height, first + i)] for i in range(width))


def entry_bundle(conn: Connection[Any], index: int, width: int = TILE_WIDTH) -> bytes:
    """Entry bundle ``<index>``: each leaf's data (the event's 32-byte chain hash, which
    the level-0 tile holds hashed as ``SHA-256(0x00 || data)``), big-endian uint16
    length-prefixed, in leaf order."""
    first, _ = _tile_span(0, index, width, tree_size(conn))
    with conn.cursor(row_factory=tuple_row) as curs:
        rows = curs.execute(ENTRIES, {"start": first, "end": first + width}).fetchall()
    if [int(r[0]) for r in rows] != list(range(first, first + width)):
        msg = f"the stored tree's leaves {first}..{first + width - 1} name missing events"
        raise TreeError(msg)
    prefix = HASH.to_bytes(2, "big")
    return b"".join(prefix + bytes.fromhex(str(r[1])) for r in rows)


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


def _collector(into: list[bytes]) -> Callable[[int, int, bytes], None]:
    """Keep the interior nodes a ``Frontier`` creates, in creation order."""

    def collect(level: int, _index: int, value: bytes) -> None:
        if level:
            into.append(value)

    return collect


def check_tree(conn: Connection[Any], sizes: set[int], limit: int = 20) -> TreeCheck:
    """Recompute the whole tree from the events' chain hashes and compare it with the
    stored one, leaf by leaf and node by node; also the root at each of ``sizes`` (the
    checkpoints'). Two server-side cursors stream the events and the tree's rows in
    order, so memory stays one append's worth."""
    problems: list[TreeProblem] = []
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in sizes else {}
    check = TreeCheck(problems=problems, roots=roots)
    frontier = merkle.Frontier()

    def flag(problem: TreeProblem) -> None:
        if len(problems) < limit:
            problems.append(problem)

    with conn.transaction():
        events = conn.cursor("tree_check_events", row_factory=tuple_row)
        batches = conn.cursor("tree_check_rows", row_factory=tuple_row)
        try:
            events.execute("SELECT position, hash FROM ledger_events ORDER BY position")
            batches.execute(
                "SELECT first_leaf, leaf_count, positions, hashes, frontier FROM ledger_tree"
                " ORDER BY first_leaf"
            )
            pending = iter(events)
            event = next(pending, None)
            for first, count, positions, blob, stored_frontier in batches:
                blob = bytes(blob)
                if first != frontier.size:
                    flag(TreeProblem(f"leaves out of order (expected leaf {frontier.size})"))
                created: list[bytes] = []
                collect = _collector(created)
                for k, position in enumerate(positions[:count]):
                    index = first + k
                    while event is not None and event[0] < position:
                        flag(TreeProblem("event has no leaf", position=event[0]))
                        check.events += 1
                        event = next(pending, None)
                    stored_leaf = blob[HASH * k : HASH * (k + 1)]
                    if event is None or event[0] != position:
                        flag(TreeProblem("names a position with no event", position, index))
                        frontier.push(stored_leaf, collect)  # keep its place in the tree
                    else:
                        leaf = tree_leaf(event[1])
                        if leaf != stored_leaf:
                            flag(
                                TreeProblem("leaf does not match the event's hash", position, index)
                            )
                        frontier.push(leaf, collect)
                        check.events += 1
                        event = next(pending, None)
                    if frontier.size in sizes:
                        roots[frontier.size] = frontier.root()
                if b"".join(created) != blob[HASH * count :]:
                    flag(
                        TreeProblem(
                            f"interior nodes of leaves {first}..{first + count - 1} do not match"
                        )
                    )
                if b"".join(frontier.stack) != bytes(stored_frontier):
                    flag(TreeProblem(f"frontier after leaf {first + count - 1} does not match"))
            while event is not None:
                flag(TreeProblem("event has no leaf", position=event[0]))
                check.events += 1
                event = next(pending, None)
        finally:
            events.close()
            batches.close()
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
    for n, kept_checkpoint in enumerate(outside, start=1):
        size, signed = kept_checkpoint.size, kept_checkpoint.root
        problems.extend(
            _against(f"kept checkpoint #{n} (tree size {size})", size, signed, check.size, roots)
        )
    return check, problems


def _against(name: str, size: int, signed: bytes, have: int, roots: dict[int, bytes]) -> list[str]:
    if size > have:
        return [f"{name}: the ledger now holds only {have} events: the log shrank"]
    if roots.get(size) != signed:
        return [f"{name}: the events no longer hash to its root: history before it was rewritten"]
    return []
