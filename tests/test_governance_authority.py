"""Authority per organisation, on every way in (they all go through the ledger's append
judgement, ``domain/authority.py``): retractions only by the target's publisher,
coordinator facts only by a party to the role or the registered practice; refusals name
the rule. A coordinator's access follows standing facts and lapses (issue 11)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cli.app import app as cli
from domain import authority
from domain.ledger import Ledger
from domain.settings import Settings, get_settings
from tests.envelopes import NHS_A, envelope, later, retraction
from tests.fixtures_api import auth

NURSE = {"id": "N100", "role": "community_nurse", "organisation": "RYX01", "setting": "community"}
MATRON = {"id": "M7", "role": "specialist_nurse", "organisation": "RXH01", "setting": "acute"}


def test_the_rules_as_a_pure_function():
    person = authority.PersonAuthority()
    person.learn("PatientRegistered", {"practice": "A81001"})
    person.learn("CoordinatorAssigned", {"coordinator": NURSE})
    assigned = {"coordinator": MATRON}
    assert authority.refusal("CoordinatorAssigned", "RXH01", assigned, person) is None
    assert authority.refusal("CoordinatorAssigned", "A81001", assigned, person) is None
    refused = authority.refusal("CoordinatorAssigned", "Y99999", assigned, person)
    assert refused is not None and refused.startswith("rule coordination-by-party")
    handoff = {"from_id": "N100", "to": MATRON}
    for org in ("RYX01", "RXH01", "A81001"):  # giving up, taking over, the practice
        assert authority.refusal("CoordinatorHandedOff", org, handoff, person) is None
    assert authority.refusal("CoordinatorHandedOff", "Y99999", handoff, person)
    release = {"coordinator_id": "N100"}
    assert authority.refusal("CoordinatorReleased", "RYX01", release, person) is None
    assert authority.refusal("CoordinatorReleased", "RXH01", release, person)
    assert (
        authority.refusal("EventRetracted", "A81001", {}, person, target_organisation="A81001")
        is None
    )
    other = authority.refusal("EventRetracted", "RXH01", {}, person, target_organisation="A81001")
    assert other is not None and other.startswith("rule retraction-by-publisher")
    assert authority.refusal("ContactRecorded", "Y99999", {}, person) is None


def test_another_organisation_cannot_retract_or_move_coordination_over_http(
    client: TestClient, publish: Callable, ledger: Ledger
):
    registered, assigned = publish(
        envelope(), envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE})
    )
    target = {**envelope(), "event_id": registered["event_id"]}
    hostile = retraction(target, at=later(2), organisation="RXH01")
    response = client.post("/v1/events", json=hostile, headers=auth("other-publisher"))
    assert response.status_code == 422, response.text
    assert "rule retraction-by-publisher" in response.json()["detail"]
    takeover = envelope(
        "CoordinatorHandedOff",
        at=later(3),
        organisation="RXH01",
        setting="acute",
        data={"from_id": "N100", "to": {**MATRON, "id": "M8", "organisation": "RXH02"}},
    )
    response = client.post("/v1/events", json=takeover, headers=auth("other-publisher"))
    assert response.status_code == 422
    assert "rule coordination-by-party" in response.json()["detail"]
    # The practice (the test publisher, A81001) may; so may an administrator.
    own = retraction(target, at=later(4))
    assert client.post("/v1/events", json=own, headers=auth("publisher")).status_code == 201
    admin = retraction(
        {**envelope(), "event_id": assigned["event_id"]}, at=later(5), organisation="RXH01"
    )
    assert client.post("/v1/events", json=admin, headers=auth("admin")).status_code == 201


def test_files_and_batches_are_held_to_the_same_rules(
    ledger: Ledger, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    first = envelope()
    lines = [
        first,
        envelope("CoordinatorAssigned", at=later(1), data={"coordinator": NURSE}),
        retraction(first, at=later(2), organisation="RXH01"),
        envelope(
            "CoordinatorReleased",
            at=later(3),
            organisation="Y99999",
            data={"coordinator_id": "N100"},
        ),
        envelope(
            "CoordinatorReleased",
            at=later(4),
            organisation="RYX01",
            setting="community",
            data={"coordinator_id": "N100"},
        ),
    ]
    path = tmp_path / "feed.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    monkeypatch.setenv("CAREJOURNEY_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["ingest", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "line 3: rejected: source.organisation: rule retraction-by-publisher" in result.stderr
    assert "line 4: rejected: source.organisation: rule coordination-by-party" in result.stderr
    assert ledger.counts_by_type() == {
        "CoordinatorAssigned": 1,
        "CoordinatorReleased": 1,
        "PatientRegistered": 1,
    }


def _coordinator_reads(client: TestClient) -> int:
    return client.get(f"/v1/patients/{NHS_A}/journey", headers=auth("coordinator")).status_code


def test_care_relationship_ends_with_a_retracted_contact_and_lapses(
    ledger: Ledger, api_settings: Settings, catch_up: Callable
):
    # Registered at another practice; the coordinator key's organisation (RYX01) only
    # ever recorded one contact, and that was the wrong patient.
    registered = envelope(organisation="Y99999", data={"practice": "Y99999"})
    contact = envelope("ContactRecorded", at=later(1), organisation="RYX01", setting="community")
    assert ledger.append_batch([registered, contact]).counts()["recorded"] == 2
    catch_up()
    with TestClient(create_app(api_settings, ledger)) as client:
        assert _coordinator_reads(client) == 200
        wrong = retraction(contact, at=later(2), organisation="RYX01", setting="community")
        assert ledger.append(wrong).status == "recorded"
        catch_up()
        assert _coordinator_reads(client) == 404  # the retraction grants nothing either
        again = envelope("ContactRecorded", at=later(3), organisation="RYX01", setting="community")
        assert ledger.append(again).status == "recorded"
        catch_up()
        assert _coordinator_reads(client) == 200
    lapsed = api_settings.model_copy(update={"care_relationship_days": 1})
    with TestClient(create_app(lapsed, ledger)) as client:
        # The contact occurred in March 2026: more than a day ago, so it lapsed.
        ledger.settings = lapsed
        assert _coordinator_reads(client) == 404


def test_kafka_messages_are_held_to_the_same_rules(ledger: Ledger):
    """The consumer's commit path (``consumers/feed.record_batch``, as ``carejourney
    consume`` runs it): a hostile retraction is a dead letter naming the rule."""
    from kafka.consumer.fetcher import ConsumerRecord

    from consumers.events import envelope_feed
    from consumers.feed import record_batch

    first = envelope()
    hostile = retraction(first, at=later(1), organisation="RXH01")

    def record(offset: int, value: dict) -> ConsumerRecord:
        body = json.dumps(value).encode()
        return ConsumerRecord(
            "t.auth", 0, -1, offset, 0, 0, NHS_A.encode(), body, [], None, 10, len(body), -1
        )

    feed = envelope_feed(ledger.settings, ["t.auth"])
    record_batch(ledger, feed, [record(0, first), record(1, hostile)], {("t.auth", 0): None})
    with ledger.connection() as conn:
        rows = conn.execute('SELECT "offset", reason FROM consumer_rejections').fetchall()
    assert [(r["offset"], r["reason"].split(":")[0:2]) for r in rows] == [
        (1, ["source.organisation", " rule retraction-by-publisher"])
    ]
    assert ledger.counts_by_type() == {"PatientRegistered": 1}
