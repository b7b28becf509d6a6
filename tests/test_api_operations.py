"""Operations endpoints and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from domain.ledger import Ledger
from domain.settings import Settings
from tests.envelopes import NHS_A, envelope, later
from tests.fixtures_api import auth


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_healthz_and_readyz(client: TestClient, publish: Callable, catch_up: Callable):
    assert client.get("/healthz").json() == {"status": "ok"}
    publish(envelope())
    catch_up()
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["max_lag"] == 10_000
    assert {p["name"] for p in body["projections"]} >= {"coordinators", "timeline"}
    assert all(p["lag"] == 0 for p in body["projections"])


def test_readyz_fails_when_projections_lag(
    ledger: Ledger, api_settings: Settings, publish: Callable
):
    strict = api_settings.model_copy(update={"ready_max_lag": 1})
    with TestClient(create_app(strict, ledger)) as client:
        publish(envelope(), envelope("CaseIdentified", at=later(1)))
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "lag the ledger by more than 1 events" in response.json()["detail"]


def test_metrics_count_requests_events_rejections_and_lag(client: TestClient):
    before = samples(client.get("/metrics").text)
    good, bad = envelope(), envelope(nhs="9434765918")
    client.post("/v1/events", json=[good, bad], headers=auth("publisher"))
    client.get(f"/v1/patients/{NHS_A}/events", headers=auth("evaluator"))
    client.get(f"/v1/patients/{NHS_A}/events", headers=auth("auditor"))
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("carejourney_events_appended_total") == 1
    assert delta("carejourney_published_items_total", status="rejected") == 1
    assert delta("carejourney_rejections_total", kind="forbidden") == 1
    assert (
        delta(
            "carejourney_http_requests_total",
            method="GET",
            route="/v1/patients/{nhs}/events",
            status="200",
        )
        == 1
    )
    assert (
        delta("carejourney_http_requests_total", method="POST", route="/v1/events", status="200")
        == 1
    )
    assert after[("carejourney_projection_lag_events", (("projection", "timeline"),))] == 1
    assert NHS_A not in response.text


def test_openapi_documents_every_response_with_an_example(client: TestClient):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]

    def has_example(content: dict) -> bool:
        if "example" in content or "examples" in content:
            return True
        ref = content.get("schema", {}).get("$ref", "")
        return bool(schemas.get(ref.rsplit("/", 1)[-1], {}).get("examples"))

    missing = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") and operation.get("description"), (method, path)
            for status, response in operation["responses"].items():
                for media, content in response.get("content", {}).items():
                    if not has_example(content):
                        missing.append((method, path, status, media))
            body = operation.get("requestBody")
            if body is not None:
                assert all(has_example(c) for c in body["content"].values()), (method, path)
    assert missing == []
    assert "Envelope" in schemas and "CoordinatorHandedOffEnvelope" in schemas
    assert schemas["CoordinatorHandedOffEnvelope"]["additionalProperties"] is False
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    envelope_body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]
    assert envelope_body["application/json"]["schema"]["oneOf"][1]["maxItems"] == 5000
