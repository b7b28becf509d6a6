"""GET /v1/patients/{nhs}/replay on hand-written journeys: as_of (occurred time T) and
known_at (ledger time K), computed from the events even with no projection run."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from domain.ledger import Ledger
from tests.envelopes import NHS_A, envelope, later, retraction
from tests.fixtures_api import auth

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}
SOCIAL_WORKER = {
    "id": "S200",
    "role": "social_worker",
    "organisation": "SC001",
    "setting": "social_care",
}


def replay(client: TestClient, **params: Any) -> dict[str, Any]:
    query = {k: v.isoformat() for k, v in params.items()}
    response = client.get(f"/v1/patients/{NHS_A}/replay", params=query, headers=auth("auditor"))
    assert response.status_code == 200, response.text
    return response.json()


def recorded_at(ledger: Ledger, event_id: str) -> datetime:
    return ledger.event_status(event_id)["recorded_at"]  # type: ignore[index]


def who(state: dict[str, Any]) -> str | None:
    answer = state["coordinator_as_of"]["coordinator"]
    return None if answer is None else answer["id"]


def test_late_recorded_handoff(client: TestClient, publish: Callable, ledger: Ledger):
    """The handoff occurred at +3h but reached the ledger after everything else: asked
    about +5h, the ledger knew the nurse until the handoff was recorded, then the
    social worker."""
    first = publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        envelope("ContactRecorded", at=later(4)),
    )
    before_handoff = recorded_at(ledger, first[-1]["event_id"])
    [handoff] = publish(
        envelope(
            "CoordinatorHandedOff",
            at=later(3),
            setting="community",
            data={"from_id": "N100", "to": SOCIAL_WORKER},
        )
    )
    after_handoff = recorded_at(ledger, handoff["event_id"])
    assert before_handoff < after_handoff

    old = replay(client, as_of=later(5), known_at=before_handoff)
    assert who(old) == "N100" and old["coordinator"]["handoffs"] == 0
    assert [e["type"] for e in old["timeline"]] == [
        "PatientRegistered",
        "CoordinatorAssigned",
        "ContactRecorded",
    ]
    new = replay(client, as_of=later(5), known_at=after_handoff)
    assert who(new) == "S200" and new["coordinator"]["handoffs"] == 1
    assert new["coordinator_as_of"]["named"] is True
    # The handoff lands where it occurred, between the assignment and the contact.
    assert [e["type"] for e in new["timeline"]] == [
        "PatientRegistered",
        "CoordinatorAssigned",
        "CoordinatorHandedOff",
        "ContactRecorded",
    ]
    assert [(i["coordinator_id"], i["named"]) for i in new["coordinator_intervals"]] == [
        ("G1234567", False),
        ("N100", True),
        ("S200", True),
    ]
    # Knowing everything, at +2h the nurse still coordinated; before +1h the practice.
    assert who(replay(client, as_of=later(2))) == "N100"
    at_half = replay(client, as_of=later(0.5))
    assert who(at_half) == "G1234567" and at_half["coordinator_as_of"]["named"] is False
    # Before anything occurred: no journey, nobody.
    assert who(replay(client, as_of=later(-1))) is None
    # Known at a time before anything was recorded: nothing at all.
    empty = replay(client, known_at=before_handoff - timedelta(days=1))
    assert empty["events"] == 0 and empty["coordinator"]["journey"] == "none"


def test_retracted_assignment_is_undone_from_when_the_retraction_is_known(
    client: TestClient, publish: Callable, ledger: Ledger
):
    assignment = envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE})
    _, assigned = publish(envelope(), assignment)
    [undo] = publish(retraction(assignment, at=later(2)))
    before = replay(client, known_at=recorded_at(ledger, assigned["event_id"]))
    assert who(before) == "N100" and before["coordinator"]["named"] is True
    after = replay(client, known_at=recorded_at(ledger, undo["event_id"]))
    assert who(after) == "G1234567" and after["coordinator"]["named"] is False
    statuses = {e["type"]: e["status"] for e in after["timeline"]}
    assert statuses["CoordinatorAssigned"] == "retracted"
    kinds = {f["kind"] for f in after["quality_findings"]}
    assert "retracted" in kinds


def test_spells_and_care_plans_as_of(client: TestClient, publish: Callable):
    plan = {
        "plan_id": "CP1",
        "goals": [{"goal_id": "G1", "description": "walk outdoors"}],
        "agreed_with": "both",
        "review_due": "2026-04-01",
    }
    publish(
        envelope(),
        envelope("Admitted", at=later(24), organisation="RXH01", setting="acute"),
        envelope("Discharged", at=later(24 * 4), organisation="RXH01", setting="acute"),
        envelope("CarePlanAgreed", at=later(24 * 5), data=plan),
    )
    during = replay(client, as_of=later(48))
    assert [s["encounter_id"] for s in during["open_spells"]] == ["E1"]
    assert during["care_plans"] == []
    after = replay(client, as_of=later(24 * 6))
    assert after["open_spells"] == []
    [spell] = after["spells"]
    assert spell["status"] == "closed" and spell["length_of_stay_days"] == 3
    [agreed] = after["care_plans"]
    assert agreed["plan_id"] == "CP1" and agreed["status"] == "active"
    assert agreed["review_overdue"] is False
    overdue = replay(client, as_of=datetime.fromisoformat("2026-04-02T12:00:00+00:00"))
    assert overdue["care_plans"][0]["review_overdue"] is True


def test_replay_needs_no_projection_and_naive_times_are_refused(
    client: TestClient, publish: Callable
):
    publish(envelope(), envelope("CoordinatorAssigned", at=later(1)))
    # The projections never ran: the coordinator endpoint has nothing, replay has it all.
    assert client.get(f"/v1/patients/{NHS_A}/coordinator", headers=auth("admin")).status_code == 404
    assert who(replay(client)) == "N100"
    naive = client.get(
        f"/v1/patients/{NHS_A}/replay",
        params={"as_of": "2026-03-02T12:00:00"},
        headers=auth("auditor"),
    )
    assert naive.status_code == 422
    assert naive.json()["errors"] == [{"loc": "query.as_of", "msg": "give a UTC offset"}]
    garbage = client.get(
        f"/v1/patients/{NHS_A}/replay", params={"known_at": "yesterday"}, headers=auth("auditor")
    )
    assert garbage.status_code == 422
    assert garbage.json()["errors"][0]["loc"] == "query.known_at"
