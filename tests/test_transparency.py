"""The Merkle tree the recorder keeps in PostgreSQL: the RFC's tree of the events' chain
hashes in position order, grown in the append's transaction, built for old ledgers by
the migration, append-only for every role."""

from __future__ import annotations

import psycopg
import pytest

from domain import merkle, transparency
from domain.database import migrate
from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later
from tests.tampering import superuser
from tests.test_merkle import Reference


def _chain(database_url: str) -> list[tuple[int, str]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT position, hash FROM ledger_events ORDER BY position").fetchall()


def _grow(ledger: Ledger, batches: list[int]) -> None:
    for n, size in enumerate(batches):
        nhs = (NHS_A, NHS_B, NHS_C)[n % 3]
        ledger.append_batch(
            [envelope("ContactRecorded", nhs=nhs, at=later(i)) for i in range(size)]
        )


def test_the_stored_tree_is_the_rfc_tree_of_the_chain_hashes(
    ledger: Ledger, database_url: str
) -> None:
    _grow(ledger, [1, 2, 7, 1, 30, 3])
    rows = _chain(database_url)
    ref = Reference(tuple(bytes.fromhex(h) for _, h in rows))
    size = len(rows)
    with ledger.connection() as conn:
        assert transparency.tree_size(conn) == size == 44
        for n in (1, 2, 3, 10, 43, 44):
            assert transparency.root(conn, n) == ref.mth(0, n)
        for index, (position, chain_hash) in enumerate(rows):
            leaf = transparency.leaf_at(conn, position)
            assert leaf is not None and leaf.index == index
            assert leaf.hash == transparency.leaf_of(chain_hash)
            proof = transparency.inclusion_proof(conn, index, size)
            assert proof == ref.path(index, 0, size)
        for old in range(1, size + 1):
            assert transparency.consistency_proof(conn, old, size) == ref.proof(old, size)
        with pytest.raises(transparency.TreeError):
            transparency.root(conn, size + 1)


def test_the_migration_builds_the_tree_of_an_older_ledger(
    ledger: Ledger, database_url: str
) -> None:
    _grow(ledger, [5, 4])
    with superuser(database_url) as conn:
        conn.execute("DELETE FROM ledger_tree")  # as a ledger written before the tree
    with psycopg.connect(database_url) as conn:
        migrate(conn)
        migrate(conn)  # idempotent
    rows = _chain(database_url)
    ref = Reference(tuple(bytes.fromhex(h) for _, h in rows))
    with ledger.connection() as conn:
        assert transparency.tree_size(conn) == 9
        assert transparency.root(conn, 9) == ref.mth(0, 9)
    _grow(ledger, [3])  # and appends carry on from it
    rows = _chain(database_url)
    with ledger.connection() as conn:
        assert transparency.root(conn, 12) == Reference(
            tuple(bytes.fromhex(h) for _, h in rows)
        ).mth(0, 12)
        assert transparency.check_tree(conn, {12}).problems == []


def test_leaf_hash_is_the_rfc_leaf_of_the_chain_hash_bytes(
    ledger: Ledger, database_url: str
) -> None:
    ledger.append(envelope())
    ((_, chain_hash),) = _chain(database_url)
    with ledger.connection() as conn:
        root = transparency.root(conn, 1)
    assert root == merkle.leaf_hash(bytes.fromhex(chain_hash))
