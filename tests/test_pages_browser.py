"""Both pages in a real browser: headless Chromium (Debian's ``/usr/bin/chromium``, which
the README's test command installs) driven by Playwright, against a real uvicorn on
loopback serving a synthetic cohort plus one person with 300 events.

Asserts what a user would see: no console errors, the journey's lanes, coordinator band
(with a gap and handoffs), spells, milestones and all 300 events; the dashboard's four
charts with data, each definition one click away, and the API's numbers. Screenshots go
to ``test-output/``.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, sync_playwright

from api.app import create_app
from domain.ledger import Ledger
from domain.settings import Settings
from domain.synthetic import delivery_order, generate_people
from tests.fixtures_api import KEYS
from tests.fixtures_measures import Measured
from tests.journeys import Journey
from tests.live_server import serving

# Drives a real Chromium.
pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
COHORT = 300  # big enough that suppression (1-7, nearest 5) leaves every chart data


def busy_journey() -> Journey:
    """One person with exactly 300 events over two years, in every lane."""
    p = Journey(900, registered="2024-01-05 09:00")
    p.identify("2024-01-10 10:00")
    p.assign(
        "2024-01-20 10:00",
        "N1",
        role="practice_nurse",
        organisation="A81001",
        setting="primary_care",
    )
    p.hand_off("2024-05-01 10:00", "N1", "N2")
    p.hand_off(
        "2024-09-01 10:00",
        "N2",
        "S1",
        role="social_worker",
        organisation="LA301",
        setting="social_care",
    )
    p.release("2025-02-01 10:00", "S1")  # a gap with no named coordinator
    p.assign(
        "2025-03-15 10:00",
        "M1",
        role="mental_health_professional",
        organisation="RV505",
        setting="mental_health",
    )
    p.hand_off("2025-08-01 10:00", "M1", "N3")
    p.plan("2024-02-01 10:00", "CP1", "2024-05-01")
    for at, due in (
        ("2024-04-28", "2024-08-01"),
        ("2024-08-10", "2024-11-01"),
        ("2025-01-15", "2025-04-15"),
        ("2025-04-10", "2025-07-10"),
        ("2025-07-01", "2026-01-01"),
    ):
        p.review(f"{at} 11:00", "CP1", due)
    p.admit("2024-03-10 08:00", "H1")
    p.discharge("2024-03-14 12:00", "H1")
    p.admit("2024-07-02 20:00", "H2")
    p.discharge("2024-07-09 12:00", "H2")
    p.admit("2024-11-20 08:00", "H3")
    p.discharge("2024-11-22 10:00", "H3", destination="other_hospital")
    p.admit("2024-11-22 12:00", "H4", method="transfer", hospital="RYR16")
    p.discharge("2024-11-30 12:00", "H4", hospital="RYR16")
    p.admit("2025-05-05 08:00", "H5", method="elective")
    p.discharge("2025-05-06 16:00", "H5")
    p.admit("2025-10-10 03:00", "H6")
    p.discharge("2025-10-15 12:00", "H6")
    for i in range(8):
        p.outcome(f"2024-{i + 2:02d}-15 10:00", "P3CEQ", 10 + i)
    for i, (made, seen) in enumerate(
        (("2024-02-10", "2024-03-01"), ("2024-06-01", "2024-06-20"), ("2025-03-01", "2025-04-02"))
    ):
        p.refer(f"{made} 10:00", f"REF{i}")
        p.first_contact(f"{seen} 10:00", f"REF{i}")
    wrong = p.contact("2024-01-25 10:00", "G100")
    p.add(
        "EventRetracted",
        "2024-01-26 10:00",
        {"retracted_event_id": wrong["event_id"], "reason": "entered in error"},
    )
    settings = ("primary_care", "community", "mental_health", "social_care", "voluntary", "home")
    orgs = {
        "primary_care": "A81001",
        "community": "RYX01",
        "mental_health": "RV505",
        "social_care": "LA301",
        "voluntary": "VOL01",
        "home": "RYX01",
    }
    for i in range(300 - len(p.events)):  # contacts every few days, across the lanes
        day = 20 + i * 2.6
        setting = settings[i % len(settings)]
        p.contact(
            f"{_date(day)} {9 + i % 8:02d}:15",
            f"P{i % 5}",
            setting=setting,
            organisation=orgs[setting],
        )
    assert len(p.events) == 300
    return p


def _date(days_after_2024: float) -> str:
    from datetime import date, timedelta

    return (date(2024, 1, 1) + timedelta(days=int(days_after_2024))).isoformat()


@pytest.fixture
def served(measured: Measured, ledger: Ledger, api_settings: Settings) -> Iterator[str]:
    """The demo cohort and the busy person, projected, behind uvicorn on loopback."""
    busy = busy_journey()
    measured.record(delivery_order(list(generate_people(people=COHORT, seed=5)), 5), busy)
    with serving(create_app(api_settings, ledger)) as base:
        yield f"{base}|{busy.nhs}"


def _sign_in(page: Page, base: str, path: str, who: str) -> None:
    page.goto(base + path)
    assert "/pages/sign-in" in page.url  # not signed in yet: the form first
    page.fill("#api_key", KEYS[who])
    page.click("#sign-in button")
    page.wait_for_load_state()
    assert page.url == base + path


def test_pages_in_chromium(served: str) -> None:
    assert Path(CHROMIUM).exists(), (
        "Debian's Chromium is missing: `make test` installs it (apt-get install -y chromium)"
    )
    base, nhs = served.split("|")
    OUTPUT.mkdir(exist_ok=True)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1300, "height": 900},
        )
        page = browser.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        # -- the journey page, as an auditor ------------------------------------------
        _sign_in(page, base, f"/pages/journey/{nhs}", "auditor")
        cookie = next(c for c in browser.cookies() if c["name"] == "cj_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        chart = page.locator("svg#journey-chart")
        assert chart.is_visible()
        lanes = page.locator("svg#journey-chart rect.lane")
        assert lanes.count() >= 7
        assert {lanes.nth(i).get_attribute("data-lane") for i in range(lanes.count())} >= {
            "primary_care",
            "acute",
            "community",
            "mental_health",
            "social_care",
            "voluntary",
        }
        assert page.locator("#coordinator-band rect.band.named").count() >= 4
        assert page.locator("#coordinator-band rect.band.gap").count() >= 2
        assert page.locator("#coordinator-band g.handoff").count() == 3
        assert page.locator("#spells rect.spell").count() == 6
        assert page.locator("#plan-milestones .milestone").count() >= 6
        assert page.locator("#events-dots circle.dot").count() == 300
        assert page.locator("#events-dots circle.dot.voided").count() == 1
        assert page.locator("table#events tbody tr").count() == 300
        page.screenshot(path=str(OUTPUT / "journey.png"), full_page=False)
        page.screenshot(path=str(OUTPUT / "journey-full.png"), full_page=True)
        page.goto(f"{base}/pages/journey/{nhs}?from=2024-06-01&to=2024-12-31")
        zoomed = page.locator("#events-dots circle.dot").count()
        assert 0 < zoomed < 300
        page.screenshot(path=str(OUTPUT / "journey-zoomed.png"))
        refused = page.request.get(f"{base}/pages/measures")  # auditors: no dashboard
        assert refused.status == 403 and "Not allowed" in refused.text()

        # -- the dashboard, as an evaluator ----------------------------------------------
        browser.clear_cookies()
        _sign_in(page, base, "/pages/measures", "evaluator")
        figures = page.locator("section.figures figure.chart")
        assert figures.count() == 4
        for i in range(4):
            figure = figures.nth(i)
            drawn = int(figure.locator("svg.bars").get_attribute("data-bars") or 0)
            assert drawn > 0, figure.locator("h2").inner_text()
            details = figure.locator("details.definition")
            assert details.get_attribute("open") is None
            details.locator("summary").click()  # the definition is one click away
            assert details.get_attribute("open") is not None
            assert "Split" in details.locator(".def").first.inner_text()
        first = page.locator("input[name=from]").input_value()
        last = page.locator("input[name=to]").input_value()
        request = urllib.request.Request(
            f"{base}/v1/measures?from={first}&to={last}",
            headers={"Authorization": f"Bearer {KEYS['evaluator']}"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            api = json.load(answer)
        for measure, metric in (
            ("readmission_30d", "readmission_pct"),
            ("time_to_coordinator", "median_days"),
            ("coverage", "uncovered_days"),
            ("continuity", "median_coc"),
        ):
            cell = page.locator(
                f'td[data-measure="{measure}"][data-group="all"][data-metric="{metric}"]'
            )
            expected = api["measures"][measure]["groups"][0][metric]
            assert expected is not None, (measure, metric)
            assert float(cell.get_attribute("data-value") or "nan") == expected
        assert page.locator("#report-meta").get_attribute("data-position") == str(
            api["computed_at"]["position"]
        )
        page.screenshot(path=str(OUTPUT / "dashboard.png"), full_page=True)
        browser.close()
    assert not problems, problems
