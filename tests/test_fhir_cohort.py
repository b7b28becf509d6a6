"""FHIR out for the synthetic cohort: every resource validates against the R4B models
after a JSON round trip, and a Bundle read back gives the person's coordinator
intervals and admission spells exactly as the replay (the same folds) gives them."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from domain.ledger import Ledger
from domain.synthetic import delivery_order, generate_people
from projections.fhir.bundle import intervals, person_bundle, spells
from projections.fhir.resources import RESOURCE_TYPES, Subject, person_documents
from projections.fold import prepare
from projections.replay import replay

PEOPLE = 120


def _times(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@pytest.fixture
def cohort_ledger(ledger: Ledger) -> Ledger:
    envelopes = delivery_order(list(generate_people(people=PEOPLE, seed=3)), 3)
    for start in range(0, len(envelopes), 500):
        ledger.append_batch(envelopes[start : start + 500])
    return ledger


def test_cohort_bundles_validate_and_round_trip(cohort_ledger: Ledger):
    with cohort_ledger.connection() as conn:
        people = [r["patient_id"] for r in conn.execute("SELECT patient_id FROM ledger_heads")]
    assert len(people) == PEOPLE
    kinds: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for patient in people:
        events = cohort_ledger.history(patient)
        bundle = person_bundle(events, patient_id=patient, subject=Subject(nhs_number="9434765919"))
        text = bundle.model_dump_json()
        again = Bundle.model_validate_json(text)  # every entry re-validated by its model
        assert again.type == "collection"
        for entry in again.entry:
            kind = entry.resource.get_resource_type()
            assert kind in RESOURCE_TYPES
            assert entry.fullUrl.endswith(f"/{kind}/{entry.resource.id}")
            kinds[kind] += 1
            if kind == "Encounter":
                statuses[entry.resource.status] += 1
        targets = {
            ref.reference
            for p in (
                e.resource for e in again.entry if e.resource.get_resource_type() == "Provenance"
            )
            for ref in p.target
        }
        others = {
            f"{e.resource.get_resource_type()}/{e.resource.id}"
            for e in again.entry
            if e.resource.get_resource_type() != "Provenance"
        }
        assert targets == others  # one Provenance for every resource
        # The export writes each validated body: it parses back to the same resource.
        documents = person_documents(prepare(events, patient), Subject(nhs_number="9434765919"))
        assert len(documents) == len(again.entry)
        for (kind, body), entry in zip(documents, again.entry, strict=True):
            parsed = get_fhir_model_class(kind).model_validate(orjson.loads(orjson.dumps(body)))
            assert parsed.model_dump() == entry.resource.model_dump()
        state = replay(events, patient_id=patient)
        expected = [
            (
                i["coordinator_id"],
                i["role"],
                i["organisation"],
                i["named"],
                _times(i["valid_from"]),
                _times(i["valid_to"]),
            )
            for i in state["coordinator_intervals"]
        ]
        got = [
            (
                i["coordinator_id"],
                i["role"],
                i["organisation"],
                i["named"],
                i["valid_from"],
                i["valid_to"],
            )
            for i in intervals(again)
        ]
        assert got == expected
        expected_spells = sorted(
            (s["hospital"], _times(s["admitted_at"]), _times(s["discharged_at"]), s["status"])
            for s in state["spells"]
        )
        got_spells = sorted(
            (s["hospital"], s["admitted_at"], s["discharged_at"], s["status"])
            for s in spells(again)
        )
        assert got_spells == expected_spells
    assert set(kinds) == set(RESOURCE_TYPES)
    assert kinds["Patient"] >= PEOPLE
    assert statuses["entered-in-error"] > 0  # the cohort has cancels and retractions
