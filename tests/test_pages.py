"""The pages over HTTP (no browser): sign-in, sessions, what each role may open, and the
dashboard showing the API's numbers. The real-browser test is test_pages_browser.py."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.security import Role, add_key
from domain.ledger import Ledger
from domain.settings import Settings
from tests.fixtures_api import KEYS
from tests.fixtures_measures import Measured, group
from tests.journeys import Journey

PERIOD = {"from": "2025-03-01", "to": "2025-08-31"}


def sign_in(client: TestClient, name: str, next_page: str = "/pages/") -> None:
    answer = client.post(
        "/pages/sign-in", data={"api_key": KEYS[name], "next": next_page}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/pages" in cookie
    assert KEYS[name] not in cookie  # the browser holds a session token, never the key


def cohort() -> list[Journey]:
    people = []
    for i in range(20):  # 20 discharged home; 10 readmitted; 12 followed up next day
        person = Journey(70 + i)
        person.assign("2025-03-02 10:00", "N100")
        person.admit("2025-04-01 10:00", f"E{i}")
        person.discharge("2025-04-05 10:00", f"E{i}")
        if i < 12:
            person.contact("2025-04-06 10:00", "N100", setting="community", organisation="RYX01")
        if i >= 10:
            person.admit("2025-04-20 10:00", f"R{i}")
        people.append(person)
    return people


def test_sign_in_and_roles(measured: Measured, client: TestClient) -> None:
    people = cohort()
    measured.record(*people)
    nhs = people[0].nhs

    # Not signed in: sent to the form, which comes back to the page asked for.
    first = client.get("/pages/measures", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/pages/sign-in?next=%2Fpages%2Fmeasures"
    wrong = client.post("/pages/sign-in", data={"api_key": "cjk_nope"})
    assert wrong.status_code == 401 and "not known" in wrong.text

    sign_in(client, "evaluator")
    home = client.get("/pages/")
    assert 'href="/pages/measures"' in home.text and 'href="/pages/journey"' not in home.text
    page = client.get("/pages/measures", params=PERIOD)
    assert page.status_code == 200
    assert "script-src" not in page.headers["content-security-policy"]  # no script at all
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert client.get(f"/pages/journey/{nhs}").status_code == 403  # person-level: no
    api = client.get(
        "/v1/measures", params=PERIOD, headers={"Authorization": f"Bearer {KEYS['evaluator']}"}
    ).json()
    readmission = group(api, "readmission_30d")
    assert readmission["discharges"] == 20 and readmission["readmitted"] == 10
    cell = re.search(
        r'data-measure="readmission_30d" data-group="all" '
        r'data-metric="readmission_pct" data-value="([^"]*)"',
        page.text,
    )
    assert cell and float(cell.group(1)) == readmission["readmission_pct"] == 50.0
    follow = re.search(
        r'data-measure="follow_up_7d" data-group="all" '
        r'data-metric="followed_up" data-value="([^"]*)"',
        page.text,
    )
    assert follow and int(follow.group(1)) == group(api, "follow_up_7d")["followed_up"] == 10

    client.post("/pages/sign-out")
    assert client.get("/pages/measures", follow_redirects=False).status_code == 303

    sign_in(client, "coordinator")  # RYX01: the nurse's organisation, related to everyone
    journey = client.get(f"/pages/journey/{nhs}")
    assert journey.status_code == 200
    assert journey.headers["cache-control"] == "no-store"
    assert journey.headers["referrer-policy"] == "no-referrer"
    assert 'id="journey-chart"' in journey.text and 'class="band named"' in journey.text
    assert client.get("/pages/measures").status_code == 403
    assert client.get("/pages/journey/9434765918").status_code == 422  # bad check digit
    looked_up = client.get("/pages/journey", params={"nhs": nhs}, follow_redirects=False)
    assert looked_up.headers["location"] == f"/pages/journey/{nhs}"


def test_other_sites_and_revoked_keys(
    ledger: Ledger, api_settings: Settings, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.json"
    key = add_key(keys_file, Role.AUDITOR, (), "temporary")
    app = create_app(api_settings.model_copy(update={"api_keys_file": keys_file}), ledger)
    with TestClient(app) as client:
        forged = client.post(
            "/pages/sign-in", data={"api_key": key}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert forged.status_code == 403
        signed = client.post("/pages/sign-in", data={"api_key": key}, follow_redirects=False)
        assert signed.status_code == 303
        assert client.get("/pages/journey").status_code == 200
        entries = json.loads(keys_file.read_text())
        entries["keys"] = []
        keys_file.write_text(json.dumps(entries))
        time.sleep(1.1)  # the key ring re-reads a changed file at most once a second
        assert client.get("/pages/journey", follow_redirects=False).status_code == 303
