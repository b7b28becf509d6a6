"""Fixtures for the HTTP API tests: an app on the test database, keys for every role.

Keys are given through ``CAREJOURNEY_API_KEYS``-style settings (hashes only) and the keys
file points into the test's tmp folder, so a developer's own keys never leak in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import Role, hash_key
from domain.ledger import Ledger
from domain.settings import Settings

PUBLISHER_ORG = "A81001"  # the default source organisation of tests/envelopes.py
COORDINATOR_ORG = "RYX01"  # the community nurse's organisation in tests/envelopes.py

PRINCIPALS: dict[str, tuple[Role, tuple[str, ...]]] = {
    "publisher": (Role.PUBLISHER, (PUBLISHER_ORG,)),
    "other-publisher": (Role.PUBLISHER, ("RXH01",)),
    "auditor": (Role.AUDITOR, ()),
    "coordinator": (Role.COORDINATOR, (COORDINATOR_ORG,)),
    "other-coordinator": (Role.COORDINATOR, ("Y99999",)),
    "evaluator": (Role.EVALUATOR, ()),
    "admin": (Role.ADMIN, ()),
}
KEYS = {name: f"cjk_test_{name}_key" for name in PRINCIPALS}


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name]}"}


def keys_json() -> str:
    return json.dumps(
        [
            {
                "name": name,
                "role": role.value,
                "organisations": list(orgs),
                "sha256": hash_key(KEYS[name]),
            }
            for name, (role, orgs) in PRINCIPALS.items()
        ]
    )


@pytest.fixture
def api_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "api_keys": keys_json(),
            "api_keys_file": tmp_path / "api-keys.json",
        }
    )


@pytest.fixture
def api_app(ledger: Ledger, api_settings: Settings) -> FastAPI:
    return create_app(api_settings, ledger)


@pytest.fixture
def client(api_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(api_app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def catch_up(ledger: Ledger) -> Callable[[], None]:
    """Bring every projection up to the ledger head (the runner, run once)."""
    from projections.runner import Runner

    projector = Runner.for_ledger(ledger)

    def run() -> None:
        projector.migrate()
        projector.run_once()

    return run


@pytest.fixture
def publish(client: TestClient, ledger: Ledger) -> Callable[..., list[dict[str, Any]]]:
    """Append envelopes through the ledger directly (setup for read tests)."""

    def append(*envelopes: dict[str, Any]) -> list[dict[str, Any]]:
        result = ledger.append_batch(list(envelopes))
        items = [i.as_dict() for i in result.items]
        assert all(i["status"] in ("recorded", "duplicate") for i in items), items
        return items

    return append
