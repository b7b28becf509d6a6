"""The Merkle tree hashing of RFC 9162 §2.1 (RFC 6962): pure functions, no storage.

    leaf hash  MTH({d}) = SHA-256(0x00 || d)
    node hash           = SHA-256(0x01 || left || right)
    MTH(D[n]) splits at k, the largest power of two smaller than n.

A *complete node* ``(level, index)`` is the hash of the perfect subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 is the leaf hashes. Complete
nodes never change once the log holds their leaves, so storage keeps exactly those
(``domain/transparency.py``) and every other hash (a root, a proof's right-edge
subtree) is folded from at most ``log2(n)`` of them. Proofs are lists of subtree
hashes in the order of RFC 9162 §2.1.3.1 / §2.1.4.1 (the leaf's sibling first), so any
RFC 6962/9162 verifier accepts them; the verifiers below are the RFC's own algorithms
(§2.1.3.2, §2.1.4.2). Nothing here reads a database: the offline audit uses it as is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


# -- which subtrees a proof or a root needs ----------------------------------------------


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes form PATH(index, D[size]) (RFC 9162 §2.1.3.1), in order."""
    if not 0 <= index < size:
        msg = f"leaf {index} is not in a tree of size {size}"
        raise ValueError(msg)
    out: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split(end - start)
        if index - start < k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def consistency_ranges(old: int, new: int) -> list[Range]:
    """The subtrees whose hashes form PROOF(old, D[new]) (RFC 9162 §2.1.4.1), in order."""
    if not 0 <= old <= new:
        msg = f"no consistency proof from size {old} to size {new}"
        raise ValueError(msg)
    if old in (0, new):
        return []
    out: list[Range] = []
    start, end, m, whole = 0, new, old, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                out.append((start, end))
            break
        k = split(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start, m, whole = start + k, m - k, False
    out.reverse()
    return out


def complete_nodes(start: int, end: int) -> list[Node]:
    """The complete nodes MTH(D[start:end]) folds from, left to right.

    ``start`` must be aligned for the range (as every range of a proof or root is: it is
    a multiple of the power of two the range was split off at)."""
    out: list[Node] = []
    while start < end:
        n = end - start
        size = 1 << (n.bit_length() - 1) if n & (n - 1) else n
        out.append(((size.bit_length() - 1), start // size))
        start += size
    return out


def nodes_for(ranges: Iterable[Range]) -> set[Node]:
    return {node for start, end in ranges for node in complete_nodes(start, end)}


def range_hash(start: int, end: int, nodes: Mapping[Node, bytes]) -> bytes:
    """MTH(D[start:end]) from the complete nodes it folds from (right to left: the
    decomposition is the RFC's split, the last subtree the deepest right child)."""
    if start == end:
        return EMPTY_ROOT
    hashes = [nodes[node] for node in complete_nodes(start, end)]
    acc = hashes[-1]
    for left in reversed(hashes[:-1]):
        acc = node_hash(left, acc)
    return acc


def root_nodes(size: int) -> list[Node]:
    return complete_nodes(0, size)


# -- building the tree incrementally --------------------------------------------------------


def frontier_nodes(size: int) -> list[Node]:
    """The complete nodes a tree of ``size`` leaves ends with (one per set bit of size):
    the only ones a new leaf can combine with."""
    return complete_nodes(0, size)


def new_nodes(
    size: int, frontier: Mapping[Node, bytes], leaves: Sequence[bytes]
) -> list[tuple[int, int, bytes]]:
    """Append leaf hashes to a tree of ``size`` leaves whose frontier is given: every
    complete node that comes to exist, as ``(level, index, hash)``, level 0 included.
    O(1) hashes a leaf on average, O(log n) at worst (a stack, as ``Frontier``: the
    recorder runs this under the ledger's lock)."""
    stack = [frontier[node] for node in frontier_nodes(size)]
    out: list[tuple[int, int, bytes]] = []
    append = out.append
    sha256 = hashlib.sha256
    for i, leaf in enumerate(leaves, start=size):
        append((0, i, leaf))
        value, level, index = leaf, 0, i
        while index & 1:
            value = sha256(b"\x01" + stack.pop() + value).digest()
            level += 1
            index >>= 1
            append((level, index, value))
        stack.append(value)
    return out


class Frontier:
    """A compact range over leaves [0, size): the stack of frontier hashes, enough to
    know the root at every size while streaming the leaves (``verify`` walks the whole
    log this way in O(log n) memory)."""

    __slots__ = ("size", "stack")

    def __init__(self) -> None:
        self.size = 0
        self.stack: list[bytes] = []

    def push(self, leaf: bytes, on_node: Callable[[int, int, bytes], None] | None = None) -> None:
        value, level, index = leaf, 0, self.size
        if on_node is not None:
            on_node(0, index, value)
        while index & 1:
            value = node_hash(self.stack.pop(), value)
            level, index = level + 1, index >> 1
            if on_node is not None:
                on_node(level, index, value)
        self.stack.append(value)
        self.size += 1

    def root(self) -> bytes:
        if not self.stack:
            return EMPTY_ROOT
        acc = self.stack[-1]
        for left in reversed(self.stack[:-1]):
            acc = node_hash(left, acc)
        return acc


# -- verifying (RFC 9162 §2.1.3.2 and §2.1.4.2, as written) -------------------------------


def _sides(fn: int, sn: int, proof: Iterable[bytes]) -> list[tuple[bytes, bool]] | None:
    """The walk both RFC 9162 verifiers share (§2.1.3.2, §2.1.4.2), from node ``fn`` of
    a tree whose last node is ``sn``: each proof hash with whether it is the left
    sibling of the hash folded so far. None when the proof's length does not fit the
    tree (a hash after the root is reached, or the root not reached at the end)."""
    sides: list[tuple[bytes, bool]] = []
    for p in proof:
        if sn == 0:
            return None
        left = bool(fn & 1) or fn == sn
        if left and not fn & 1:
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        sides.append((p, left))
        fn >>= 1
        sn >>= 1
    return sides if sn == 0 else None


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof implies, or None if the proof cannot be one."""
    if not 0 <= index < size:
        return None
    sides = _sides(index, size - 1, proof)
    if sides is None:
        return None
    r = leaf
    for p, left in sides:
        r = node_hash(p, r) if left else node_hash(r, p)
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    return root_from_inclusion(index, size, leaf, proof) == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    if old > new or old < 0:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof  # the empty tree is a prefix of every tree
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    sides = _sides(fn, sn, path[1:])
    if sides is None:
        return False
    fr = sr = path[0]
    for c, left in sides:
        if left:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
        else:
            sr = node_hash(sr, c)
    return fr == old_root and sr == new_root


def grow(size: int, stack: list[bytes], leaves: Sequence[bytes]) -> list[bytes]:
    """Append leaf hashes to a tree of ``size`` leaves whose frontier hashes (left to
    right, as ``Frontier.stack``) are ``stack``, which becomes the new frontier; returns
    the interior complete nodes created, in creation order (leaf by leaf, level by
    level). O(1) hashes a leaf on average, O(log n) at worst."""
    created: list[bytes] = []
    sha256 = hashlib.sha256
    for index in range(size, size + len(leaves)):
        value = leaves[index - size]
        while index & 1:
            value = sha256(b"\x01" + stack.pop() + value).digest()
            index >>= 1
            created.append(value)
        stack.append(value)
    return created


def creating_leaf(level: int, index: int) -> int:
    """The leaf whose arrival completes node (level, index)."""
    return ((index + 1) << level) - 1


def interior_before(leaves: int) -> int:
    """How many interior complete nodes a tree of ``leaves`` leaves has (the number its
    leaves created, in order): n - popcount(n)."""
    return leaves - bin(leaves).count("1")
