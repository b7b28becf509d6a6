"""Alerts over HTTP: the worklist pages, acknowledging (a ledger fact), who sees what,
the access log, and the SSE stream resuming after a dropped connection without gaps."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later
from tests.fixtures_api import auth
from tests.live_server import serving

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}
ADMITTED = {"encounter_id": "E1", "hospital": "RXH01", "method": "emergency"}
DISCHARGED = {"encounter_id": "E1", "destination": "usual_residence"}


def journey(nhs: str, at: int = 0) -> list[dict[str, Any]]:
    """Registered, N100 assigned, admitted: alerts admission, handoff, inform_person."""
    return [
        envelope(nhs=nhs, at=later(at)),
        envelope("CoordinatorAssigned", nhs=nhs, at=later(at + 1), data={"coordinator": NURSE}),
        envelope("Admitted", nhs=nhs, at=later(at + 2), data=ADMITTED),
    ]


def alerts_of(client: TestClient, who: str = "coordinator", **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/coordinators/N100/alerts", params=params, headers=auth(who))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_worklist_pages_by_due_time_with_a_cursor(
    client: TestClient, publish: Callable, catch_up: Callable
):
    publish(*journey(NHS_A), *journey(NHS_B, at=10))
    # A person of the coordinator's organisation's practice with nobody named: team queue.
    publish(
        envelope(nhs=NHS_C, data={"practice": "RYX01"}),
        envelope("Admitted", nhs=NHS_C, at=later(3), data=ADMITTED),
    )
    catch_up()
    page = alerts_of(client)
    kinds = sorted((a["kind"], a["nhs_number"]) for a in page["alerts"])
    assert ("admission", NHS_C) in kinds and page["organisations"] == ["RYX01"]
    assert {k for k, n in kinds if n == NHS_A} == {"admission", "handoff", "inform_person"}
    queue = [a for a in page["alerts"] if a["team_queue"]]
    assert {a["nhs_number"] for a in queue} == {NHS_C}
    dues = [a["due"] or a["opened_at"] for a in page["alerts"]]
    assert dues == sorted(dues)
    assert "patient_id" not in page["alerts"][0]
    walked, cursor = [], None
    while True:
        part = alerts_of(client, limit=2, **({"cursor": cursor} if cursor else {}))
        walked += [a["alert_id"] for a in part["alerts"]]
        cursor = part["next_cursor"]
        if cursor is None:
            break
    assert walked == [a["alert_id"] for a in page["alerts"]]
    bad = client.get(
        "/v1/coordinators/N100/alerts", params={"cursor": "nope"}, headers=auth("coordinator")
    )
    assert bad.status_code == 422


def test_closed_and_all(client: TestClient, publish: Callable, catch_up: Callable):
    publish(*journey(NHS_A))
    publish(envelope("Discharged", at=later(20), data=DISCHARGED))
    catch_up()
    closed = alerts_of(client, status="closed")["alerts"]
    assert [(a["kind"], a["close_reason"]) for a in closed] == [("admission", "discharged")]
    opened = {a["kind"] for a in alerts_of(client)["alerts"]}
    assert "discharge" in opened and "admission" not in opened
    every = alerts_of(client, status="all")["alerts"]
    assert len(every) == len(closed) + len(alerts_of(client)["alerts"])


def test_who_sees_what_and_the_access_log(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    publish(*journey(NHS_A))
    catch_up()
    assert alerts_of(client, "other-coordinator")["alerts"] == []
    assert len(alerts_of(client)["alerts"]) == 3
    assert len(alerts_of(client, "admin")["alerts"]) == 3
    assert len(alerts_of(client, "auditor")["alerts"]) == 3
    refused = client.get("/v1/coordinators/N100/alerts", headers=auth("evaluator"))
    assert refused.status_code == 403
    log = client.get(
        "/v1/access-log", params={"principal": "coordinator"}, headers=auth("auditor")
    ).json()["entries"]
    assert {(e["endpoint"], e["patient_id"]) for e in log} == {
        ("GET /v1/coordinators/{id}/alerts", str(ledger.patient_id(NHS_A)))
    }
    nobody = client.get(
        "/v1/access-log", params={"principal": "other-coordinator"}, headers=auth("auditor")
    ).json()["entries"]
    assert nobody == []


def test_acknowledging_records_a_fact_once(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    publish(*journey(NHS_A))
    catch_up()
    [admission] = [a for a in alerts_of(client)["alerts"] if a["kind"] == "admission"]
    url = f"/v1/alerts/{admission['alert_id']}/acknowledge"
    assert client.post(url, headers=auth("other-coordinator")).status_code == 403
    assert client.post(url, headers=auth("publisher")).status_code == 403
    missing = "/v1/alerts/00000000-0000-4000-8000-000000000000/acknowledge"
    assert client.post(missing, headers=auth("coordinator")).status_code == 404
    first = client.post(url, json={"note": "rang the ward"}, headers=auth("coordinator"))
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "recorded" and first.json()["coordinator_id"] == "N100"
    again = client.post(url, headers=auth("coordinator"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    history = ledger.history(ledger.patient_id(NHS_A))
    [ack] = [e for e in history if e.type == "AlertAcknowledged"]
    assert ack.data == {
        "alert_id": admission["alert_id"],
        "coordinator_id": "N100",
        "note": "rang the ward",
    }
    assert ack.source["organisation"] == "RYX01"
    catch_up()
    [seen] = [a for a in alerts_of(client)["alerts"] if a["kind"] == "admission"]
    assert seen["acknowledged_by"] == "N100" and seen["status"] == "open"
    replay = client.get(f"/v1/patients/{NHS_A}/replay", headers=auth("auditor")).json()
    assert "AlertAcknowledged" in {e["type"] for e in replay["timeline"]}


def test_the_auditors_replay_shows_the_person_was_told(
    client: TestClient, publish: Callable, catch_up: Callable
):
    told = {
        "by": {"id": "N100", "role": "community_nurse", "organisation": "RYX01"},
        "told": "patient",
        "about": "coordinator",
        "how": "phone",
        "coordinator_id": "N100",
    }
    publish(*journey(NHS_A), envelope("PersonInformed", at=later(4), data=told))
    catch_up()
    replay = client.get(f"/v1/patients/{NHS_A}/replay", headers=auth("auditor")).json()
    [entry] = [e for e in replay["timeline"] if e["type"] == "PersonInformed"]
    assert entry["summary"].startswith("Patient told about their coordinator by N100")
    informs = alerts_of(client, status="closed")["alerts"]
    assert ("inform_person", "informed") in {(a["kind"], a["close_reason"]) for a in informs}


# -- the SSE stream ----------------------------------------------------------------------


@pytest.fixture
def server(api_app: FastAPI) -> Iterator[str]:
    """The app on a real TCP port (uvicorn in a thread)."""
    with serving(api_app, start_seconds=20) as base:
        yield base


def read_events(response: httpx.Response, wanted: int) -> list[dict[str, Any]]:
    """Parse SSE frames until ``wanted`` events (comments and pings skipped)."""
    events: list[dict[str, Any]] = []
    frame: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in frame:
                events.append(
                    {"id": int(frame["id"]), "event": frame["event"], **json.loads(frame["data"])}
                )
                if len(events) == wanted:
                    return events
            frame = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            frame[field] = value.removeprefix(" ")
    return events


@pytest.mark.slow
def test_stream_resumes_after_a_dropped_connection_without_gaps(
    server: str, publish: Callable, catch_up: Callable
):
    headers = auth("coordinator")
    url = f"{server}/v1/coordinators/N100/alerts/stream"
    publish(*journey(NHS_A))
    catch_up()
    with httpx.Client(timeout=20) as http:
        with http.stream("GET", url, headers=headers, params={"after": 0}) as first:
            assert first.status_code == 200
            assert first.headers["content-type"].startswith("text/event-stream")
            before = read_events(first, 2)
        # The connection dropped after two events; more happens meanwhile.
        publish(*journey(NHS_B, at=10))
        publish(envelope("Discharged", at=later(20), data=DISCHARGED))
        catch_up()
        resume = {**headers, "Last-Event-ID": str(before[-1]["id"])}
        with http.stream("GET", url, headers=resume) as second:
            rest = read_events(second, 1 + 3 + 2)  # A's third; B's three; A's close + discharge
        with http.stream("GET", url, headers=headers, params={"after": 0}) as replayed:
            everything = read_events(replayed, 8)
    got = before + rest
    assert [e["id"] for e in got] == [e["id"] for e in everything]
    assert len({e["id"] for e in got}) == len(got) == 8
    changes = {(e["alert_id"], e["event"]) for e in got}
    assert len(changes) == 8
    assert {e["event"] for e in got} == {"opened", "closed"}
    assert {e["nhs_number"] for e in got} == {NHS_A, NHS_B}
