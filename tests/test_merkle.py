"""The Merkle tree against an independent, literal RFC 9162 §2.1 implementation.

The reference below is the RFC's recursive definitions written out (MTH, PATH,
SUBPROOF) with nothing shared with ``domain/merkle.py`` but SHA-256; proofs must be
equal byte for byte, the RFC's verifiers must accept them and reject altered ones.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from domain import merkle


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and PROOF of RFC 9162 §2.1 over one list of leaves, literally (the
    recursion on sub-lists D[a:b]); MTH is memoised so every position of a 2,000-leaf
    tree can be checked in a test."""

    def __init__(self, leaves: tuple[bytes, ...]) -> None:
        self.leaves = leaves
        self.memo: dict[tuple[int, int], bytes] = {}

    def mth(self, a: int, b: int) -> bytes:
        if (a, b) not in self.memo:
            n = b - a
            if n == 0:
                value = _h(b"")
            elif n == 1:
                value = _h(b"\x00" + self.leaves[a])
            else:
                k = _k(n)
                value = _h(b"\x01" + self.mth(a, a + k) + self.mth(a + k, b))
            self.memo[(a, b)] = value
        return self.memo[(a, b)]

    def path(self, m: int, a: int, b: int) -> list[bytes]:
        n = b - a
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return [*self.path(m, a, a + k), self.mth(a + k, b)]
        return [*self.path(m - k, a + k, b), self.mth(a, a + k)]

    def subproof(self, m: int, a: int, b: int, whole: bool) -> list[bytes]:
        n = b - a
        if m == n:
            return [] if whole else [self.mth(a, b)]
        k = _k(n)
        if m <= k:
            return [*self.subproof(m, a, a + k, whole), self.mth(a + k, b)]
        return [*self.subproof(m - k, a + k, b, False), self.mth(a, a + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        return self.subproof(m, 0, n, True) if 0 < m < n else []


@lru_cache(maxsize=4)
def tree(size: int) -> tuple[tuple[bytes, ...], dict[merkle.Node, bytes]]:
    """Leaf data and every complete node, built the way the ledger builds them."""
    data = tuple(f"leaf {i}".encode() for i in range(size))
    nodes: dict[merkle.Node, bytes] = {}
    built = merkle.new_nodes(0, {}, [merkle.leaf_hash(d) for d in data])
    for level, index, value in built:
        nodes[(level, index)] = value
    return data, nodes


def proof_of(ranges: list[merkle.Range], nodes: dict[merkle.Node, bytes]) -> list[bytes]:
    return [merkle.range_hash(a, b, nodes) for a, b in ranges]


def test_known_vectors() -> None:
    """The empty tree and a one-leaf tree, as RFC 6962 test logs give them."""
    assert merkle.EMPTY_ROOT.hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    assert merkle.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 2000))
@example(size=2000)
@example(size=1025)
def test_roots_and_inclusion_proofs_at_every_position_match_the_rfc(size: int) -> None:
    leaves, nodes = tree(size)
    ref = Reference(leaves)
    root = ref.mth(0, size)
    assert merkle.range_hash(0, size, nodes) == root
    frontier = merkle.Frontier()
    for d in leaves:
        frontier.push(merkle.leaf_hash(d))
    assert frontier.root() == root
    for m in range(size):
        proof = proof_of(merkle.inclusion_ranges(m, size), nodes)
        assert proof == ref.path(m, 0, size), m
        leaf = merkle.leaf_hash(leaves[m])
        assert merkle.verify_inclusion(m, size, leaf, proof, root)
        assert not merkle.verify_inclusion(m, size, merkle.leaf_hash(b"other"), proof, root)
        if proof:
            assert not merkle.verify_inclusion(m, size, leaf, [*proof[:-1], _h(b"x")], root)
            assert not merkle.verify_inclusion(m, size, leaf, proof[:-1], root)
            assert not merkle.verify_inclusion(m, size, leaf, [*proof, proof[0]], root)
            other = (m + 1) % size
            assert not merkle.verify_inclusion(other, size, leaf, proof, root)


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 2000), data=st.data())
def test_consistency_proofs_match_the_rfc(size: int, data: st.DataObject) -> None:
    leaves, nodes = tree(size)
    ref = Reference(leaves)
    new_root = ref.mth(0, size)
    olds = data.draw(st.lists(st.integers(1, size), min_size=1, max_size=20))
    for old in [1, size, *olds]:
        proof = proof_of(merkle.consistency_ranges(old, size), nodes)
        assert proof == ref.proof(old, size), old
        old_root = ref.mth(0, old)
        assert merkle.verify_consistency(old, size, old_root, new_root, proof)
        if old < size:
            forged = _h(b"forged")
            assert not merkle.verify_consistency(old, size, forged, new_root, proof)
            assert not merkle.verify_consistency(old, size, old_root, forged, proof)
            assert not merkle.verify_consistency(old, size, old_root, new_root, proof[1:])


def test_every_position_of_every_small_tree() -> None:
    for size in range(1, 70):
        leaves, nodes = tree(size)
        ref = Reference(leaves)
        root = ref.mth(0, size)
        for m in range(size):
            proof = proof_of(merkle.inclusion_ranges(m, size), nodes)
            assert proof == ref.path(m, 0, size), (size, m)
            assert merkle.verify_inclusion(m, size, merkle.leaf_hash(leaves[m]), proof, root)
        for old in range(0, size + 1):
            proof = proof_of(merkle.consistency_ranges(old, size), nodes)
            assert proof == ref.proof(old, size), (old, size)
            assert merkle.verify_consistency(old, size, ref.mth(0, old), root, proof), (old, size)


def test_incremental_appends_equal_one_build() -> None:
    """Appending in batches from a stored frontier gives the nodes of one build."""
    data, nodes = tree(1000)
    grown: dict[merkle.Node, bytes] = {}
    size = 0
    for batch in (1, 2, 5, 100, 3, 389, 500):
        frontier = {n: grown[n] for n in merkle.frontier_nodes(size)}
        leaves = [merkle.leaf_hash(d) for d in data[size : size + batch]]
        for level, index, value in merkle.new_nodes(size, frontier, leaves):
            assert (level, index) not in grown  # complete nodes are written once
            grown[(level, index)] = value
        size += batch
    assert grown == nodes


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_ranges(5, 5)
    with pytest.raises(ValueError):
        merkle.consistency_ranges(6, 5)
    assert not merkle.verify_inclusion(0, 0, b"x" * 32, [], b"x" * 32)
    assert not merkle.verify_consistency(3, 2, b"", b"", [])


def test_grow_packs_the_nodes_where_the_offsets_say() -> None:
    """The storage layout: each append's interior nodes in creation order, found again by
    ``creating_leaf`` and ``interior_before`` (what the recorder's rows rely on)."""
    data, nodes = tree(1000)
    leaves = [merkle.leaf_hash(d) for d in data]
    stack: list[bytes] = []
    size = 0
    for batch in (1, 2, 5, 100, 3, 389, 500):
        first = size
        created = merkle.grow(size, stack, leaves[size : size + batch])
        size += batch
        assert stack == [nodes[n] for n in merkle.frontier_nodes(size)]
        for (level, index), value in nodes.items():
            j = merkle.creating_leaf(level, index)
            if level and first <= j < size:
                offset = merkle.interior_before(j) - merkle.interior_before(first) + level - 1
                assert created[offset] == value
        assert len(created) == merkle.interior_before(size) - merkle.interior_before(first)
