"""The journey page as known at a chosen time, and the provenance of each coordinator
interval, over plain HTTP (the browser test is at the end: Chromium fills the form).

The story is the auditor's: the person's coordinator changed on day 5, but the handoff
was only recorded later. Asked as known at a time before it was recorded, the page shows
the old coordinator; compared with that time, the handoff is marked "recorded later".
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from api.app import create_app
from domain.ledger import Ledger
from domain.settings import Settings
from tests.envelopes import NHS_A, envelope, later, retraction
from tests.live_server import serving
from tests.test_pages import sign_in
from tests.test_pages_browser import CHROMIUM, FLAGS, OUTPUT, _sign_in

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}


def _db_now(ledger: Ledger) -> datetime:
    with ledger.connection() as conn:
        moment: datetime = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    return moment


def late_handoff(publish: Callable, catch_up: Callable, ledger: Ledger) -> datetime:
    """Registration and assignment, then (recorded after the returned time K) a handoff
    that occurred before K's records and a contact: two facts recorded later."""
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}))
    # K just after a whole second, so K as the form shows it (to the second) is still
    # after the first records and before the later ones.
    time.sleep(1.05 - _db_now(ledger).microsecond / 1e6)
    known = _db_now(ledger)
    time.sleep(0.05)
    handoff = envelope(
        "CoordinatorHandedOff",
        at=later(5),
        organisation="RYX01",
        setting="community",
        data={"from_id": "N100", "to": {**NURSE, "id": "N101"}, "reason": "caseload moved"},
    )
    publish(handoff, envelope("ContactRecorded", at=later(6)))
    catch_up()
    return known


def rows(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr id=.*?</tr>", body, re.S)


def test_known_at_shows_only_what_was_recorded_and_compare_marks_the_rest(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
) -> None:
    known = late_handoff(publish, catch_up, ledger)
    sign_in(client, "auditor")

    now = client.get(f"/pages/journey/{NHS_A}")
    assert now.status_code == 200
    assert len(rows(now.text, "events")) == 4 and "later-tag" not in now.text
    history = rows(now.text, "coordinator-history")
    assert len(history) == 3 and "caseload moved" in history[-1] and "RYX01" in history[-1]
    assert 'name="known_at"' in now.text and 'type="datetime-local"' in now.text

    then = client.get(f"/pages/journey/{NHS_A}", params={"known_at": known.isoformat()})
    assert then.status_code == 200, then.text
    events = rows(then.text, "events")
    assert len(events) == 2  # the handoff and the contact were not recorded yet
    assert not any("CoordinatorHandedOff" in e for e in events)
    assert "2 facts recorded since are not shown" in then.text
    coordinator_then = then.text.split("Coordinator then", 1)[1].split("</div>", 1)[0]
    assert "N100" in coordinator_then and "N101" not in coordinator_then
    assert len(rows(then.text, "coordinator-history")) == 2
    assert "later-tag" not in then.text.split("</form>", 1)[1]

    compared = client.get(
        f"/pages/journey/{NHS_A}", params={"known_at": known.isoformat(), "compare": "true"}
    )
    assert compared.status_code == 200
    events = rows(compared.text, "events")
    assert len(events) == 4
    marked = [e for e in events if 'class="recorded later"' in e]
    assert len(marked) == 2 and all("recorded later, on" in e for e in marked)
    assert any("CoordinatorHandedOff" in e for e in marked)
    history = rows(compared.text, "coordinator-history")
    assert [("later" in h.split(">", 1)[0]) for h in history] == [False, False, True]
    assert "recorded later, on" in history[-1]
    assert len(re.findall(r'class="dot[^"]* later"', compared.text)) == 2
    assert len(re.findall(r'class="band named later"', compared.text)) == 1

    # The form's own value: a local time with no offset, read in the configured zone.
    local = known.astimezone(ZoneInfo("Europe/London")).replace(tzinfo=None)
    form = client.get(f"/pages/journey/{NHS_A}", params={"known_at": local.isoformat()})
    assert len(rows(form.text, "events")) == 2
    bad = client.get(f"/pages/journey/{NHS_A}", params={"known_at": "yesterday"})
    assert bad.status_code == 422 and "known_at" in bad.text


def test_known_at_is_the_auditors_question(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
) -> None:
    known = late_handoff(publish, catch_up, ledger)
    sign_in(client, "coordinator")
    own = client.get(f"/pages/journey/{NHS_A}")
    assert own.status_code == 200 and 'name="known_at"' not in own.text
    asked = client.get(f"/pages/journey/{NHS_A}", params={"known_at": known.isoformat()})
    assert asked.status_code == 403 and "as known at" in asked.text


@pytest.fixture
def served_late(
    publish: Callable, catch_up: Callable, ledger: Ledger, api_settings: Settings
) -> Iterator[tuple[str, datetime]]:
    known = late_handoff(publish, catch_up, ledger)
    with serving(create_app(api_settings, ledger)) as base:
        yield base, known


@pytest.mark.slow
def test_an_auditor_asks_as_known_at_in_chromium(served_late: tuple[str, datetime]) -> None:
    base, known = served_late
    path = f"/pages/journey/{NHS_A}"
    problems: list[str] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        _sign_in(page, base, path, "auditor")
        assert page.locator("#events tbody tr").count() == 4
        assert page.locator("#coordinator-history tbody tr").count() == 3
        local = known.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%dT%H:%M:%S")
        page.fill('input[name="known_at"]', local)
        page.click("form.period button")
        page.wait_for_load_state()
        assert "known_at=" in page.url
        assert page.locator("#events tbody tr").count() == 2
        assert "not shown" in page.locator("#known-at-note").inner_text()
        assert "N100" in page.locator(".facts").inner_text()
        page.check('input[name="compare"]')
        page.click("form.period button")
        page.wait_for_load_state()
        later_rows = page.locator("#events tbody tr.later")
        assert later_rows.count() == 2 and page.locator("#events tbody tr").count() == 4
        badge = later_rows.first.locator(".later-tag")
        assert badge.is_visible() and badge.inner_text().startswith("recorded later, on ")
        # The mark is visible, not only a class: the row's background differs.
        plain = page.locator("#events tbody tr:not(.later) td").first
        colour = later_rows.first.locator("td").nth(1)
        assert colour.evaluate("e => getComputedStyle(e).backgroundColor") != plain.evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        handoff = page.locator("#coordinator-history tbody tr.later")
        assert handoff.count() == 1 and "caseload moved" in handoff.inner_text()
        assert page.locator("svg#journey-chart circle.dot.later").count() == 2
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "journey-known-at-compared.png"), full_page=True)
        browser.close()
    assert problems == []


def test_as_known_a_fact_voided_later_says_so(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
) -> None:
    contact = envelope("ContactRecorded", at=later(2))
    publish(envelope(), contact)
    time.sleep(0.05)
    known = _db_now(ledger)
    time.sleep(0.05)
    publish(retraction(contact, at=later(3)))
    catch_up()
    sign_in(client, "auditor")
    then = client.get(f"/pages/journey/{NHS_A}", params={"known_at": known.isoformat()})
    events = rows(then.text, "events")
    assert len(events) == 2 and 'class="recorded"' in events[1]  # it stood then
    assert "retracted later" in events[1] and "retracted later" not in events[0]
    now = client.get(f"/pages/journey/{NHS_A}")
    assert "retracted later" not in now.text
