"""The National Data Opt-out register: people in it are left out of every evaluator-facing
output (measures JSON/CSV, dashboard), with the number left out in the report's metadata;
direct care and auditors are unaffected; an erasure does not bring them back (issue 11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.app import app as cli
from domain import optout
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people
from projections.measures.privacy import pseudonym
from tests.envelopes import NHS_A, NHS_B, envelope, later
from tests.fixtures_api import auth
from tests.fixtures_measures import Measured, group

PERIOD = {"from": "2024-01-01", "to": "2025-12-31"}


@pytest.fixture
def cohort(measured: Measured) -> Measured:
    measured.record(delivery_order(list(generate_people(people=60, seed=5)), 5))
    return measured


def _numbers(ledger: Ledger, how_many: int) -> list[str]:
    with ledger.connection() as conn:
        rows = conn.execute(
            "SELECT nhs_number FROM identity_register ORDER BY nhs_number LIMIT %s", (how_many,)
        ).fetchall()
    return [r["nhs_number"] for r in rows]


def test_opted_out_people_leave_every_evaluator_output(
    cohort: Measured, client: TestClient, ledger: Ledger
):
    before = client.get("/v1/measures", params=PERIOD, headers=auth("auditor")).json()
    exact_before = client.get(
        "/v1/measures", params={**PERIOD, "unsuppressed": "true"}, headers=auth("auditor")
    ).json()
    assert exact_before["opt_out"]["excluded_people"] == 0
    numbers = _numbers(ledger, 12)
    added = client.post("/v1/optout", json={"nhs_numbers": numbers}, headers=auth("admin"))
    assert added.status_code == 200 and added.json() == {"changed": 12, "total": 12}
    with ledger.connection() as conn:
        ids = optout.opted_out_patient_ids(conn)
    assert ids == frozenset(str(ledger.patient_id(n)) for n in numbers)
    exact = client.get(
        "/v1/measures", params={**PERIOD, "unsuppressed": "true"}, headers=auth("auditor")
    ).json()
    assert exact["opt_out"]["excluded_people"] == 12
    shown = client.get("/v1/measures", params=PERIOD, headers=auth("evaluator")).json()
    assert shown["opt_out"]["excluded_people"] == 10  # rounded like every count
    assert group(exact, "coverage")["people"] < group(exact_before, "coverage")["people"]
    assert shown["measures"] != before["measures"]
    csv_text = client.get(
        "/v1/measures", params={**PERIOD, "format": "csv"}, headers=auth("evaluator")
    ).text
    assert "_report,,opt_out.excluded_people,10" in csv_text
    # Per-person rows (auditors) carry no pseudonym of an opted-out person either.
    rows = client.get(
        "/v1/measures", params={**PERIOD, "per_person": "true"}, headers=auth("auditor")
    ).json()
    hidden = {pseudonym(p, get_settings().pseudonym_key) for p in ids}
    seen = {r["pseudonym"] for m in rows["measures"].values() for r in m.get("per_person") or []}
    assert seen and not seen & hidden
    # Direct care and auditors' person views are unaffected.
    for path in (f"/v1/patients/{numbers[0]}/events", f"/v1/patients/{numbers[0]}/replay"):
        assert client.get(path, headers=auth("auditor")).status_code == 200
    # Withdrawing brings the person back.
    removed = client.delete(f"/v1/optout/{numbers[0]}", headers=auth("admin"))
    assert removed.json() == {"changed": 1, "total": 11}


def test_opt_out_before_any_event_and_after_erasure(
    client: TestClient, publish: Callable, ledger: Ledger
):
    assert client.post(
        "/v1/optout", json={"nhs_numbers": [NHS_B]}, headers=auth("admin")
    ).json() == {"changed": 1, "total": 1}
    publish(envelope(nhs=NHS_B), envelope(), envelope("CaseIdentified", at=later(1)))
    b = ledger.patient_id(NHS_B)
    with ledger.connection() as conn:
        assert optout.opted_out_patient_ids(conn) == frozenset({str(b)})
    ledger.erase(NHS_B)
    with ledger.connection() as conn:
        assert optout.opted_out_patient_ids(conn) == frozenset({str(b)})  # still out
        rows = optout.entries(conn)
    assert [r["nhs_number"] for r in rows] == [None]  # the number itself is gone
    bad = client.post(
        "/v1/optout", json={"nhs_numbers": [NHS_A, NHS_A[:9] + "8"]}, headers=auth("admin")
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == "body.nhs_numbers.1"
    assert NHS_A[:9] + "8" not in bad.text


def test_optout_commands(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["optout", "add", NHS_A]).exit_code == 0
        listing = tmp_path / "ndop.csv"
        listing.write_text(f"nhs_number\n{NHS_B}\n\n# comment\n{NHS_A}\n")
        imported = runner.invoke(cli, ["optout", "import", str(listing)])
        assert imported.exit_code == 0, imported.output
        assert "imported 2 number(s): 1 new" in imported.stdout
        broken = tmp_path / "bad.txt"
        broken.write_text(f"{NHS_A}\n{NHS_A[:9]}8\n")
        refused = runner.invoke(cli, ["optout", "import", str(broken)])
        assert refused.exit_code == 2 and "line 2: NHS number check digit" in refused.stderr
        assert NHS_A[:9] + "8" not in refused.output + refused.stderr
        listed = runner.invoke(cli, ["optout", "list"])
        assert "2 opt-out(s) registered" in listed.stdout and NHS_A not in listed.stdout
        assert NHS_A in runner.invoke(cli, ["optout", "list", "--numbers"]).stdout
        assert runner.invoke(cli, ["optout", "remove", NHS_A]).exit_code == 0
        assert "1 opt-out(s)" in runner.invoke(cli, ["optout", "list"]).stdout
    finally:
        get_settings.cache_clear()
