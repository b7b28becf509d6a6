"""Coordinator endpoints over the live projections (caught up by running the runner once)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from fastapi.testclient import TestClient

from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, NHS_C, envelope, later
from tests.fixtures_api import auth

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}
OTHER_NURSE = {
    "id": "N900",
    "role": "community_nurse",
    "organisation": "Y99999",
    "setting": "community",
}


def test_coordinator_now_and_as_of(client: TestClient, publish: Callable, catch_up: Callable):
    publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope(
            "CoordinatorHandedOff",
            at=later(5),
            data={"from_id": "N100", "to": {**NURSE, "id": "N101"}},
        ),
    )
    catch_up()
    now = client.get(f"/v1/patients/{NHS_A}/coordinator", headers=auth("coordinator")).json()
    assert now["coordinator"]["id"] == "N101" and now["named"] is True
    assert now["journey"] == "open" and now["handoffs"] == 1 and now["practice"] == "A81001"
    then = client.get(
        f"/v1/patients/{NHS_A}/coordinator",
        params={"as_of": later(2).isoformat()},
        headers=auth("coordinator"),
    )
    assert then.status_code == 200
    assert then.json()["coordinator"]["id"] == "N100"
    assert then.json()["interval"]["opened_by_type"] == "CoordinatorAssigned"
    naive = client.get(
        f"/v1/patients/{NHS_A}/coordinator",
        params={"as_of": "2026-03-02T12:00:00"},
        headers=auth("coordinator"),
    )
    assert naive.status_code == 422


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_coordinator_history_carries_recorder_reason_source_and_both_clocks(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    handoff = envelope(
        "CoordinatorHandedOff",
        at=later(5),
        organisation="RYX01",
        setting="community",
        data={"from_id": "N100", "to": {**NURSE, "id": "N101"}, "reason": "moved team"},
    )
    handoff["recorded_by"] = {"id": "N042", "role": "community_nurse"}
    items = publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        handoff,
    )
    catch_up()
    answer = client.get(f"/v1/patients/{NHS_A}/coordinator/history", headers=auth("auditor"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    intervals = body["intervals"]
    assert [i["coordinator_id"] for i in intervals] == ["G1234567", "N100", "N101"]
    last = intervals[-1]
    assert last["opened_by"] == handoff["event_id"] == items[2]["event_id"]
    assert last["opened_position"] == items[2]["position"]
    assert last["publisher"] == "RYX01" and last["source_system"] == "test-emis"
    assert (last["recorder_id"], last["recorder_role"]) == ("N042", "community_nurse")
    assert last["reason"] == "moved team" and last["way_in"] is None
    recorded = {e.event_id: e for e in ledger.history(ledger.patient_id(NHS_A))}
    stored = recorded[UUID(handoff["event_id"])]
    assert moment(last["valid_from"]) == stored.occurred_at
    assert moment(last["opened_recorded_at"]) == stored.recorded_at
    assert intervals[1]["closed_position"] == items[2]["position"]
    assert moment(intervals[1]["closed_recorded_at"]) == stored.recorded_at
    assert body["projected_to"] == items[2]["position"]
    # The audit bundle finds the same event at the same position (the link an auditor
    # follows from the history to the evidence).
    bundle = client.get(f"/v1/patients/{NHS_A}/events", headers=auth("auditor")).json()
    by_position = {e["position"]: e for e in bundle["events"]}
    assert by_position[last["opened_position"]]["event_id"] == last["opened_by"]
    missing = client.get(f"/v1/patients/{NHS_C}/coordinator/history", headers=auth("admin"))
    assert missing.status_code == 404


def test_journey_and_care_plans(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    plan = {
        "plan_id": "CP1",
        "goals": [{"goal_id": "G1", "description": "walk outdoors"}],
        "agreed_with": "patient",
        "review_due": "2020-01-01",
    }
    publish(
        envelope(),
        envelope("Admitted", at=later(24), organisation="RXH01", setting="acute"),
        envelope("ContactRecorded", at=later(2)),
        envelope("CarePlanAgreed", at=later(3), data=plan),
    )
    catch_up()
    journey = client.get(f"/v1/patients/{NHS_A}/journey", headers=auth("admin")).json()
    assert [e["type"] for e in journey["timeline"]] == [
        "PatientRegistered",
        "ContactRecorded",
        "CarePlanAgreed",
        "Admitted",
    ]
    assert [e["setting"] for e in journey["timeline"]] == [
        "primary_care",
        "community",
        "primary_care",
        "acute",
    ]
    assert [s["status"] for s in journey["spells"]] == ["open"]
    assert journey["projected_to"] == ledger.head_position()
    plans = client.get(f"/v1/patients/{NHS_A}/care-plans", headers=auth("admin")).json()
    [only] = plans["plans"]
    assert only["plan_id"] == "CP1" and only["review_overdue"] is True
    assert only["goals"][0]["status"] == "open"


def test_caseload_is_limited_to_the_coordinators_organisation(
    client: TestClient, publish: Callable, catch_up: Callable, ledger: Ledger
):
    publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope(nhs=NHS_B),
        envelope("CoordinatorAssigned", nhs=NHS_B, at=later(2), data={"coordinator": NURSE}),
        envelope(nhs=NHS_C),
        envelope("CoordinatorAssigned", nhs=NHS_C, at=later(1), data={"coordinator": OTHER_NURSE}),
    )
    catch_up()
    mine = client.get("/v1/coordinators/N100/caseload", headers=auth("coordinator"))
    assert mine.status_code == 200
    people = mine.json()["people"]
    assert [p["nhs_number"] for p in people] == [NHS_A, NHS_B]  # longest-held first
    assert people[0]["patient_id"] == str(ledger.patient_id(NHS_A))
    theirs = client.get("/v1/coordinators/N900/caseload", headers=auth("coordinator"))
    assert theirs.status_code == 403
    assert (
        client.get("/v1/coordinators/N900/caseload", headers=auth("admin")).json()["people"][0][
            "nhs_number"
        ]
        == NHS_C
    )
    nobody = client.get("/v1/coordinators/X1/caseload", headers=auth("coordinator"))
    assert nobody.status_code == 200 and nobody.json()["people"] == []


def test_unassigned_longest_first_and_filtered_by_relationship(
    client: TestClient, publish: Callable, catch_up: Callable
):
    publish(
        envelope(nhs=NHS_A, at=later(10)),
        envelope(nhs=NHS_B, at=later(0)),
        # C is registered at practice Y99999, which may then assign and release C's
        # coordinator (the authority rules, domain/authority.py).
        envelope(
            nhs=NHS_C,
            at=later(5),
            organisation="Y99999",
            data={"practice": "Y99999", "gp_id": "G1234567"},
        ),
        envelope(
            "CoordinatorAssigned",
            nhs=NHS_C,
            at=later(6),
            organisation="Y99999",
            data={"coordinator": NURSE},
        ),
        envelope(
            "CoordinatorReleased",
            nhs=NHS_C,
            at=later(7),
            organisation="Y99999",
            data={"coordinator_id": "N100"},
        ),
    )
    catch_up()
    everyone = client.get("/v1/unassigned", headers=auth("admin")).json()
    assert [p["nhs_number"] for p in everyone["people"]] == [NHS_B, NHS_C, NHS_A]
    assert everyone["people"][0]["days"] >= 0 and everyone["next_offset"] is None
    page = client.get("/v1/unassigned", params={"limit": 2}, headers=auth("admin")).json()
    assert len(page["people"]) == 2 and page["next_offset"] == 2
    rest = client.get("/v1/unassigned", params={"offset": 2}, headers=auth("admin")).json()
    assert [p["nhs_number"] for p in rest["people"]] == [NHS_A]
    # RYX01 once coordinated C (the nurse), Y99999 published C's events.
    ryx = client.get("/v1/unassigned", headers=auth("coordinator")).json()
    assert [p["nhs_number"] for p in ryx["people"]] == [NHS_C]
    y99 = client.get("/v1/unassigned", headers=auth("other-coordinator")).json()
    assert [p["nhs_number"] for p in y99["people"]] == [NHS_C]
    other = client.get(f"/v1/patients/{NHS_B}/journey", headers=auth("coordinator"))
    assert other.status_code == 404  # outside the care relationship: as if not registered


def test_auditors_read_every_persons_coordination_views_logged(
    client: TestClient, publish: Callable, catch_up: Callable
):
    """An auditor answering "my coordinator changed and nobody told me" reads the
    person's views without a care relationship; each read is in the access log."""
    publish(
        envelope(nhs=NHS_C),
        envelope("CoordinatorAssigned", nhs=NHS_C, at=later(1), data={"coordinator": OTHER_NURSE}),
    )
    catch_up()
    paths = [f"/v1/patients/{NHS_C}/{view}" for view in ("coordinator", "journey", "care-plans")]
    for path in paths:
        assert client.get(path, headers=auth("other-coordinator")).status_code == 200
        assert client.get(path, headers=auth("coordinator")).status_code == 404
        assert client.get(path, headers=auth("auditor")).status_code == 200, path
        assert client.get(path, headers=auth("evaluator")).status_code == 403
    log = client.get("/v1/access-log", headers=auth("auditor")).json()["entries"]
    audited = [e["endpoint"] for e in log if e["role"] == "auditor"]
    assert audited == [
        "GET /v1/patients/{nhs}/coordinator",
        "GET /v1/patients/{nhs}/journey",
        "GET /v1/patients/{nhs}/care-plans",
    ]
