"""``carejourney keys`` and ``carejourney serve`` (a real server process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.security import hash_key
from cli.app import app as cli
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from tests.envelopes import envelope


@pytest.fixture
def keys_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "keys" / "api-keys.json"
    monkeypatch.setenv("CAREJOURNEY_API_KEYS_FILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


def keys(*args: str):
    return CliRunner().invoke(cli, ["keys", *args])


def test_keys_create_prints_the_key_once_and_stores_its_hash(keys_file: Path):
    result = keys("create", "publisher", "--org", "a81001", "--name", "gp-feed")
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert key.startswith("cjk_") and len(key) > 40
    stored = json.loads(keys_file.read_text())["keys"]
    assert stored == [
        {
            "name": "gp-feed",
            "role": "publisher",
            "organisations": ["A81001"],
            "sha256": hash_key(key),
            "created_at": stored[0]["created_at"],
        }
    ]
    assert key not in keys_file.read_text()
    assert keys_file.stat().st_mode & 0o777 == 0o600
    admin = keys("create", "admin")
    assert admin.exit_code == 0
    listed = keys("list")
    assert "gp-feed" in listed.stdout and "admin-2" in listed.stdout
    assert key not in listed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "publisher"], "needs at least one organisation"),
        (["create", "auditor", "--org", "A81001"], "is not bound to organisations"),
        (["create", "coordinator", "--org", "not a code"], "invalid key entry"),
    ],
)
def test_keys_create_refuses_what_cannot_work(keys_file: Path, args, message):
    result = keys(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not keys_file.exists()


def test_created_key_works_at_once_and_revoked_key_stops(
    keys_file: Path, ledger: Ledger, settings: Settings
):
    key = keys("create", "auditor", "--name", "audit").stdout.strip()
    app = create_app(settings.model_copy(update={"api_keys_file": keys_file}), ledger)
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/access-log", headers=headers).status_code == 200
        assert keys("revoke", "audit").exit_code == 0
        time.sleep(1.1)  # the key ring re-reads a changed file at most once a second
        assert client.get("/v1/access-log", headers=headers).status_code == 401
    assert keys("revoke", "audit").exit_code == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # starts the server in a subprocess
def test_serve_works_on_the_embedded_default_with_no_configuration(tmp_path: Path):
    """A fresh data folder, no database configured: serve starts the embedded PostgreSQL,
    two workers share it, the first admin key is made with ``keys create admin``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREJOURNEY_")}
    env["CAREJOURNEY_DATA_DIR"] = str(tmp_path / "data")
    exe = [sys.executable, "-m", "cli.app"]
    made = subprocess.run(
        [*exe, "keys", "create", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = made.stdout.strip()
    port = _free_port()
    server = subprocess.Popen(
        [*exe, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as http:
            published = http.post("/v1/events", json=envelope())
            assert published.status_code == 201, published.text
            assert http.get("/readyz").status_code == 200
            assert http.get("/v1/access-log").status_code == 200
            assert (
                http.get("/v1/unassigned", headers={"Authorization": "Bearer nope"}).status_code
                == 401
            )
            # Several requests land on both workers; /metrics sums them all.
            for _ in range(6):
                http.get("/healthz")
            text = http.get("/metrics").text
        line = next(
            x
            for x in text.splitlines()
            if x.startswith(
                'carejourney_http_requests_total{method="GET",route="/healthz",status="200"}'
            )
        )
        assert float(line.split()[-1]) >= 7
        assert "carejourney_events_appended_total 1.0" in text
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "serving on" in output and "/v1/patients/" not in output
    assert (tmp_path / "data" / "pg" / "PG_VERSION").exists()
    # serve started the embedded server, so serve stopped it.
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()
