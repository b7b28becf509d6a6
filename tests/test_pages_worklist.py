"""The coordinator's home page is a worklist: open alerts by due time, the caseload with
last contact, next review and open spell, the team queue, acknowledging from the page;
in a TestClient and in headless Chromium (like tests/test_pages_browser.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from api.app import create_app
from domain.ledger import Ledger
from domain.settings import Settings
from projections.runner import Runner
from tests.fixtures_api import KEYS
from tests.journeys import Journey
from tests.live_server import serving
from tests.test_pages import sign_in
from tests.test_pages_browser import CHROMIUM, FLAGS, OUTPUT


def people() -> list[Journey]:
    """Three on N100's caseload (one in hospital, one with a plan and a contact), one
    at a practice of RYX01 with nobody named (the team queue)."""
    inside = Journey(1)
    inside.assign("2025-03-02 10:00", "N100")
    inside.admit("2025-04-01 10:00", "E1")
    planned = Journey(2)
    planned.assign("2025-03-02 10:00", "N100")
    planned.contact("2025-03-10 10:00", "N100", setting="community", organisation="RYX01")
    planned.add(
        "CarePlanAgreed",
        "2025-03-11 10:00",
        {
            "plan_id": "CP1",
            "goals": [{"goal_id": "G1", "description": "walk outdoors"}],
            "agreed_with": "patient",
            "review_due": "2025-09-01",
        },
    )
    quiet = Journey(3)
    quiet.assign("2025-03-02 10:00", "N100")
    waiting = Journey(4, registered=None)
    waiting.add("PatientRegistered", "2025-03-01 09:00", {"practice": "RYX01"})
    return [inside, planned, quiet, waiting]


def record(ledger: Ledger, journeys: list[Journey]) -> None:
    result = ledger.append_batch([e for j in journeys for e in j.events])
    assert result.counts()["rejected"] == 0, [i.as_dict() for i in result.items]
    runner = Runner.for_ledger(ledger)
    runner.migrate()
    runner.run_once()


def test_worklist_and_acknowledging_from_the_page(client: TestClient, ledger: Ledger) -> None:
    journeys = people()
    record(ledger, journeys)
    sign_in(client, "coordinator")
    home = client.get("/pages/", params={"coordinator": "N100"})
    assert home.status_code == 200
    text = home.text
    assert "Worklist of N100" in text and 'id="alerts"' in text
    assert 'data-kind="admission"' in text and 'data-kind="inform_person"' in text
    caseload = text.split('id="caseload"')[1].split("</table>")[0]
    assert caseload.count("<tr>") == 1 + 3  # header + three people
    assert "RXH01" in caseload and "2025-09-01" in caseload and "none recorded" in caseload
    queue = text.split('id="queue"')[1].split("</table>")[0]
    assert journeys[3].nhs in queue
    # Acknowledge the admission from the page.
    alert_id = text.split('data-kind="admission"')[0].rsplit('data-alert="', 1)[1].split('"')[0]
    done = client.post(
        f"/pages/alerts/{alert_id}/acknowledge",
        data={"coordinator": "N100"},
        headers={"Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/pages/?done=")
    history = ledger.history(ledger.patient_id(journeys[0].nhs))
    assert [e.data["alert_id"] for e in history if e.type == "AlertAcknowledged"] == [alert_id]
    cross = client.post(
        f"/pages/alerts/{alert_id}/acknowledge", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    # Every person shown was logged.
    with ledger.connection() as conn:
        logged = {
            r["patient_id"]
            for r in conn.execute(
                "SELECT patient_id FROM api_access_log WHERE endpoint = 'GET /pages/'"
            ).fetchall()
        }
    assert logged == {ledger.patient_id(j.nhs) for j in journeys}


@pytest.fixture
def served(ledger: Ledger, api_settings: Settings) -> Iterator[str]:
    record(ledger, people())
    with serving(create_app(api_settings, ledger)) as base:
        yield base


@pytest.mark.slow
def test_worklist_in_chromium(served: str, ledger: Ledger) -> None:
    assert Path(CHROMIUM).exists()
    OUTPUT.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        page = browser.new_page()
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{served}/pages/?coordinator=N100")
        page.fill("#api_key", KEYS["coordinator"])
        page.click("#sign-in button")
        page.wait_for_load_state()
        assert page.locator("h1").first.inner_text() == "Worklist of N100"
        rows = page.locator("table#alerts tbody tr[data-alert]")
        assert rows.count() >= 4
        dues = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
        assert dues == sorted(dues)
        assert page.locator("table#caseload tbody tr").count() == 3
        assert page.locator("table#queue tbody tr").count() == 1
        admission = page.locator('table#alerts tr[data-kind="admission"]')
        alert_id = admission.get_attribute("data-alert")
        admission.locator("button").click()
        page.wait_for_load_state()
        assert page.locator("p.notice").is_visible()
        page.screenshot(path=str(OUTPUT / "worklist.png"), full_page=True)
        browser.close()
    assert problems == []
    with ledger.connection() as conn:
        found = conn.execute(
            "SELECT count(*) AS n FROM ledger_events WHERE type = 'AlertAcknowledged'"
        ).fetchone()
    assert found["n"] == 1 and alert_id
