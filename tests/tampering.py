"""A superuser's connection with the append-only triggers switched off, as an attacker
(or a careless operator) with superuser access would: the ledger must still catch what
they do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def superuser(url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        yield conn
