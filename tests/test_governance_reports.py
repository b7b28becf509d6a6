"""Reports an evaluator can stand behind: a report computed ``--known-at K`` is the report
as the ledger knew it at K, whatever arrived later, and names K and its position
(issue 11)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cli.app import app as cli
from domain.ledger import Ledger
from domain.settings import get_settings
from domain.synthetic import delivery_order, generate_people
from tests.fixtures_api import auth
from tests.fixtures_measures import Measured

PERIOD = {"from": "2024-04-01", "to": "2025-03-31"}


def test_known_at_reproduces_a_published_report(
    measured: Measured,
    client: TestClient,
    ledger: Ledger,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
):
    feed = delivery_order(list(generate_people(people=80, seed=21)), 21)
    cut = int(len(feed) * 0.8)
    measured.record(feed[:cut])
    exact = {**PERIOD, "unsuppressed": "true"}
    published = client.get("/v1/measures", params=exact, headers=auth("auditor")).json()
    position = ledger.head_position()
    time.sleep(0.05)
    known = datetime.now(UTC)
    time.sleep(0.05)
    measured.record(feed[cut:])  # late arrivals, corrections among them
    live = client.get("/v1/measures", params=exact, headers=auth("auditor")).json()
    assert live["measures"] != published["measures"]  # the late facts changed figures
    again = client.get(
        "/v1/measures", params={**exact, "known_at": known.isoformat()}, headers=auth("auditor")
    ).json()
    assert again["measures"] == published["measures"]
    assert again["known_at"] == {
        "at": known.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "position": position,
    }
    assert again["computed_at"]["position"] == position
    suppressed = client.get(
        "/v1/measures", params={**PERIOD, "known_at": known.isoformat()}, headers=auth("evaluator")
    )
    assert suppressed.status_code == 200
    naive = client.get(
        "/v1/measures",
        params={**PERIOD, "known_at": "2026-01-01T00:00:00"},
        headers=auth("evaluator"),
    )
    assert naive.status_code == 422
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_ALLOW_PLACEHOLDER_PSEUDONYM_KEY", "1")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            cli,
            [
                "measures",
                "--from",
                PERIOD["from"],
                "--to",
                PERIOD["to"],
                "--unsuppressed",
                "--format",
                "json",
                "--known-at",
                known.isoformat(),
            ],
        )
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.stdout)
    assert from_cli["measures"] == published["measures"]
    assert from_cli["known_at"]["position"] == position


def test_an_erased_person_is_on_no_caseload_or_list(
    client: TestClient, ledger: Ledger, publish, catch_up
):
    from tests.envelopes import NHS_A, NHS_B, envelope, later

    publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1)),
        envelope(nhs=NHS_B),
        envelope("CoordinatorAssigned", nhs=NHS_B, at=later(1)),
    )
    catch_up()
    before = client.get("/v1/coordinators/N100/caseload", headers=auth("admin")).json()
    assert sorted(p["nhs_number"] for p in before["people"]) == sorted([NHS_A, NHS_B])
    ledger.erase(NHS_A)
    after = client.get("/v1/coordinators/N100/caseload", headers=auth("admin")).json()
    assert [p["nhs_number"] for p in after["people"]] == [NHS_B]


def test_the_dashboard_shows_a_report_as_known_at_a_time(measured: Measured, client: TestClient):
    from tests.fixtures_api import KEYS

    measured.record(delivery_order(list(generate_people(people=30, seed=4)), 4))
    signed = client.post(
        "/pages/sign-in", data={"api_key": KEYS["evaluator"]}, follow_redirects=False
    )
    assert signed.status_code == 303
    known = datetime.now(UTC).isoformat()
    page = client.get("/pages/measures", params={**PERIOD, "known_at": known})
    assert page.status_code == 200, page.text
    assert f"as known at {known}" in page.text
    assert "left out under the National Data Opt-out" in page.text
    assert client.get("/pages/measures", params={"known_at": "yesterday"}).status_code == 422
