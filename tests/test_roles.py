"""The application role (domain/roles.py): what the services connect as in a deployment.

As the owner (the test server's superuser) migrates and grants; then, connected as the
application role, the ledger starts, appends, projects and verifies as before, and every
way of editing or unprotecting the event tables is refused with SQLSTATE 42501. A
service refuses to start on a ledger whose triggers someone disabled."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from domain import note, roles, transparency
from domain.ledger import Ledger
from domain.settings import Settings
from projections import queries
from projections.runner import Runner
from tests.envelopes import NHS_A, envelope, later

EVENT_TABLES = roles.EVENT_TABLES


@pytest.fixture
def app_url(ledger: Ledger, database_url: str) -> Iterator[str]:
    """The owner has migrated (ledger and read models) and granted a fresh role."""
    role = f"cj_app_{uuid.uuid4().hex[:10]}"
    ledger.append_batch([envelope(), envelope("CoordinatorAssigned", at=later(1))])
    Runner.for_ledger(ledger).migrate()
    with psycopg.connect(database_url, autocommit=True) as conn:
        done = roles.grant_app_role(conn, role)
        again = roles.grant_app_role(conn, role)  # idempotent
    assert done["granted"] == list(EVENT_TABLES) == again["granted"]
    assert {"identity_register", "ledger_heads", "coordinator_intervals"} <= set(done["owned"])
    assert not set(done["owned"]) & set(EVENT_TABLES)
    yield make_conninfo(database_url, user=role)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
    with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_services_work_as_the_application_role(app_url: str, settings: Settings) -> None:
    ledger = Ledger(app_url, settings)  # start-up migrations as a non-owner
    try:
        result = ledger.append_batch(
            [
                envelope(
                    "CoordinatorHandedOff",
                    at=later(2),
                    data={
                        "from_id": "N100",
                        "to": {
                            "id": "N101",
                            "role": "community_nurse",
                            "organisation": "RYX01",
                            "setting": "community",
                        },
                    },
                )
            ]
        )
        assert result.counts()["recorded"] == 1
        runner = Runner.for_ledger(ledger)
        runner.migrate()
        runner.run_once()
        with ledger.connection() as conn:
            now = queries.current_coordinator(conn, ledger.patient_id(NHS_A))
            assert now is not None and now["coordinator"]["id"] == "N101"
            assert conn.execute("SELECT current_user AS u").fetchone()["u"].startswith("cj_app_")
        signer = note.new_signer("carejourney.test/ledger")
        with ledger.connection() as conn:  # the checkpointer appends a checkpoint
            issued = transparency.issue_checkpoint(conn, signer, signer.name)
        assert issued.size == 3
        report = ledger.verify_all(verifier=signer.verifier)
        assert report.ok and report.events == 3 and report.checkpoints == 1, report.problems
        assert ledger.verify(ledger.patient_id(NHS_A)) is None
        assert ledger.erase(NHS_A) is not None  # the identity register is ordinary
    finally:
        ledger.close()


ATTEMPTS = (
    "UPDATE {t} SET {c} = {c}",
    "DELETE FROM {t}",
    "TRUNCATE {t}",
    "ALTER TABLE {t} DISABLE TRIGGER carejourney_append_only",
    "ALTER TABLE {t} DISABLE TRIGGER ALL",
    "DROP TRIGGER carejourney_append_only ON {t}",
    "DROP TRIGGER carejourney_no_truncate ON {t}",
    "CREATE OR REPLACE TRIGGER carejourney_append_only BEFORE UPDATE ON {t}"
    " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    "ALTER TABLE {t} RENAME TO {t}_old",
    "DROP TABLE {t}",
)
A_COLUMN = {
    "journeys_events": "topic",
    "ledger_events": "type",
    "ledger_tree": "leaf_count",
    "ledger_checkpoints": "note",
}


@pytest.mark.parametrize("table", EVENT_TABLES)
def test_the_application_role_cannot_edit_or_unprotect_the_event_tables(
    app_url: str, table: str
) -> None:
    refused = []
    with psycopg.connect(app_url, autocommit=True) as conn:
        for attempt in ATTEMPTS:
            statement = attempt.format(t=table, c=A_COLUMN[table])
            try:
                conn.execute(statement)
            except errors.InsufficientPrivilege:
                refused.append(statement)
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SET session_replication_role = replica")
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() is not None
    assert len(refused) == len(ATTEMPTS), set(a.format(t=table, c="c") for a in ATTEMPTS) - set(
        refused
    )


def test_a_service_refuses_a_ledger_whose_triggers_were_disabled(
    app_url: str, database_url: str, settings: Settings
) -> None:
    with psycopg.connect(database_url, autocommit=True) as owner:
        owner.execute("ALTER TABLE ledger_events DISABLE TRIGGER carejourney_append_only")
    with pytest.raises(roles.AppendOnlyMissing, match="ledger_events: carejourney_append_only"):
        Ledger(app_url, settings)
    Ledger(database_url, settings).close()  # the owner's start-up puts it back ...
    Ledger(app_url, settings).close()  # ... and the service starts again


def test_only_the_owner_grants(app_url: str, database_url: str) -> None:
    with psycopg.connect(app_url, autocommit=True) as conn, pytest.raises(PermissionError):
        roles.grant_app_role(conn, "cj_someone_else")
    with psycopg.connect(database_url, autocommit=True) as owner:
        superuser = owner.execute("SELECT current_user AS u").fetchone()
        assert superuser is not None
        with pytest.raises(PermissionError, match=r"member of the owner|superuser"):
            roles.grant_app_role(owner, superuser[0])  # never the owner itself


def test_the_command_grants_and_says_what_it_did(
    ledger: Ledger, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cli.app import app
    from domain.settings import get_settings

    role = f"cj_app_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CJ_TEST_APP_PASSWORD", "s3cret-for-the-test")
    # compose's db-roles: the role and its password are the services' URL's
    app_url = make_conninfo(database_url, user=role, password="from-the-url")
    monkeypatch.setenv("CAREJOURNEY_APP_DATABASE_URL", app_url)
    get_settings.cache_clear()
    try:
        run = CliRunner().invoke(app, ["db", "app-role"])
        assert run.exit_code == 0, run.output
        assert f"{role}: owns" in run.stdout and "ledger_checkpoints" in run.stdout
        with psycopg.connect(database_url, autocommit=True) as conn:
            stored = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
            assert stored is not None and stored[0] is not None
        again = CliRunner().invoke(
            app, ["db", "app-role", "--role", role, "--password-env", "CJ_TEST_APP_PASSWORD"]
        )
        assert again.exit_code == 0, again.output
        with psycopg.connect(database_url, autocommit=True) as conn:
            changed = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
            assert changed is not None and changed[0] != stored[0]
        unset = CliRunner().invoke(app, ["db", "app-role", "--password-env", "CJ_NOT_SET_AT_ALL"])
        assert unset.exit_code == 2 and "not set" in unset.output
        with psycopg.connect(database_url, autocommit=True) as conn:
            owners = dict(
                conn.execute(
                    "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
                    " WHERE c.relname = ANY(%s)",
                    (["ledger_events", "coordinator_intervals", "identity_register"],),
                ).fetchall()
            )
            assert owners["coordinator_intervals"] == owners["identity_register"] == role
            assert owners["ledger_events"] != role
            conn.execute(
                sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(role))
            )
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    finally:
        get_settings.cache_clear()
