"""Who owns the event tables, and the role the services connect as (docs/integrity.md).

The append-only triggers (``domain/database.py``) refuse UPDATE, DELETE and TRUNCATE for
every role, but the tables' owner may switch them off (``ALTER TABLE ... DISABLE
TRIGGER``, ``DROP TRIGGER``) or drop the tables. So in a deployment the owner (the role
that created the database objects: compose's ``carejourney``) runs the migrations and
then ``grant_app_role``, and the services connect as that **application role**, which:

* owns every ordinary table (identity register, heads, merges, read models, consumer
  and page tables), so it can still migrate, rebuild and erase them as before;
* may only ``SELECT`` and ``INSERT`` on the event tables (``EVENT_TABLES``), plus
  ``UPDATE`` on the library's stored-events table, which PostgreSQL requires for the
  library's ``LOCK TABLE ... IN EXCLUSIVE MODE`` (the trigger refuses every update
  itself); no ``DELETE``, ``TRUNCATE``, ``TRIGGER`` or ``REFERENCES``, and not being the
  owner it can neither disable nor drop a trigger, nor alter or drop the tables;
* is never a member of the owner (the owner is made a member of it instead, which
  PostgreSQL needs to hand it the ordinary tables).

A process connected as the application role skips the event tables' DDL at start-up
(only their owner may run it: ``may_migrate_event_tables``) and refuses to start if
their triggers are missing or disabled (``check_append_only``). The embedded default
(``make demo``) keeps one role for everything, as before: there is nobody to protect
the ledger from on a laptop, and it has no second role.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

DEFAULT_APP_ROLE = "carejourney_app"
STORED_EVENTS = "journeys_events"  # the library's table (Ledger: name "Journeys")
EVENT_TABLES = (STORED_EVENTS, "ledger_events", "ledger_tree", "ledger_checkpoints")
TRIGGERS = ("carejourney_append_only", "carejourney_no_truncate")


class AppendOnlyMissing(RuntimeError):
    """The event tables' append-only triggers are missing or disabled."""


def _one(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> Any:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query, params).fetchone()
    return row[0] if row else None


def may_migrate_event_tables(conn: psycopg.Connection[Any], tables: tuple[str, ...] = ()) -> bool:
    """Whether this session may run the event tables' DDL: none of them exists yet (a
    fresh database: whoever creates them owns them), or the current role owns every one
    that exists (directly, through a role it belongs to, or as a superuser)."""
    names = list(tables or EVENT_TABLES)
    owned = _one(
        conn,
        "SELECT bool_and(pg_has_role(current_user, c.relowner, 'USAGE'))"
        " FROM unnest(%s::text[]) AS t(name) JOIN pg_class c ON c.oid = to_regclass(t.name)",
        (names,),
    )
    return owned is None or bool(owned)


def check_append_only(conn: psycopg.Connection[Any], tables: tuple[str, ...] = ()) -> None:
    """Raise ``AppendOnlyMissing`` unless both triggers are on every existing event
    table and enabled: a service that is not the owner cannot put them back, and must
    not write to a ledger someone has unprotected."""
    names = list(tables or EVENT_TABLES)
    missing = _one(
        conn,
        "SELECT array_agg(t.name || ': ' || g.name ORDER BY t.name, g.name)"
        " FROM unnest(%s::text[]) AS t(name) CROSS JOIN unnest(%s::text[]) AS g(name)"
        " WHERE to_regclass(t.name) IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_trigger p"
        " WHERE p.tgrelid = to_regclass(t.name) AND p.tgname = g.name AND p.tgenabled <> 'D')",
        (names, list(TRIGGERS)),
    )
    if missing:
        raise AppendOnlyMissing(
            "the ledger's append-only triggers are missing or disabled ("
            + ", ".join(missing)
            + "): start any carejourney process once as the tables' owner to restore them"
        )


def grant_app_role(
    conn: psycopg.Connection[Any], role: str = DEFAULT_APP_ROLE, password: str | None = None
) -> dict[str, list[str]]:
    """Create (or update) the application role and give it exactly the rights above.

    Run by the tables' owner after the migrations (``carejourney db app-role``), again
    after each release's migrations (a new table is the owner's until then). Idempotent.
    Returns what it did: the tables handed over and the event tables granted."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('carejourney.migrate'))")
        if not may_migrate_event_tables(conn):
            raise PermissionError("only the event tables' owner may grant the application role")
        name = sql.Identifier(role)
        exists = _one(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(name))
        if password is not None:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(name, sql.Literal(password)))
        member = _one(conn, "SELECT pg_has_role(%s, current_user, 'USAGE')", (role,))
        if member:
            raise PermissionError(
                f"role {role} is a member of the owner: it could disable triggers"
            )
        if _one(conn, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = %s", (role,)):
            raise PermissionError(f"role {role} is a superuser: no grant can restrict it")
        superuser = _one(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not superuser:  # to hand it tables, the owner must be able to act as it
            conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
        schema = _one(conn, "SELECT current_schema()")
        conn.execute(
            sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(sql.Identifier(schema), name)
        )
        ordinary = _ordinary_tables(conn, schema)
        for table in ordinary:
            conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), name))
        granted = []
        for table in EVENT_TABLES:
            if _one(conn, "SELECT to_regclass(%s) IS NOT NULL", (table,)):
                granted.append(table)
                ident = sql.Identifier(table)
                conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(ident, name))
                rights = "SELECT, INSERT, UPDATE" if table == STORED_EVENTS else "SELECT, INSERT"
                conn.execute(sql.SQL("GRANT " + rights + " ON {} TO {}").format(ident, name))
                for sequence in _sequences(conn, table):
                    conn.execute(
                        sql.SQL("GRANT USAGE, SELECT ON SEQUENCE {} TO {}").format(
                            sql.Identifier(sequence), name
                        )
                    )
    return {"owned": ordinary, "granted": granted}


def _ordinary_tables(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """The schema's tables the current role owns, except the event tables."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = %s::regnamespace"
            " AND c.relkind IN ('r', 'p')"
            " AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            " AND NOT c.relname = ANY(%s) ORDER BY c.relname",
            (schema, list(EVENT_TABLES)),
        ).fetchall()
    return [str(r[0]) for r in rows]


def _sequences(conn: psycopg.Connection[Any], table: str) -> list[str]:
    """The sequences owned by ``table``'s columns (bigserial): nextval needs USAGE."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(
            "SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
            " WHERE d.refobjid = to_regclass(%s) AND s.relkind = 'S' AND d.deptype = 'a'",
            (table,),
        ).fetchall()
    return [str(r[0]) for r in rows]
