"""``GET /v1/log``: the ledger as a catch-up subscription, no identifiers, in position
order, resumable from the last position seen."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, envelope, later
from tests.fixtures_api import auth


def test_log_pages_in_position_order_without_identifiers(
    client: TestClient, publish: Callable, ledger: Ledger
):
    publish(
        envelope(),
        envelope("CoordinatorAssigned", at=later(1)),
        envelope(nhs=NHS_B),
        envelope("Admitted", nhs=NHS_B, at=later(2)),
        envelope("PatientsMerged", at=later(3), data={"merged_nhs_number": NHS_B}),
    )
    seen, after = [], 0
    while True:
        page = client.get("/v1/log", params={"after": after, "limit": 2}, headers=auth("auditor"))
        assert page.status_code == 200, page.text
        body = page.json()
        seen += body["events"]
        if body["next_after"] == body["head"]:
            break
        after = body["next_after"]
    positions = [e["position"] for e in seen]
    assert positions == sorted(positions) and len(positions) == len(set(positions)) == 5
    text = str(seen)
    for secret in (NHS_A, NHS_B, str(ledger.patient_id(NHS_A)), str(ledger.patient_id(NHS_B))):
        assert secret not in text
    persons = {e["person"] for e in seen}
    assert len(persons) == 2
    [merge] = [e for e in seen if e["type"] == "PatientsMerged"]
    assert merge["data"]["merged_person"] in persons and "merged_patient_id" not in merge["data"]
    recorded = {e.event_id for e in ledger.history(ledger.patient_id(NHS_A))}
    assert {e["event_id"] for e in seen} >= {str(i) for i in recorded}
    assert all(e["hash"] and e["recorded_at"] for e in seen)
    assert client.get("/v1/log", headers=auth("coordinator")).status_code == 403
    assert client.get("/v1/log", headers=auth("admin")).status_code == 200
    empty = client.get("/v1/log", params={"after": 10**9}, headers=auth("auditor")).json()
    assert empty["events"] == [] and empty["next_after"] == 10**9
