"""The authorisation matrix: every role (and no key) against every endpoint.

One table says what each caller gets; the test fills the actual table from real requests
on one database and compares the two whole, so a failure shows every cell that moved.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.envelopes import NHS_A, NHS_C, envelope, later
from tests.fixtures_api import auth

CALLERS = (
    "anonymous",
    "publisher",
    "other-publisher",
    "auditor",
    "coordinator",
    "other-coordinator",
    "evaluator",
    "admin",
)

# endpoint -> status per caller, in CALLERS order
MATRIX: dict[str, tuple[int, ...]] = {
    "POST /v1/events": (401, 201, 403, 403, 403, 403, 403, 201),
    "GET /v1/events/{event_id}": (401, 200, 403, 200, 403, 403, 403, 200),
    # A JSON body is no HL7 v2 message: 422 for whoever may publish.
    "POST /v1/adt": (401, 422, 422, 403, 403, 403, 403, 422),
    "GET /v1/publishers/me/outcomes": (401, 200, 200, 403, 403, 403, 403, 200),
    "GET /v1/patients/{nhs}/events": (401, 403, 403, 200, 403, 403, 403, 200),
    "GET /v1/patients/{nhs}/replay": (401, 403, 403, 200, 403, 403, 403, 200),
    "GET /v1/patients/{nhs}/verify": (401, 403, 403, 200, 403, 403, 403, 200),
    "GET /v1/access-log": (401, 403, 403, 200, 403, 403, 403, 200),
    "GET /v1/patients/{nhs}/coordinator": (401, 403, 403, 200, 200, 404, 403, 200),
    "GET /v1/patients/{nhs}/coordinator/history": (401, 403, 403, 200, 200, 404, 403, 200),
    "GET /v1/patients/{nhs}/journey": (401, 403, 403, 200, 200, 404, 403, 200),
    "GET /v1/patients/{nhs}/care-plans": (401, 403, 403, 200, 200, 404, 403, 200),
    "GET /v1/coordinators/{id}/caseload": (401, 403, 403, 403, 200, 403, 403, 200),
    "GET /v1/unassigned": (401, 403, 403, 403, 200, 200, 403, 200),
    "GET /v1/coordinators/{id}/alerts": (401, 403, 403, 200, 200, 200, 403, 200),
    # The id is not an alert's (nor the body an acknowledgement): the roles let through
    # reach validation. Acknowledging a real alert: tests/test_api_alerts.py.
    "POST /v1/alerts/{id}/acknowledge": (401, 403, 403, 403, 422, 422, 403, 422),
    # A stream never ends; a bad ``after`` shows who is let through to open one.
    "GET /v1/coordinators/{id}/alerts/stream?after=x": (401, 403, 403, 422, 422, 422, 403, 422),
    "GET /v1/log": (401, 403, 403, 200, 403, 403, 403, 200),
    "GET /v1/measures?from=2026-01-01&to=2026-12-31": (401, 403, 403, 200, 403, 403, 200, 200),
    "GET /v1/optout": (401, 403, 403, 403, 403, 403, 403, 200),
    "POST /v1/optout": (401, 403, 403, 403, 403, 403, 403, 200),
    "DELETE /v1/optout/{nhs}": (401, 403, 403, 403, 403, 403, 403, 200),
    "GET /v1/patients/{nhs}/fhir": (401, 403, 403, 200, 200, 404, 403, 200),
    # Hashes only, nothing about a person: every key may read the transparency log (no
    # checkpoint is issued here, so the latest is 404 for everyone let through).
    "GET /v1/transparency/checkpoint": (401, 404, 404, 404, 404, 404, 404, 404),
    "GET /v1/transparency/inclusion?position=1&tree_size=2": (401,) + (200,) * 7,
    "GET /v1/transparency/consistency?from=1&to=2": (401,) + (200,) * 7,
    "GET /v1/transparency/tlog/checkpoint": (401, 404, 404, 404, 404, 404, 404, 404),
    "GET /v1/transparency/tlog/tile/{tile_path}": (401,) + (200,) * 7,
    # Bulk export needs an explicit export right (a key made --export-agreement REF): no
    # role has it by default, not even admin (tests/test_fhir_api.py grants it).
    "GET /v1/fhir/$export": (401, 403, 403, 403, 403, 403, 403, 403),
    "GET /v1/fhir/export-jobs/{job}": (401, 403, 403, 403, 403, 403, 403, 403),
    "DELETE /v1/fhir/export-jobs/{job}": (401, 403, 403, 403, 403, 403, 403, 403),
    "GET /v1/fhir/export-jobs/{job}/{name}": (401, 403, 403, 403, 403, 403, 403, 403),
    "GET /healthz": (200,) * 8,
    "GET /readyz": (200,) * 8,
    "GET /metrics": (200,) * 8,
    "GET /v1/schema/envelope": (200,) * 8,
    "GET /openapi.json": (200,) * 8,
}


def test_every_endpoint_of_the_app_is_in_the_matrix(client: TestClient):
    paths = client.get("/openapi.json").json()["paths"]
    documented = {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}
    assert documented == {e.partition("?")[0] for e in MATRIX} - {"GET /openapi.json"}


def test_authorisation_matrix(client: TestClient, publish: Callable, catch_up: Callable):
    items = publish(envelope(), envelope("CoordinatorAssigned", at=later(1)))
    catch_up()
    event_id = items[0]["event_id"]
    concrete = {
        "{nhs}": NHS_A,
        "{event_id}": event_id,
        "{id}": "N100",
        "{job}": "6f1c2d4e-8b7a-4c3d-9e0f-1a2b3c4d5e6f",
        "{name}": "Patient.ndjson",
        "{tile_path}": "0/000.p/2",
    }
    actual: dict[str, tuple[int, ...]] = {}
    for endpoint in MATRIX:
        method, template = endpoint.split(" ")
        path = template
        for name, value in concrete.items():
            path = path.replace(name, value)
        row = []
        for caller in CALLERS:
            headers = {} if caller == "anonymous" else auth(caller)
            if method == "POST" and path == "/v1/optout":
                response = client.post(path, json={"nhs_numbers": [NHS_C]}, headers=headers)
            elif method == "POST":
                response = client.post(path, json=envelope(at=later(5)), headers=headers)
            elif method == "DELETE":
                response = client.delete(path, headers=headers)
            else:
                response = client.request(method, path, headers=headers)
            row.append(response.status_code)
        actual[endpoint] = tuple(row)
    assert actual == MATRIX


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "send an API key as 'Authorization: Bearer <key>'"),
        ({"Authorization": "Bearer cjk_nobody"}, "the API key is not known (or was revoked)"),
        (
            {"Authorization": "Basic dXNlcjpwYXNz"},
            "send an API key as 'Authorization: Bearer <key>'",
        ),
    ],
)
def test_401_problems_say_why_and_challenge(client: TestClient, headers, detail):
    response = client.get(f"/v1/patients/{NHS_A}/events", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "urn:carejourney:problem:unauthenticated",
        "title": "Authentication required",
        "status": 401,
        "detail": detail,
        "instance": "/v1/patients/{nhs}/events",  # the template: never a person path
    }


def test_403_problems_give_the_reason(client: TestClient, publish: Callable):
    publish(envelope())
    evaluator = client.get(f"/v1/patients/{NHS_A}/replay", headers=auth("evaluator")).json()
    assert evaluator["status"] == 403
    assert evaluator["detail"] == "evaluators never get person-level data"
    publisher = client.get(f"/v1/patients/{NHS_A}/events", headers=auth("publisher")).json()
    assert "role publisher may not read person-level records" in publisher["detail"]
    # Outside the coordinator's care looks exactly like not registered at all.
    stranger = client.get(f"/v1/patients/{NHS_A}/journey", headers=auth("other-coordinator"))
    unknown = client.get(f"/v1/patients/{NHS_C}/journey", headers=auth("other-coordinator"))
    assert stranger.status_code == unknown.status_code == 404
    assert stranger.json() == unknown.json()
    assert "care" in stranger.json()["detail"]


def test_unknown_route_and_method_are_problems(client: TestClient):
    missing = client.get("/v1/nothing-here", headers=auth("admin"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = client.delete("/v1/unassigned", headers=auth("admin"))
    assert wrong.status_code == 405
    assert wrong.json()["title"] == "Method Not Allowed"
