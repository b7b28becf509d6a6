"""POST /v1/events and GET /v1/events/{id}: batch semantics over HTTP (real PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from itertools import islice

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from domain.ledger import Ledger
from domain.settings import Settings
from domain.synthetic.cohort import nhs_numbers
from tests.envelopes import NHS_A, NHS_B, envelope, later, retraction
from tests.fixtures_api import auth

PROBLEM = "application/problem+json"


def test_one_envelope_is_recorded_then_duplicate_with_the_same_position(client: TestClient):
    env = envelope()
    first = client.post("/v1/events", json=env, headers=auth("publisher"))
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["status"] == "recorded" and body["event_id"] == env["event_id"]
    again = client.post("/v1/events", json=env, headers=auth("publisher"))
    assert again.status_code == 200
    assert again.json() == {
        "index": 0,
        "event_id": env["event_id"],
        "status": "duplicate",
        "position": body["position"],
    }


def test_same_id_other_content_is_a_conflict_problem(client: TestClient):
    env = envelope()
    assert client.post("/v1/events", json=env, headers=auth("publisher")).status_code == 201
    changed = {**env, "occurred_at": later(2).isoformat()}
    response = client.post("/v1/events", json=changed, headers=auth("publisher"))
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:carejourney:problem:conflict"
    assert problem["errors"] == [
        {"loc": "event_id", "msg": "event_id already recorded with different content"}
    ]


def test_unknown_field_in_an_envelope_is_422_naming_the_field(client: TestClient):
    env = envelope()
    env["data"]["colour"] = "blue"
    env["extra"] = 1
    response = client.post("/v1/events", json=env, headers=auth("publisher"))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "urn:carejourney:problem:envelope-rejected"
    locs = {e["loc"] for e in problem["errors"]}
    assert locs == {"extra", "data.colour"}
    assert all("not permitted" in e["msg"] for e in problem["errors"])


def test_bad_nhs_number_in_an_envelope_is_422_with_the_reason(client: TestClient):
    response = client.post("/v1/events", json=envelope(nhs="9434765918"), headers=auth("publisher"))
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["loc"] == "nhs_number" and "check digit" in error["msg"]
    assert "9434765918" not in response.text  # the number is never echoed


def test_publisher_may_not_publish_for_another_organisation(client: TestClient):
    response = client.post(
        "/v1/events", json=envelope(organisation="RXH01"), headers=auth("publisher")
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:carejourney:problem:forbidden"
    assert "RXH01" in response.json()["detail"]


def test_batch_records_the_valid_items_and_reports_each(client: TestClient, ledger: Ledger):
    good = envelope()
    later_good = envelope("CaseIdentified", at=later(1))
    other_org = envelope(nhs=NHS_B, organisation="RXH01")
    broken = envelope(nhs=NHS_B)
    del broken["occurred_at"]
    early_retraction = retraction(envelope())  # its target was never recorded
    batch = [good, other_org, broken, later_good, good, early_retraction]
    response = client.post("/v1/events", json=batch, headers=auth("publisher"))
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(6))
    assert [r["status"] for r in results] == [
        "recorded",
        "rejected",
        "rejected",
        "recorded",
        "duplicate",
        "rejected",
    ]
    assert results[1]["errors"][0]["loc"] == "source.organisation"
    assert results[2]["errors"] == [{"loc": "occurred_at", "msg": "Field required"}]
    assert results[4]["position"] == results[0]["position"]
    assert results[5]["errors"][0]["loc"] == "data.retracted_event_id"
    assert body["counts"] == {"recorded": 2, "duplicate": 1, "conflict": 0, "rejected": 3}
    assert ledger.counts_by_type() == {"CaseIdentified": 1, "PatientRegistered": 1}


def test_batch_publish_is_idempotent(client: TestClient, ledger: Ledger):
    batch = [envelope(), envelope("CaseIdentified", at=later(1)), envelope(nhs=NHS_B)]
    first = client.post("/v1/events", json=batch, headers=auth("publisher")).json()
    again = client.post("/v1/events", json=batch, headers=auth("publisher")).json()
    assert [r["status"] for r in first["results"]] == ["recorded"] * 3
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 3
    assert [r["position"] for r in again["results"]] == [r["position"] for r in first["results"]]
    assert ledger.head_position() == max(r["position"] for r in first["results"])
    assert sum(ledger.counts_by_type().values()) == 3


def test_admin_publishes_for_any_organisation(client: TestClient):
    response = client.post(
        "/v1/events", json=[envelope(organisation="ZZZ99")], headers=auth("admin")
    )
    assert response.json()["results"][0]["status"] == "recorded"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b"42", "body"),
    ],
)
def test_malformed_request_bodies_are_422_problems(client: TestClient, body: bytes, loc: str):
    response = client.post(
        "/v1/events",
        content=body,
        headers={**auth("publisher"), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["loc"] == loc


def test_bodies_over_the_limit_are_413(ledger: Ledger, api_settings: Settings):
    small = api_settings.model_copy(update={"api_max_body_bytes": 2_000, "batch_max": 3})
    with TestClient(create_app(small, ledger)) as client:
        big = json.dumps([envelope() for _ in range(10)]).encode()
        assert len(big) > 2_000
        response = client.post(
            "/v1/events",
            content=big,
            headers={**auth("publisher"), "content-type": "application/json"},
        )
        assert response.status_code == 413
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["detail"] == "request body is larger than 2000 bytes"

        def chunks():  # no Content-Length: counted as it arrives
            yield big[:1500]
            yield big[1500:]

        streamed = client.post(
            "/v1/events",
            content=chunks(),
            headers={**auth("publisher"), "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        four = json.dumps([envelope() for _ in range(4)]).encode()
        assert len(four) < 2_000
        many = client.post(
            "/v1/events",
            content=four,
            headers={**auth("publisher"), "content-type": "application/json"},
        )
        assert many.status_code == 413
        assert "at most 3 envelopes" in many.json()["detail"]
    assert ledger.head_position() == 0


def test_event_status_for_its_publisher(client: TestClient):
    env = envelope()
    position = client.post("/v1/events", json=env, headers=auth("publisher")).json()["position"]
    response = client.get(f"/v1/events/{env['event_id']}", headers=auth("publisher"))
    assert response.status_code == 200
    body = response.json()
    assert body["position"] == position and body["status"] == "recorded"
    assert body["type"] == "PatientRegistered" and body["source_organisation"] == "A81001"
    assert body["occurred_at"] == "2026-03-02T10:15:00Z"
    assert "patient_id" not in body and NHS_A not in response.text
    other = client.get(f"/v1/events/{env['event_id']}", headers=auth("other-publisher"))
    assert other.status_code == 403
    missing = client.get(f"/v1/events/{uuid.uuid4()}", headers=auth("publisher"))
    assert missing.status_code == 404
    bad = client.get("/v1/events/not-a-uuid", headers=auth("publisher"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "path.event_id"


def test_single_envelopes_posted_together_share_transactions_and_keep_their_own_outcomes(
    api_app, ledger: Ledger
):
    """Envelopes posted one by one while an append runs are appended together in the next
    transaction (api/appends.py); each caller still gets its own outcome: recorded with
    its position, duplicate with the first one's position, or its own 422/403."""
    import asyncio

    import httpx

    valid = [envelope(nhs=nhs) for nhs in islice(nhs_numbers(), 20)]
    bad = {**envelope(), "colour": "blue"}
    foreign = {**envelope(), "source": {**envelope()["source"], "organisation": "RXH01"}}
    twice = envelope()
    bodies = [*valid, bad, twice, twice, foreign]

    async def post_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await asyncio.gather(
                *(c.post("/v1/events", json=b, headers=auth("publisher")) for b in bodies)
            )

    responses = asyncio.run(post_all())
    statuses = [r.status_code for r in responses]
    assert statuses[: len(valid)] == [201] * len(valid)
    assert statuses[len(valid)] == 422  # the unknown field, and only that envelope
    assert responses[len(valid)].json()["errors"][0]["loc"] == "colour"
    assert sorted(statuses[len(valid) + 1 : len(valid) + 3]) == [200, 201]  # same envelope twice
    first, second = (r.json() for r in responses[len(valid) + 1 : len(valid) + 3])
    assert first["position"] == second["position"]
    assert statuses[-1] == 403  # another organisation's, refused before the queue
    positions = [r.json()["position"] for r in responses[: len(valid)]]
    assert all(r.json()["index"] == 0 for r in responses[: len(valid)])
    with ledger.connection() as conn:
        rows = conn.execute(
            "SELECT position, event_id, recorded_at FROM ledger_events ORDER BY position"
        ).fetchall()
    assert len(rows) == len(valid) + 1
    by_id = {str(r["event_id"]): r["position"] for r in rows}
    assert [by_id[b["event_id"]] for b in valid] == positions
    # One transaction has one ledger clock: far fewer clocks than envelopes means the
    # envelopes queued behind the first append went in together.
    assert len({r["recorded_at"] for r in rows}) <= 3


def test_a_person_named_by_a_local_id_only_then_linked(client: TestClient, ledger: Ledger):
    mrn = {"authority": "RXH", "value": "4012345"}
    first = envelope("Admitted", organisation="RXH01", setting="acute")
    del first["nhs_number"]
    first["local_id"] = mrn
    posted = client.post("/v1/events", json=first, headers=auth("admin"))
    assert posted.status_code == 201, posted.text
    patient = ledger.patient_id(None, ("RXH", "4012345"))
    assert patient is not None and ledger.patient_id(NHS_A) is None
    both = envelope("Discharged", at=later(2), organisation="RXH01", setting="acute")
    both["local_id"] = mrn
    assert client.post("/v1/events", json=both, headers=auth("admin")).status_code == 201
    assert ledger.patient_id(NHS_A) == patient  # linked by the envelope naming both
    neither = envelope()
    del neither["nhs_number"]
    refused = client.post("/v1/events", json=neither, headers=auth("publisher"))
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == "nhs_number"
