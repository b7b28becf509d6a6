"""Auditor endpoints: the complete record, verification, and the access log."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import psycopg
from fastapi.testclient import TestClient

from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later
from tests.fixtures_api import auth
from tests.tampering import superuser

PROBLEM = "application/problem+json"


def _journey(publish: Callable) -> list[dict]:
    return publish(
        envelope(),
        envelope("CaseIdentified", at=later(1)),
        envelope("CoordinatorAssigned", at=later(2)),
        envelope("ContactRecorded", at=later(3)),
        envelope(nhs=NHS_B),
    )


def test_complete_record_in_position_order_with_clocks_and_hashes(
    client: TestClient, publish: Callable
):
    items = _journey(publish)
    response = client.get(f"/v1/patients/{NHS_A}/events", headers=auth("auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    events = body["events"]
    assert [e["position"] for e in events] == [i["position"] for i in items[:4]]
    assert [e["type"] for e in events] == [
        "PatientRegistered",
        "CaseIdentified",
        "CoordinatorAssigned",
        "ContactRecorded",
    ]
    assert events[0]["prev_hash"] is None
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    assert events[2]["data"]["coordinator"]["id"] == "N100"
    assert events[0]["recorded_by"] == {"id": "C1234567", "role": "gp"}
    assert {"occurred_at", "recorded_at", "source"} <= events[0].keys()
    assert body["next_after"] is None and NHS_A not in response.text


def test_record_pages_by_position(client: TestClient, publish: Callable):
    items = _journey(publish)
    first = client.get(f"/v1/patients/{NHS_A}/events?limit=3", headers=auth("auditor")).json()
    assert len(first["events"]) == 3 and first["next_after"] == items[2]["position"]
    rest = client.get(
        f"/v1/patients/{NHS_A}/events",
        params={"after": first["next_after"], "limit": 3},
        headers=auth("auditor"),
    ).json()
    assert [e["position"] for e in rest["events"]] == [items[3]["position"]]
    assert rest["next_after"] is None


def test_bad_and_unknown_nhs_numbers(client: TestClient, publish: Callable):
    _journey(publish)
    bad = client.get("/v1/patients/9434765918/events", headers=auth("auditor"))
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert bad.json()["errors"] == [{"loc": "path.nhs", "msg": bad.json()["errors"][0]["msg"]}]
    assert "check digit" in bad.json()["detail"]
    short = client.get("/v1/patients/12345/verify", headers=auth("auditor"))
    assert short.status_code == 422 and "10 digits" in short.json()["detail"]
    unknown = client.get(f"/v1/patients/{NHS_C}/events", headers=auth("auditor"))
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:carejourney:problem:not-found"


def test_verify_ok_then_tampering_is_named(client: TestClient, publish: Callable, ledger: Ledger):
    items = _journey(publish)
    ok = client.get(f"/v1/patients/{NHS_A}/verify", headers=auth("auditor")).json()
    assert ok["ok"] is True and ok["break"] is None and ok["events"] == 4
    assert ok["head"]["version"] == 4 and ok["head"]["position"] == items[3]["position"]
    with superuser(ledger.database_url) as conn:
        conn.execute(
            "UPDATE ledger_events SET hash = repeat('0', 64) WHERE position = %s",
            (items[1]["position"],),
        )
    broken = client.get(f"/v1/patients/{NHS_A}/verify", headers=auth("auditor")).json()
    assert broken["ok"] is False
    assert broken["break"]["position"] == items[1]["position"]
    assert broken["break"]["event_id"] == items[1]["event_id"]


def test_every_person_level_read_is_in_the_access_log(
    client: TestClient, publish: Callable, ledger: Ledger, catch_up: Callable
):
    _journey(publish)
    catch_up()
    reads = [
        ("auditor", f"/v1/patients/{NHS_A}/events", "GET /v1/patients/{nhs}/events"),
        ("auditor", f"/v1/patients/{NHS_A}/replay", "GET /v1/patients/{nhs}/replay"),
        ("auditor", f"/v1/patients/{NHS_B}/verify", "GET /v1/patients/{nhs}/verify"),
        ("coordinator", f"/v1/patients/{NHS_A}/coordinator", "GET /v1/patients/{nhs}/coordinator"),
        ("coordinator", f"/v1/patients/{NHS_A}/journey", "GET /v1/patients/{nhs}/journey"),
        ("admin", f"/v1/patients/{NHS_A}/care-plans", "GET /v1/patients/{nhs}/care-plans"),
    ]
    for who, path, _ in reads:
        assert client.get(path, headers=auth(who)).status_code == 200, path
    refused = client.get(f"/v1/patients/{NHS_A}/events", headers=auth("evaluator"))
    assert refused.status_code == 403
    a, b = ledger.patient_id(NHS_A), ledger.patient_id(NHS_B)
    log = client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    assert [(e["principal"], e["endpoint"], e["patient_id"]) for e in log] == [
        (who, endpoint, str(b if "verify" in endpoint else a)) for who, _, endpoint in reads
    ]
    assert all(e["role"] in ("auditor", "coordinator", "admin") for e in log)
    with psycopg.connect(ledger.database_url) as conn:
        text = str(conn.execute("SELECT * FROM api_access_log").fetchall())
    assert NHS_A not in text and NHS_B not in text


def test_caseload_and_unassigned_log_one_row_per_person_listed(
    client: TestClient, publish: Callable, ledger: Ledger, catch_up: Callable
):
    publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1)),
        envelope(nhs=NHS_B),
        envelope("CoordinatorAssigned", nhs=NHS_B, at=later(1)),
        envelope(nhs=NHS_C),
    )
    catch_up()
    caseload = client.get("/v1/coordinators/N100/caseload", headers=auth("admin"))
    assert caseload.status_code == 200, caseload.text
    unassigned = client.get("/v1/unassigned", headers=auth("admin"))
    assert unassigned.status_code == 200, unassigned.text
    log = client.get(
        "/v1/access-log", params={"principal": "admin"}, headers=auth("auditor")
    ).json()["entries"]
    by_endpoint: dict[str, set[str]] = {}
    for e in log:
        by_endpoint.setdefault(e["endpoint"], set()).add(e["patient_id"])
    assert by_endpoint == {
        "GET /v1/coordinators/{id}/caseload": {
            str(ledger.patient_id(NHS_A)),
            str(ledger.patient_id(NHS_B)),
        },
        "GET /v1/unassigned": {str(ledger.patient_id(NHS_C))},
    }


def test_access_log_filters(client: TestClient, publish: Callable, ledger: Ledger):
    _journey(publish)
    client.get(f"/v1/patients/{NHS_A}/events", headers=auth("auditor"))
    client.get(f"/v1/patients/{NHS_B}/events", headers=auth("admin"))
    by_patient = client.get(
        "/v1/access-log", params={"patient": NHS_B}, headers=auth("auditor")
    ).json()["entries"]
    # The auditor's own look-up by NHS number is itself a person-level read.
    assert [(e["principal"], e["endpoint"]) for e in by_patient] == [
        ("admin", "GET /v1/patients/{nhs}/events"),
        ("auditor", "GET /v1/access-log"),
    ]
    by_principal = client.get(
        "/v1/access-log", params={"principal": "auditor"}, headers=auth("auditor")
    ).json()["entries"]
    assert {e["patient_id"] for e in by_principal} == {
        str(ledger.patient_id(NHS_A)),
        str(ledger.patient_id(NHS_B)),
    }
    everything = client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    cut = everything[1]["at"]
    after = client.get("/v1/access-log", params={"from": cut}, headers=auth("auditor")).json()[
        "entries"
    ]
    before = client.get("/v1/access-log", params={"to": cut}, headers=auth("auditor")).json()[
        "entries"
    ]
    assert [e["id"] for e in before] + [e["id"] for e in after] == [e["id"] for e in everything]
    page = client.get("/v1/access-log", params={"limit": 1}, headers=auth("auditor")).json()
    assert len(page["entries"]) == 1 and page["next_after"] == page["entries"][0]["id"]
    bad = client.get("/v1/access-log", params={"patient": "123"}, headers=auth("auditor"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == "query.patient"
