"""``carejourney fhir bundle`` and ``carejourney fhir export`` on real PostgreSQL, and
``keys create --export-agreement``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from api.security import read_keys_file
from cli.app import app
from domain.ledger import Ledger
from domain.settings import get_settings
from tests.envelopes import NHS_A, NHS_B, envelope, later

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_API_KEYS_FILE", str(tmp_path / "keys.json"))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


def test_bundle_and_export(run, ledger: Ledger, database_url: str, tmp_path: Path) -> None:
    ledger.append_batch(
        [
            envelope(),
            envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
            envelope(nhs=NHS_B),
        ]
    )
    result = run("fhir", "bundle", NHS_A)
    assert result.exit_code == 0, result.stderr
    bundle = Bundle.model_validate_json(result.stdout)
    types = [e.resource.get_resource_type() for e in bundle.entry]
    assert types.count("Patient") == 1 and "EpisodeOfCare" in types
    early = Bundle.model_validate_json(
        run("fhir", "bundle", NHS_A, "--as-of", later(0.5).isoformat()).stdout
    )
    [episode] = [
        e.resource for e in early.entry if e.resource.get_resource_type() == "EpisodeOfCare"
    ]
    assert episode.careManager is None  # the nurse was assigned later
    assert run("fhir", "bundle", "9434765918").exit_code == 2  # bad check digit

    out = tmp_path / "export"
    result = run("fhir", "export", "--out", str(out), "--agreement", "DSA-9", "--type", "Patient")
    assert result.exit_code == 0, result.stderr
    assert "2 people exported" in result.stderr
    lines = (out / "Patient.ndjson").read_text().splitlines()
    assert len(lines) == 2 and NHS_A not in lines[0]
    assert sorted(p.name for p in out.iterdir()) == ["Patient.ndjson"]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT principal, endpoint, agreement, via FROM api_access_log"
        ).fetchall()
    # the export names who ran it, as every other command does (cli:<os user>)
    exports = [r for r in rows if r[1] == "carejourney fhir export"]
    assert [(r[0].startswith("cli:"), *r[1:]) for r in exports] == [
        (True, "carejourney fhir export", "DSA-9", "cli")
    ] * 2
    # each of the two bundles read (the bad check digit is refused before any look-up)
    reads = [r for r in rows if r not in exports]
    assert [(r[0].startswith("cli:"), *r[1:]) for r in reads] == [
        (True, "cli fhir bundle", None, "cli")
    ] * 2
    assert (
        run("fhir", "export", "--out", str(out), "--agreement", "X", "--type", "Goal").exit_code
        == 2
    )


def test_keys_create_with_export_agreement(run, tmp_path: Path) -> None:
    result = run("keys", "create", "evaluator", "--name", "eval", "--export-agreement", "DSA-1")
    assert result.exit_code == 0, result.stderr
    assert "export right under agreement DSA-1" in result.stderr
    [entry] = read_keys_file(tmp_path / "keys.json")
    assert entry.export_agreement == "DSA-1"
    refused = run("keys", "create", "publisher", "--org", "A81001", "--export-agreement", "DSA-1")
    assert refused.exit_code == 2
    assert "cannot carry an export right" in refused.stderr
    assert json.loads((tmp_path / "keys.json").read_text())["keys"][0]["name"] == "eval"
