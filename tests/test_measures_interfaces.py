"""One computation behind every interface: CLI, API and the folds agree on a demo cohort;
who may read the measures, and how the API answers (docs/measures.md)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.app import app
from consumers.adt_codes import ADT_SYSTEM_PREFIX
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from domain.synthetic import delivery_order, generate_people
from projections import evaluation, fold, measures
from projections.fold import FoldConfig
from projections.measures.report import definitions_markdown
from tests.fixtures_api import auth
from tests.fixtures_measures import Measured, group

PERIOD = {"from": "2024-07-01", "to": "2025-06-30"}


@pytest.fixture
def demo(measured: Measured) -> Measured:
    """A small synthetic cohort (its own edge cases: day 0/29/30, transfers, A13...)."""
    measured.record(delivery_order(list(generate_people(people=120, seed=11)), 11))
    return measured


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("CAREJOURNEY_ALLOW_PLACEHOLDER_PSEUDONYM_KEY", "1")  # development
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, ["measures", *args])
    get_settings.cache_clear()


def test_cli_api_and_folds_give_the_same_numbers(
    demo: Measured, cli, client: TestClient, ledger: Ledger, settings: Settings
) -> None:
    args = ["--from", PERIOD["from"], "--to", PERIOD["to"], "--by", "organisation"]
    from_cli = cli(*args, "--format", "json")
    assert from_cli.exit_code == 0, from_cli.output
    from_api = client.get(
        "/v1/measures", params={**PERIOD, "by": "organisation"}, headers=auth("evaluator")
    )
    assert from_api.status_code == 200
    assert json.loads(from_cli.stdout) == from_api.json()
    report = from_api.json()
    assert report["computed_at"]["position"] == ledger.head_position()
    assert report["definitions_version"] == measures.DEFINITIONS_VERSION
    assert group(report, "readmission_30d")["discharges"] > 0  # the cohort has data

    csv_cli = cli(*args, "--format", "csv")
    csv_api = client.get(
        "/v1/measures",
        params={**PERIOD, "by": "organisation", "format": "csv"},
        headers=auth("evaluator"),
    )
    assert csv_api.headers["content-type"].startswith("text/csv")
    assert csv_cli.stdout == csv_api.text
    rows = list(csv.reader(io.StringIO(csv_api.text)))
    assert rows[0] == ["measure", "group", "metric", "value"]
    assert ["_report", "", "position", str(ledger.head_position())] in rows

    table = cli(*args)  # the people's format names the same position and version
    assert table.exit_code == 0
    assert f"ledger position {ledger.head_position()}" in table.stdout
    assert f"definitions v{measures.DEFINITIONS_VERSION}" in table.stdout

    # The same measures straight from the folds over the recorded events (no tables).
    people = fold.people(ledger.read_log(0, 1_000_000))
    config = FoldConfig.from_settings(settings)
    population = measures.from_folds(
        fold.prepare(events, root, config) for root, events in people.items()
    )
    period = measures.Period.checked(
        date.fromisoformat(PERIOD["from"]), date.fromisoformat(PERIOD["to"]), settings.zone
    )
    direct = measures.compute(
        population, period, settings, by="organisation", per_person=True, unsuppressed=True
    )
    with ledger.connection() as conn:
        projected = measures.report(
            conn, period, settings, by="organisation", per_person=True, unsuppressed=True
        )
    assert direct["measures"] == projected["measures"]


def test_who_may_read_the_measures(demo: Measured, client: TestClient) -> None:
    url = "/v1/measures"
    assert client.get(url, params=PERIOD).status_code == 401
    for role in ("publisher", "coordinator"):
        answer = client.get(url, params=PERIOD, headers=auth(role))
        assert answer.status_code == 403, role
    exact = {**PERIOD, "unsuppressed": "true"}
    refused = client.get(url, params=exact, headers=auth("evaluator"))
    assert refused.status_code == 403
    assert "suppressed counts only" in refused.json()["detail"]
    for role in ("auditor", "admin"):
        answer = client.get(url, params=exact, headers=auth(role))
        assert answer.status_code == 200 and answer.json()["suppression"] == {"applied": False}
    backwards = client.get(
        url, params={"from": "2025-01-02", "to": "2025-01-01"}, headers=auth("evaluator")
    )
    assert backwards.status_code == 422
    assert backwards.headers["content-type"] == "application/problem+json"
    # Evaluators get no person-level rows (a suppressed bin could be recounted from
    # them); auditors do, and the read is in the access log.
    person_rows = {**PERIOD, "per_person": "true"}
    refused_rows = client.get(url, params=person_rows, headers=auth("evaluator"))
    assert refused_rows.status_code == 403
    assert "no person-level rows" in refused_rows.json()["detail"]
    per_person = client.get(url, params=person_rows, headers=auth("auditor")).json()
    rows = per_person["measures"]["continuity"]["per_person"]
    assert rows and all(len(r["pseudonym"]) == 64 for r in rows)
    logged = client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    assert [(e["principal"], e["endpoint"], e["patient_id"]) for e in logged] == [
        ("auditor", "GET /v1/measures?per_person=true", None)
    ]
    salted = client.get(
        url, params={**person_rows, "salt": "release-2026-q1"}, headers=auth("auditor")
    ).json()
    again = {r["pseudonym"] for r in salted["measures"]["continuity"]["per_person"]}
    assert len(again) == len({r["pseudonym"] for r in rows})
    assert not again & {r["pseudonym"] for r in rows}  # a salted release links to nothing
    assert salted["options"]["pseudonyms"] == "salted for this report"


def test_adt_marker_is_the_adapters() -> None:
    """The measures recognise ADT-made contacts by the adapter's own prefix."""
    assert evaluation.ADT_SYSTEM_PREFIX == ADT_SYSTEM_PREFIX


def test_published_definitions_are_the_codes() -> None:
    """docs/measures.md carries the docstrings verbatim (regenerate it when they change)."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "measures.md").read_text()
    block = text.split("<!-- definitions:start -->\n")[1].split("<!-- definitions:end -->")[0]
    assert block == definitions_markdown()
    for name in measures.NAMES:
        assert f"### `{name}`" in block
