"""FHIR over HTTP: the person's Bundle (roles, content type, access log, as_of/known_at)
and the Bulk Data export (kick-off, polling, download, cancel), with the export right
enforced and opted-out people excluded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient

from api.app import create_app
from api.security import Role, env_entry
from domain import optout
from domain.ledger import Ledger
from domain.settings import Settings
from projections.fhir import vocabulary as v
from projections.fhir.resources import RESOURCE_TYPES
from projections.measures.privacy import pseudonym
from tests.envelopes import NHS_A, envelope, later
from tests.fixtures_api import auth, keys_json
from tests.journeys import Journey

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}
EXPORTER = "cjk_test_exporter_key"
AGREEMENT = "DSA-2026-017"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def export_client(ledger: Ledger, api_settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    """The app with one more key: an evaluator granted the export right."""
    entries = json.loads(keys_json())
    entries.append(
        json.loads(env_entry(Role.EVALUATOR, (), "exporter", EXPORTER, export_agreement=AGREEMENT))
    )
    settings = api_settings.model_copy(
        update={"api_keys": json.dumps(entries), "fhir_export_dir": tmp_path / "exports"}
    )
    app: FastAPI = create_app(settings, ledger)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_bundle_for_auditors_and_coordinators(
    client: TestClient, publish: Callable, catch_up: Callable
):
    publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope("Admitted", at=later(2), organisation="RXH01", setting="acute"),
    )
    catch_up()  # the coordinator's care relationship is read from the intervals
    response = client.get(f"/v1/patients/{NHS_A}/fhir", headers=auth("auditor"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/fhir+json"
    bundle = Bundle.model_validate_json(response.text)
    assert bundle.type == "collection"
    [patient] = [e.resource for e in bundle.entry if e.resource.get_resource_type() == "Patient"]
    assert [(i.system, i.value) for i in patient.identifier] == [(v.NHS_NUMBER, NHS_A)]
    assert all(e.fullUrl.startswith("http://testserver/v1/fhir/") for e in bundle.entry)
    [episode] = [
        e.resource for e in bundle.entry if e.resource.get_resource_type() == "EpisodeOfCare"
    ]
    assert episode.careManager.identifier.value == "N100"
    assert client.get(f"/v1/patients/{NHS_A}/fhir", headers=auth("coordinator")).status_code == 200
    assert client.get(f"/v1/patients/{NHS_A}/fhir", headers=auth("evaluator")).status_code == 403
    log = client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    fhir_reads = [e for e in log if e["endpoint"] == "GET /v1/patients/{nhs}/fhir"]
    assert [e["principal"] for e in fhir_reads] == ["auditor", "coordinator"]


def test_bundle_as_of_and_known_at(client: TestClient, publish: Callable, ledger: Ledger):
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}))
    first = ledger.head_position()
    with ledger.connection() as conn:
        known = conn.execute(
            "SELECT recorded_at FROM ledger_events WHERE position = %s", (first,)
        ).fetchone()["recorded_at"]
    publish(envelope("Admitted", at=later(3), organisation="RXH01", setting="acute"))

    def encounters(**params: str) -> list[Any]:
        response = client.get(f"/v1/patients/{NHS_A}/fhir", params=params, headers=auth("auditor"))
        assert response.status_code == 200, response.text
        bundle = Bundle.model_validate_json(response.text)
        return [e.resource for e in bundle.entry if e.resource.get_resource_type() == "Encounter"]

    assert len(encounters()) == 1
    assert encounters(known_at=known.isoformat()) == []  # the admission was not known yet
    assert encounters(as_of=later(2).isoformat()) == []  # nor had it occurred
    naive = client.get(
        f"/v1/patients/{NHS_A}/fhir", params={"as_of": "2026-01-01T00:00"}, headers=auth("auditor")
    )
    assert naive.status_code == 422


def _kick_off(client: TestClient, **params: str) -> str:
    response = client.get(
        "/v1/fhir/$export",
        params=params,
        headers={**bearer(EXPORTER), "Prefer": "respond-async", "Accept": "application/fhir+json"},
    )
    assert response.status_code == 202, response.text
    return response.headers["content-location"]


def _poll(client: TestClient, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    progress_seen = False
    while time.monotonic() < deadline:
        response = client.get(location, headers=bearer(EXPORTER))
        if response.status_code == 200:
            assert response.headers["content-type"] == "application/json"
            return {"manifest": response.json(), "progress_seen": progress_seen}
        assert response.status_code == 202, response.text
        assert response.headers["x-progress"]
        progress_seen = True
        time.sleep(0.05)
    raise AssertionError("the export did not finish in 60 s")


def test_bulk_export_over_http(export_client: TestClient, ledger: Ledger):
    people = [Journey(i) for i in range(4)]
    for j in people:
        j.assign("2025-01-02 10:00", "N100")
        j.admit("2025-02-01 10:00", f"E{j.nhs[-3:]}")
        j.refer("2025-02-03 10:00", "R1")
    for j in people:
        ledger.append_batch(j.events)
    ids = {j.nhs: ledger.patient_id(j.nhs) for j in people}
    opted = people[1]
    with ledger.connection() as conn:
        optout.opt_out(conn, str(ids[opted.nhs]))

    location = _kick_off(export_client)
    assert location.startswith("http://testserver/v1/fhir/export-jobs/")
    result = _poll(export_client, location)
    manifest = result["manifest"]
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    assert manifest["request"].endswith("/v1/fhir/$export")
    assert {o["type"] for o in manifest["output"]} == set(RESOURCE_TYPES) - {"CarePlan"}
    files: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        assert export_client.get(item["url"]).status_code == 401  # the token is required
        response = export_client.get(item["url"], headers=bearer(EXPORTER))
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        files[item["type"]] = lines
        for nhs in ids:
            assert nhs not in response.text  # pseudonymised: no NHS number anywhere
        for patient_id in ids.values():
            assert str(patient_id) not in response.text  # nor the internal id
        assert "E" + people[0].nhs[-3:] not in response.text  # nor publishers' ids
    patients = [Patient.model_validate(p) for p in files["Patient"]]
    key = "change-me-pseudonym-key"
    expected = {pseudonym(ids[j.nhs], key) for j in people if j is not opted}
    assert {p.id for p in patients} == expected  # the opted-out person is left out
    assert all(p.identifier is None for p in patients)
    assert len(files["Encounter"]) == 3

    log = export_client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    exported = [e for e in log if e["endpoint"] == "GET /v1/fhir/$export"]
    assert {e["patient_id"] for e in exported} == {
        str(ids[j.nhs]) for j in people if j is not opted
    }
    assert {(e["principal"], e["agreement"]) for e in exported} == {("exporter", AGREEMENT)}

    # DELETE removes the export: status and files are gone.
    assert export_client.delete(location, headers=bearer(EXPORTER)).status_code == 202
    assert export_client.get(location, headers=bearer(EXPORTER)).status_code == 404
    first_file = manifest["output"][0]["url"]
    assert export_client.get(first_file, headers=bearer(EXPORTER)).status_code == 404


def test_export_types_and_refusals(export_client: TestClient, ledger: Ledger):
    journey = Journey(0)
    journey.assign("2025-01-02 10:00", "N100")
    ledger.append_batch(journey.events)
    location = _kick_off(export_client, _type="Patient,EpisodeOfCare")
    manifest = _poll(export_client, location)["manifest"]
    assert [o["type"] for o in manifest["output"]] == ["Patient", "EpisodeOfCare"]

    headers = {**bearer(EXPORTER), "Prefer": "respond-async"}
    no_prefer = export_client.get("/v1/fhir/$export", headers=bearer(EXPORTER))
    assert no_prefer.status_code == 400
    assert "respond-async" in no_prefer.json()["detail"]
    bad_type = export_client.get("/v1/fhir/$export?_type=Observation", headers=headers)
    assert bad_type.status_code == 400
    assert "Observation" in bad_type.json()["detail"]
    since = export_client.get("/v1/fhir/$export?_since=2025-01-01T00:00:00Z", headers=headers)
    assert since.status_code == 400
    for caller in ("evaluator", "admin"):  # no export right without an agreement
        refused = export_client.get(
            "/v1/fhir/$export", headers={**auth(caller), "Prefer": "respond-async"}
        )
        assert refused.status_code == 403
        assert "export right" in refused.json()["detail"]
    # Someone else's job is not found, even for another key with the right.
    assert export_client.get(location, headers=auth("auditor")).status_code == 403


def test_a_job_that_lost_its_worker_is_failed_not_running(
    export_client: TestClient, ledger: Ledger
):
    """No progress for ten minutes: the worker is gone, so the job is reported failed and
    the key may start another (instead of 429 for ever)."""
    job = "0b6f3c1e-2a4d-4e5f-8a9b-0c1d2e3f4a5b"
    with ledger.connection() as conn:
        conn.execute(
            "INSERT INTO fhir_export_jobs (id, principal, role, agreement, types, request,"
            " status, updated_at) VALUES (%s, 'exporter', 'evaluator', %s, %s, 'x',"
            " 'in-progress', clock_timestamp() - interval '11 minutes')",
            (job, AGREEMENT, ["Patient"]),
        )
    status = export_client.get(f"/v1/fhir/export-jobs/{job}", headers=bearer(EXPORTER))
    assert status.status_code == 500
    assert "the worker running it stopped" in status.json()["detail"]
    location = _kick_off(export_client)  # not 429: the stale job does not block
    assert _poll(export_client, location)["manifest"]["output"] == []
    with ledger.connection() as conn:
        conn.execute(
            "UPDATE fhir_export_jobs SET updated_at = clock_timestamp() WHERE id = %s", (job,)
        )
    busy = export_client.get(
        "/v1/fhir/$export", headers={**bearer(EXPORTER), "Prefer": "respond-async"}
    )
    assert busy.status_code == 429  # a live job of the same key does block
    assert busy.headers["retry-after"] == "5"
