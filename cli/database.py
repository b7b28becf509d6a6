"""Database roles: ``carejourney db app-role [--role NAME] [--password-env VAR]``.

The role and its password default to the user and password of
``CAREJOURNEY_APP_DATABASE_URL``, so compose's one-shot ``db-roles`` service makes exactly
the role the other services' ``CAREJOURNEY_DATABASE_URL`` names.

Run as the tables' owner (compose: the ``carejourney`` role) after the migrations; the
services then connect as the role it makes, which cannot edit, delete, truncate or
unprotect the event tables (``domain/roles.py``, docs/integrity.md, "Roles").
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from psycopg.conninfo import conninfo_to_dict

from cli.console import fail, ledger_session, out
from cli.options import AsJson, group
from domain import roles
from domain.settings import get_settings
from projections.runner import Runner

db_app = group("Database roles (run as the tables' owner).")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


@db_app.command("app-role")
def app_role(
    role: Annotated[
        str | None,
        typer.Option(
            help="The application role to create or update (default: the user of "
            f"CAREJOURNEY_APP_DATABASE_URL, else {roles.DEFAULT_APP_ROLE}).",
        ),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            help="Set the role's password from this environment variable (never an argument:"
            " it would be in the process list); default: CAREJOURNEY_APP_DATABASE_URL's.",
        ),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Migrate (ledger and read models), then make ROLE own every ordinary table and give
    it only SELECT and INSERT on the event tables (and the UPDATE the library's table
    lock needs, which the triggers refuse). Idempotent: run it again after each upgrade."""
    app_url = get_settings().app_database_url
    given = conninfo_to_dict(app_url) if app_url else {}
    role = role or str(given.get("user") or roles.DEFAULT_APP_ROLE)
    password = str(given["password"]) if given.get("password") else None
    if password_env is not None:
        password = os.environ.get(password_env)
        if not password:
            fail(f"{password_env} is not set", code=2)
    with ledger_session() as ledger:
        Runner.for_ledger(ledger).migrate()
        with ledger.connection() as conn:
            try:
                done = roles.grant_app_role(conn, role, password)
            except PermissionError as exc:
                fail(str(exc), code=1)
    if as_json:
        out.print_json(json.dumps({"role": role, **done}))
        return
    out.print(
        f"{role}: owns {len(done['owned'])} ordinary tables; SELECT and INSERT only on "
        + ", ".join(done["granted"])
    )
