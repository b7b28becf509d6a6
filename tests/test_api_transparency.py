"""The transparency endpoints, the audit bundle round trip and the checkpoint feed:
proofs served over HTTP verify with the RFC's algorithms against the signed checkpoint;
a bundle verifies offline and names what an edit of the file breaks; checkpoints reach
the Kafka topic once each."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from consumers.broker import Broker
from consumers.checkpoints import CheckpointFeed
from domain import audit, merkle, note, transparency
from domain.evidence import build_bundle
from domain.ledger import Ledger
from tests.envelopes import NHS_A, NHS_B, envelope, later
from tests.fixtures_api import auth
from tests.fixtures_kafka import read_topic

ORIGIN = "test.example/ledger"


@pytest.fixture
def signer() -> note.Signer:
    return note.new_signer(ORIGIN)


def _issue(ledger: Ledger, signer: note.Signer) -> transparency.StoredCheckpoint:
    with ledger.connection() as conn:
        return transparency.issue_checkpoint(conn, signer, ORIGIN)


def _journey(ledger: Ledger) -> list[int]:
    placed = []
    for batch in (
        [envelope(), envelope(nhs=NHS_B)],
        [envelope("CaseIdentified", at=later(1)), envelope("ContactRecorded", at=later(2))],
        [envelope("ContactRecorded", nhs=NHS_B, at=later(3))],
    ):
        placed += [i.position for i in ledger.append_batch(batch).items]
    return placed


def test_checkpoint_and_proofs_over_http(
    client: TestClient, ledger: Ledger, signer: note.Signer
) -> None:
    assert client.get("/v1/transparency/checkpoint", headers=auth("auditor")).status_code == 404
    positions = _journey(ledger)
    first = _issue(ledger, signer)
    ledger.append_batch([envelope("ContactRecorded", at=later(4))])
    second = _issue(ledger, signer)
    assert (first.size, second.size) == (5, 6)
    assert _issue(ledger, signer).id == second.id  # the tree has not grown: the same one

    answer = client.get("/v1/transparency/checkpoint", headers=auth("evaluator"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    checkpoint = note.open_checkpoint(answer.text, signer.verifier, ORIGIN)
    assert checkpoint.size == 6 and answer.text == second.note
    assert client.get("/v1/transparency/checkpoint").status_code == 401

    for n, position in enumerate(positions):
        proof = client.get(
            "/v1/transparency/inclusion",
            params={"position": position},
            headers=auth("auditor"),
        ).json()
        assert proof["leaf_index"] == n and proof["tree_size"] == 6
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        leaf = base64.b64decode(proof["leaf_hash"])
        assert merkle.verify_inclusion(n, 6, leaf, hashes, checkpoint.root)
    older = client.get(
        "/v1/transparency/inclusion",
        params={"position": positions[0], "tree_size": 5},
        headers=auth("publisher"),
    ).json()
    assert base64.b64decode(older["root_hash"]) == first.root

    grown = client.get(
        "/v1/transparency/consistency", params={"from": 5, "to": 6}, headers=auth("auditor")
    )
    assert grown.status_code == 200
    hashes = [base64.b64decode(h) for h in grown.json()["hashes"]]
    assert merkle.verify_consistency(5, 6, first.root, second.root, hashes)
    assert audit.check_consistency(first.note, second.note, signer.verifier, hashes).ok

    beyond = client.get(
        "/v1/transparency/consistency", params={"from": 5, "to": 60}, headers=auth("auditor")
    )
    assert beyond.status_code == 404 and "beyond" in beyond.json()["detail"]
    missing = client.get(
        "/v1/transparency/inclusion", params={"position": 999}, headers=auth("auditor")
    )
    assert missing.status_code == 404
    bad = client.get("/v1/transparency/inclusion", params={"position": 0}, headers=auth("auditor"))
    assert bad.status_code == 422


def test_bundle_round_trip_and_each_edit_of_it_is_named(
    ledger: Ledger, signer: note.Signer, tmp_path: Path
) -> None:
    _journey(ledger)
    patient = ledger.patient_id(NHS_A)
    assert patient is not None
    bundle = build_bundle(
        ledger, patient, signer=signer, origin=ORIGIN, definitions_version="1.0.0"
    )
    assert [e["version"] for e in bundle["events"]] == [1, 2, 3]
    report = audit.verify_bundle(bundle, signer.verifier, ORIGIN)
    assert report.ok, report.failures
    assert report.events == 3 and report.checkpoint is not None and report.checkpoint.size == 5
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))  # JSON and back: nothing depends on Python types
    assert audit.verify_bundle(json.loads(path.read_text()), signer.verifier).ok

    def edited(change: Callable[[dict[str, Any]], None]) -> list[str]:
        copy = json.loads(json.dumps(bundle))
        change(copy)
        return audit.verify_bundle(copy, signer.verifier, ORIGIN).failures

    def content(b: dict[str, Any]) -> None:
        b["events"][1]["content"]["data"]["criteria"] = ["falls"]

    def clock(b: dict[str, Any]) -> None:
        b["events"][0]["recorded_at"] = "2020-01-01T00:00:00Z"

    def dropped(b: dict[str, Any]) -> None:
        del b["events"][1]

    def proof(b: dict[str, Any]) -> None:
        b["events"][2]["inclusion_proof"][0] = base64.b64encode(b"\0" * 32).decode()

    def signature(b: dict[str, Any]) -> None:
        b["checkpoint"] = b["checkpoint"].replace("\n5\n", "\n6\n")

    def notification(b: dict[str, Any]) -> None:
        b["events"][0]["notification_id"] += 1

    assert "content does not match its content hash" in edited(content)[0]
    assert "chain hash does not match" in edited(clock)[0]
    assert "version 3 after 1" in edited(dropped)[0]
    assert "inclusion proof fails" in edited(proof)[0]
    assert "does not verify" in edited(signature)[0]
    assert "notification id" in edited(notification)[0]
    other = note.new_signer(ORIGIN)
    assert "no signature by" in audit.verify_bundle(bundle, other.verifier).failures[0]
    assert "not ''" not in edited(lambda b: b.update(events=[]))[0]
    assert edited(lambda b: b.update(events=[])) == ["the bundle holds no events for this person"]


def test_bundle_as_known_at_a_time(ledger: Ledger, signer: note.Signer) -> None:
    ledger.append_batch([envelope(), envelope("CaseIdentified", at=later(1))])
    cut = datetime.now(UTC)
    ledger.append_batch([envelope("ContactRecorded", at=later(2))])
    patient = ledger.patient_id(NHS_A)
    assert patient is not None
    bundle = build_bundle(
        ledger, patient, signer=signer, origin=ORIGIN, definitions_version="1.0.0", known_at=cut
    )
    assert [e["type"] for e in bundle["events"]] == ["PatientRegistered", "CaseIdentified"]
    assert bundle["known_at"] is not None
    assert audit.verify_bundle(bundle, signer.verifier).ok


def test_checkpoints_reach_the_topic_once_each(
    ledger: Ledger, signer: note.Signer, kafka_broker: Broker, make_topic: Callable[[int], str]
) -> None:
    topic = make_topic(1)
    feed = CheckpointFeed(topic, kafka_broker)
    try:
        _journey(ledger)
        first = _issue(ledger, signer)
        assert feed.publish(ledger) == 1
        assert feed.publish(ledger) == 0  # tracked: not sent again
        ledger.append_batch([envelope("ContactRecorded", at=later(9))])
        second = _issue(ledger, signer)
        assert feed.publish(ledger) == 1
    finally:
        feed.close()
    records = read_topic(kafka_broker, topic, 2)
    assert [r.value.decode() for r in records] == [first.note, second.note]
    assert records[0].key == ORIGIN.encode()


def test_the_log_refuses_to_sign_an_inconsistent_tree(
    ledger: Ledger, signer: note.Signer, database_url: str
) -> None:
    from tests.tampering import superuser

    _journey(ledger)
    _issue(ledger, signer)
    with superuser(database_url) as conn:
        conn.execute(
            "UPDATE ledger_tree SET hashes = overlay(hashes PLACING sha256(hashes)"
            " || sha256(hashes) FROM 32 * leaf_count + 1) WHERE first_leaf = 2"
        )
    ledger.append_batch([envelope("ContactRecorded", at=later(9))])
    with pytest.raises(transparency.InconsistentLog):
        _issue(ledger, signer)
