"""Hospitals testing safely and seeing what happened: ``adt import --dry-run``/``--json``,
``ingest --json``, ``POST /v1/adt`` (with ``?dry_run=true``) and
``GET /v1/publishers/me/outcomes``, on real PostgreSQL (and MLLP over loopback)."""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hl7.client import MLLPClient
from playwright.sync_api import sync_playwright
from psycopg import sql
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app
from consumers.adt_ingest import migrate
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from tests.adt_messages import FACILITIES, adt
from tests.envelopes import NHS_B, envelope, later
from tests.fixtures_api import auth
from tests.live_server import serving
from tests.test_mllp import listening
from tests.test_pages_browser import CHROMIUM, FLAGS, _sign_in

GOOD = adt("A01", control="G1")
UNMAPPED = adt("A01", control="U1", facility="XYZ")
UNMAPPED_REASON = (
    "MSH-4: sending facility 'XYZ' is not mapped to an ODS code (CAREJOURNEY_ADT_FACILITIES)"
)


def count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    monkeypatch.setenv("CAREJOURNEY_ADT_FACILITIES", json.dumps(FACILITIES))
    monkeypatch.setenv("COLUMNS", "300")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


# -- the command line ---------------------------------------------------------------------


def test_adt_import_dry_run_writes_nothing_and_says_what_would_happen(
    run: Callable[..., Any], database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "feed.hl7"
    path.write_text(GOOD + UNMAPPED)
    dry = run("adt", "import", "--dry-run", str(path))
    assert dry.exit_code == 1  # one message would be refused
    assert "feed.hl7 message 1: A01 would record" in dry.stdout
    assert '"type": "Admitted"' in dry.stdout
    assert f"feed.hl7 message 2: A01 rejected: {UNMAPPED_REASON}" in dry.stdout
    assert count(database_url, "ledger_events") == 0
    assert count(database_url, "publisher_outcomes") == 0

    as_json = json.loads(run("adt", "import", "--dry-run", "--json", str(path)).stdout)
    first, second = as_json["results"]
    assert as_json["dry_run"] is True
    assert first["status"] == "would_record" and first["message_control_id"] == "G1"
    assert first["envelope"]["type"] == "Admitted"
    assert first["envelope"]["data"]["encounter_id"] == "V100"
    assert second["status"] == "rejected" and second["reason"] == UNMAPPED_REASON
    assert as_json["counts"] == {"would_record": 1, "rejected": 1}
    assert count(database_url, "ledger_events") == 0

    real = json.loads(run("adt", "import", "--json", str(path)).stdout)
    assert [r["status"] for r in real["results"]] == ["recorded", "rejected"]
    assert real["results"][0]["position"] == 1 and "envelope" not in real["results"][0]
    assert count(database_url, "ledger_events") == 1
    assert count(database_url, "publisher_outcomes") == 1  # the refusal, kept

    again = json.loads(run("adt", "import", "--dry-run", "--json", str(path)).stdout)
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["position"] == 1
    changed = tmp_path / "changed.hl7"
    changed.write_text(adt("A01", control="G1", ward="WARD9"))
    # The same MSH-10 with another ward is not a collision: a second A01 for the visit
    # corrects the admission (docs/adt.md), so it would be recorded as a new fact.
    corrected = json.loads(run("adt", "import", "--dry-run", "--json", str(changed)).stdout)
    assert corrected["results"][0]["status"] == "would_record"
    assert corrected["results"][0]["envelope"]["data"]["ward"] == "WARD9"
    assert count(database_url, "ledger_events") == 1


def test_ingest_json_reports_every_line(run: Callable[..., Any], tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    good = envelope()
    path.write_text("\n".join([json.dumps(good), "{bad", json.dumps(good)]) + "\n")
    result = run("ingest", "--json", str(path))
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [(r["line"], r["status"]) for r in report["results"]] == [
        (1, "recorded"),
        (2, "rejected"),
        (3, "duplicate"),
    ]
    assert report["results"][1]["errors"][0]["msg"].startswith("not valid JSON")
    assert report["counts"] == {"recorded": 1, "duplicate": 1, "conflict": 0, "rejected": 1}


# -- HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def hospital_app(ledger: Ledger, api_settings: Settings) -> FastAPI:
    return create_app(api_settings.model_copy(update={"adt_facilities": FACILITIES}), ledger)


@pytest.fixture
def hospital(hospital_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(hospital_app) as client:
        yield client


def post_adt(client: TestClient, body: str, who: str = "other-publisher", **params: str) -> Any:
    headers = {**auth(who), "Content-Type": "x-application/hl7-v2+er7"}
    return client.post("/v1/adt", content=body.encode(), headers=headers, params=params)


def test_post_adt_dry_run_returns_the_envelopes_and_writes_nothing(
    hospital: TestClient, database_url: str
) -> None:
    response = post_adt(hospital, GOOD + UNMAPPED, dry_run="true")
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True
    good, unmapped = body["results"]
    assert good["status"] == "would_record"
    assert good["envelope"]["source"]["organisation"] == "RXH01"
    assert good["message_control_id"] == "G1"
    assert unmapped["status"] == "rejected" and unmapped["reason"] == UNMAPPED_REASON
    assert count(database_url, "ledger_events") == 0
    assert count(database_url, "publisher_outcomes") == 0


def test_post_adt_records_and_binds_the_key_to_the_facilitys_organisation(
    hospital: TestClient, database_url: str
) -> None:
    first = post_adt(hospital, GOOD).json()
    assert first["results"][0]["status"] == "recorded"
    assert first["results"][0]["position"] == 1
    assert post_adt(hospital, GOOD).json()["results"][0]["status"] == "duplicate"
    # The publisher key of A81001 may not publish for RXH01 (facility RXH).
    other = post_adt(hospital, adt("A01", control="G2"), who="publisher").json()
    assert other["results"][0]["status"] == "rejected"
    assert "not authorised to publish for organisation RXH01" in other["results"][0]["reason"]
    a08 = post_adt(hospital, adt("A08", control="G3"), who="publisher").json()
    assert a08["results"][0]["status"] == "rejected"
    assert count(database_url, "ledger_events") == 1
    empty = post_adt(hospital, "not hl7 at all")
    assert empty.status_code == 422


def test_outcomes_show_each_publishers_refusals_with_reasons_and_message_ids(
    hospital: TestClient, ledger: Ledger, api_settings: Settings
) -> None:
    # Through HTTP ADT (RXH01's key), HTTP envelopes (A81001's key) and MLLP (facility RXH).
    post_adt(hospital, adt("A01", control="E1", encounter=""))
    bad = envelope(at=later(1))
    bad["data"] = {"unexpected": True}
    hospital.post("/v1/events", json=[envelope(), bad], headers=auth("publisher"))
    config = api_settings.model_copy(update={"adt_facilities": FACILITIES})
    migrate(ledger)
    with listening(ledger, config) as running, MLLPClient("127.0.0.1", running.port) as mllp:
        mllp.send_message(adt("A02", control="E2", prior=""))
        mllp.send_message(adt("A05", control="E3"))

    mine = hospital.get("/v1/publishers/me/outcomes", headers=auth("other-publisher")).json()
    assert mine["kind"] == "refusals" and mine["organisations"] == ["RXH01"]
    rows = mine["refusals"]
    assert [(r["channel"], r["message_id"], r["trigger"]) for r in rows] == [
        ("http-adt", "E1", "A01"),
        ("mllp", "E2", "A02"),
        ("mllp", "E3", "A05"),
    ]
    assert rows[0]["reason"] == "PV1-19: no encounter id (visit number)"
    assert rows[1]["reason"] == "PV1-6: no location" and rows[2]["reason"].startswith("MSH-9.2")
    assert all(r["status"] == "rejected" and r["organisation"] == "RXH01" for r in rows)

    theirs = hospital.get("/v1/publishers/me/outcomes", headers=auth("publisher")).json()
    assert [(r["channel"], r["event_id"]) for r in theirs["refusals"]] == [
        ("http", bad["event_id"])
    ]
    assert theirs["refusals"][0]["errors"][0]["loc"].startswith("data")

    everyone = hospital.get("/v1/publishers/me/outcomes", headers=auth("admin")).json()
    assert len(everyone["refusals"]) == 4
    # Paged: one at a time, following `next`.
    seen, after = [], None
    while True:
        params = {"limit": "1", **({"after": after} if after else {})}
        page = hospital.get(
            "/v1/publishers/me/outcomes", params=params, headers=auth("other-publisher")
        ).json()
        seen += [r["message_id"] for r in page["refusals"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ["E1", "E2", "E3"]
    assert (
        hospital.get(
            "/v1/publishers/me/outcomes", params={"after": "1:2"}, headers=auth("publisher")
        ).status_code
        == 422
    )
    assert hospital.get("/v1/publishers/me/outcomes", headers=auth("auditor")).status_code == 403


def test_outcomes_show_data_quality_findings_of_the_publishers_events(
    hospital: TestClient, catch_up: Callable[[], None]
) -> None:
    # A discharge with no admission before it: recorded, and flagged.
    discharge = envelope(
        "Discharged",
        nhs=NHS_B,
        organisation="RXH01",
        setting="acute",
        data={"encounter_id": "V9", "destination": "usual_residence"},
    )
    assert hospital.post("/v1/events", json=envelope(nhs=NHS_B), headers=auth("publisher"))
    response = hospital.post("/v1/events", json=discharge, headers=auth("other-publisher"))
    assert response.status_code == 201, response.text
    catch_up()
    page = hospital.get(
        "/v1/publishers/me/outcomes", params={"kind": "findings"}, headers=auth("other-publisher")
    ).json()
    kinds = [(f["kind"], f["event_id"], f["organisation"]) for f in page["findings"]]
    assert ("discharge_without_admission", discharge["event_id"], "RXH01") in kinds
    others = hospital.get(
        "/v1/publishers/me/outcomes", params={"kind": "findings"}, headers=auth("publisher")
    ).json()
    assert all(f["organisation"] == "A81001" for f in others["findings"])
    assert discharge["event_id"] not in {f["event_id"] for f in others["findings"]}


# -- the page, in Chromium ------------------------------------------------------------------


@pytest.fixture
def served(hospital_app: FastAPI) -> Iterator[str]:
    with serving(hospital_app) as base:
        yield base


def test_outcomes_page_in_chromium(served: str) -> None:
    base = served
    request = urllib.request.Request(
        f"{base}/v1/adt",
        data=adt("A01", control="E7", encounter="").encode(),
        headers={**auth("other-publisher"), "Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read())["results"][0]["status"] == "rejected"
    problems: list[str] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        _sign_in(page, base, "/pages/outcomes", "other-publisher")
        rows = page.locator("table#refusals tbody tr")
        assert rows.count() == 1
        cells = [rows.first.locator("td").nth(i).inner_text() for i in range(7)]
        assert cells[1:5] == ["http-adt", "rejected", "E7", "A01"]
        assert cells[6] == "PV1-19: no encounter id (visit number)"
        page.click("text=Data-quality findings")
        page.wait_for_load_state()
        assert page.locator("table#findings").is_visible()
        home = page.goto(f"{base}/pages/")
        assert home is not None and "Outcomes" in page.locator("ul.links").inner_text()
        browser.clear_cookies()
        _sign_in(page, base, "/pages/", "auditor")
        refused = page.request.get(f"{base}/pages/outcomes")
        assert refused.status == 403
        browser.close()
    assert problems == []


def test_ledger_preview_judges_like_an_append_and_writes_nothing(
    ledger: Ledger, database_url: str
) -> None:
    from tests.envelopes import retraction

    recorded = envelope()
    ledger.append(recorded)
    unknown = envelope(at=later(1))
    items = [
        envelope(nhs=NHS_B),  # a person never seen: would be recorded
        recorded,  # already there: duplicate
        {**recorded, "data": {**recorded["data"], "practice": "B99999"}},  # other content
        retraction(recorded, at=later(2)),  # of a recorded event: would be recorded
        retraction(unknown, at=later(3)),  # of nothing recorded: rejected
        {"type": "nonsense"},
    ]
    before = (count(database_url, "ledger_events"), count(database_url, "identity_register"))
    preview = ledger.preview(items)
    assert [i.status for i in preview.items] == [
        "recorded",
        "duplicate",
        "conflict",
        "recorded",
        "rejected",
        "rejected",
    ]
    assert preview.items[0].position is None and preview.items[1].position == 1
    after = (count(database_url, "ledger_events"), count(database_url, "identity_register"))
    assert after == before
    real = ledger.append_batch(items)
    assert [i.status for i in real.items] == [i.status for i in preview.items]
