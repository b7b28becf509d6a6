"""The access log an auditor can rely on: refused attempts, failed reads, the command
line's person reads and page views are logged with who, what, when and the outcome,
never with an NHS number (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.app import app as cli
from domain.ledger import Ledger
from domain.settings import get_settings
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later
from tests.fixtures_api import KEYS, auth


def _all(client: TestClient, **params: str) -> list[dict]:
    return client.get(
        "/v1/access-log", params={"outcome": "all", **params}, headers=auth("auditor")
    ).json()["entries"]


def test_refused_attempts_on_person_endpoints_are_logged(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1)), envelope(nhs=NHS_B))
    catch_up()
    a, b = ledger.patient_id(NHS_A), ledger.patient_id(NHS_B)
    attempts = [
        (None, f"/v1/patients/{NHS_A}/events", 401),
        ("evaluator", f"/v1/patients/{NHS_A}/replay", 403),
        ("other-coordinator", f"/v1/patients/{NHS_B}/journey", 404),
        ("auditor", f"/v1/patients/{NHS_C}/events", 404),
        ("auditor", f"/v1/patients/{NHS_A[:9]}8/events", 422),
        ("auditor", f"/v1/patients/{NHS_A}/replay?as_of=2026-01-01T00:00:00", 422),
    ]
    for who, path, status in attempts:
        headers = auth(who) if who else {}
        assert client.get(path, headers=headers).status_code == status, path
    assert client.get(f"/v1/patients/{NHS_A}/events", headers=auth("auditor")).status_code == 200
    refused = client.get(
        "/v1/access-log", params={"outcome": "refused"}, headers=auth("auditor")
    ).json()["entries"]
    assert [(e["principal"], e["endpoint"], e["status"], e["patient_id"]) for e in refused] == [
        ("anonymous", "GET /v1/patients/{nhs}/events", 401, None),
        ("evaluator", "GET /v1/patients/{nhs}/replay", 403, None),
        ("other-coordinator", "GET /v1/patients/{nhs}/journey", 404, str(b)),
        ("auditor", "GET /v1/patients/{nhs}/events", 404, None),
        ("auditor", "GET /v1/patients/{nhs}/events", 422, None),
        ("auditor", "GET /v1/patients/{nhs}/replay", 422, None),  # refused before reading
    ]
    reads = client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    assert [(e["principal"], e["outcome"], e["patient_id"]) for e in reads] == [
        ("auditor", "read", str(a))
    ]
    with psycopg.connect(ledger.database_url) as conn:
        text = str(conn.execute("SELECT * FROM api_access_log").fetchall())
    assert NHS_A not in text and NHS_B not in text and NHS_C not in text


def test_page_views_are_logged_under_the_page_path(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1)))
    catch_up()
    signed = client.post("/pages/sign-in", data={"api_key": KEYS["admin"]}, follow_redirects=False)
    assert signed.status_code == 303
    assert client.get(f"/pages/journey/{NHS_A}").status_code == 200
    assert client.get(f"/pages/journey/{NHS_C}").status_code == 404
    entries = _all(client, principal="admin")
    assert [(e["endpoint"], e["via"], e["outcome"], e["patient_id"]) for e in entries] == [
        ("GET /pages/journey/{nhs}", "page", "read", str(ledger.patient_id(NHS_A))),
        ("GET /pages/journey/{nhs}", "page", "refused", None),
    ]


def test_cli_person_reads_are_logged(
    database_url: str,
    ledger: Ledger,
    publish: Callable,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    client: TestClient,
    catch_up: Callable,
):
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1)))
    catch_up()
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CAREJOURNEY_ALLOW_PLACEHOLDER_PSEUDONYM_KEY", "1")
    get_settings.cache_clear()
    patient = str(ledger.patient_id(NHS_A))
    try:
        runner = CliRunner()
        for args in (
            ["history", NHS_A],
            ["journey", NHS_A],
            ["coordinator", NHS_A],
            ["fhir", "bundle", NHS_A],
            ["audit", "bundle", NHS_A, "--out", str(tmp_path / "bundle.json")],
            ["audit", "bundle", NHS_C, "--out", str(tmp_path / "none.json")],
            ["history", NHS_C],
            ["measures", "--from", "2026-01-01", "--to", "2026-12-31", "--per-person"],
            ["erase", NHS_A],
        ):
            runner.invoke(cli, args)
    finally:
        get_settings.cache_clear()
    entries = [e for e in _all(client) if e["via"] == "cli"]
    assert [(e["endpoint"], e["outcome"], e["patient_id"]) for e in entries] == [
        ("cli history", "read", patient),
        ("cli journey", "read", patient),
        ("cli coordinator", "read", patient),
        ("cli fhir bundle", "read", patient),
        ("cli audit bundle", "read", patient),
        ("cli audit bundle", "refused", None),
        ("cli history", "refused", None),
        ("cli measures --per-person", "read", None),
        ("cli erase", "erased", patient),
    ]
    assert all(e["principal"].startswith("cli:") for e in entries)
