"""Hand-worked journeys mapped to FHIR: handoffs, transfer chains, cancels, retractions
and merges give the resources and statuses worked out here by hand."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fhir.resources.R4B.bundle import Bundle

from domain.ledger import Ledger
from projections.fhir import vocabulary as v
from projections.fhir.bundle import intervals, person_bundle, resources_of, spells
from projections.fhir.resources import Subject
from tests.envelopes import envelope, retraction
from tests.journeys import Journey, when


def bundle_of(ledger: Ledger, journey: Journey) -> Bundle:
    for env in journey.events:
        result = ledger.append_batch([env])
        assert result.items[0].status in ("recorded", "duplicate"), result.items[0].reason()
    patient = ledger.patient_id(journey.nhs)
    assert patient is not None
    bundle = person_bundle(
        ledger.history(patient), patient_id=patient, subject=Subject(nhs_number=journey.nhs)
    )
    return Bundle.model_validate_json(bundle.model_dump_json())  # what a receiver parses


def kinds(resource: Any) -> set[str]:
    return {c.code for t in resource.type or () for c in t.coding or ()}


def provenance_of(bundle: Bundle, resource: Any) -> Any:
    ref = f"{resource.get_resource_type()}/{resource.id}"
    [found] = [p for p in resources_of(bundle, "Provenance") if p.target[0].reference == ref]
    return found


def test_handoffs_and_two_journeys(ledger: Ledger):
    j = Journey(0)  # registered 2025-01-01 09:00 with practice A81001, GP G100
    j.assign("2025-01-02 10:00", "N100")
    j.hand_off("2025-02-01 10:00", "N100", "S200", role="social_worker", organisation="SC001")
    j.release("2025-03-01 10:00", "S200")
    j.close("2025-04-01 10:00")
    j.add("PatientRegistered", "2025-06-01 09:00", {"practice": "B82002"})
    bundle = bundle_of(ledger, j)

    first, second = resources_of(bundle, "EpisodeOfCare")
    assert (first.status, second.status) == ("finished", "active")
    assert [(h.status, h.period.start, h.period.end) for h in first.statusHistory] == [
        ("active", when("2025-01-01 09:00"), when("2025-04-01 10:00")),
        ("finished", when("2025-04-01 10:00"), None),
    ]
    assert first.careManager.identifier.value == "S200"  # the last named coordinator
    assert second.careManager is None  # nobody named: the practice answers
    assert second.managingOrganization.identifier.value == "B82002"
    got = [
        (i["coordinator_id"], i["named"], i["valid_from"], i["valid_to"]) for i in intervals(bundle)
    ]
    assert got == [
        ("G100", False, when("2025-01-01 09:00"), when("2025-01-02 10:00")),
        ("N100", True, when("2025-01-02 10:00"), when("2025-02-01 10:00")),
        ("S200", True, when("2025-02-01 10:00"), when("2025-03-01 10:00")),
        ("G100", False, when("2025-03-01 10:00"), when("2025-04-01 10:00")),
        ("B82002", False, when("2025-06-01 09:00"), None),
    ]
    team, team2 = resources_of(bundle, "CareTeam")
    assert first.team[0].reference == f"CareTeam/{team.id}"
    assert team.status == "inactive" and team2.status == "active"
    roles = [
        (p.member.identifier.value, p.role[0].coding[0].code, p.role[0].text)
        for p in team.participant
    ]
    assert roles == [
        ("G100", "gp", "registered practice (default coordinator)"),
        ("N100", "community_nurse", "named coordinator"),
        ("S200", "social_worker", "named coordinator"),
        ("G100", "gp", "registered practice (default coordinator)"),
    ]
    assert team.participant[2].onBehalfOf.identifier.value == "SC001"
    # The practice answering by its own code is the Organization, not a Practitioner.
    assert team2.participant[0].member.type == "Organization"
    assert team2.participant[0].onBehalfOf is None
    [patient] = resources_of(bundle, "Patient")
    assert patient.identifier[0].system == v.NHS_NUMBER
    assert patient.generalPractitioner[0].identifier.value == "B82002"
    # The first journey's Provenance lists every fact behind it, with the ledger's proofs.
    events = {e.event_id: e for e in ledger.history(ledger.patient_id(j.nhs))}
    prov = provenance_of(bundle, first)
    assert prov.activity.coding[0].code == "UPDATE"
    listed = [UUID(e.what.identifier.value) for e in prov.entity]
    assert {events[i].type for i in listed} == {
        "PatientRegistered",
        "CoordinatorAssigned",
        "CoordinatorHandedOff",
        "CoordinatorReleased",
        "JourneyClosed",
    }
    for entity in prov.entity:
        ledger_ext = entity.extension[0]
        parts = {x.url: x for x in ledger_ext.extension}
        recorded = events[UUID(entity.what.identifier.value)]
        assert int(parts["position"].valueDecimal) == recorded.position
        assert parts["hash"].valueString == recorded.hash


def test_transfer_chain(ledger: Ledger):
    j = Journey(1)
    j.add(
        "Admitted",
        "2025-03-01 08:00",
        {"encounter_id": "E1", "hospital": "RXH01", "method": "emergency", "ward": "AMU"},
        organisation="RXH01",
        setting="acute",
    )
    j.add(
        "Transferred",
        "2025-03-02 12:00",
        {"encounter_id": "E1", "from_location": "AMU", "to_location": "Ward 7"},
        organisation="RXH01",
        setting="acute",
    )
    j.discharge("2025-03-05 10:00", "E1", destination="other_hospital")
    j.admit("2025-03-05 15:00", "E2", method="transfer", hospital="RYJ01")
    j.discharge("2025-03-12 11:00", "E2", hospital="RYJ01")
    bundle = bundle_of(ledger, j)
    encounters = resources_of(bundle, "Encounter")
    [stay] = [e for e in encounters if "hospital-stay" in kinds(e)]
    first, second = [e for e in encounters if "admission-spell" in kinds(e)]
    assert first.partOf.reference == second.partOf.reference == f"Encounter/{stay.id}"
    assert (stay.period.start, stay.period.end) == (
        when("2025-03-01 08:00"),
        when("2025-03-12 11:00"),
    )
    assert stay.length.value == 11
    assert [(loc.location.display, loc.status, loc.period.end) for loc in first.location] == [
        ("AMU", "completed", when("2025-03-02 12:00")),
        ("Ward 7", "completed", when("2025-03-05 10:00")),
    ]
    assert first.priority.coding[0].code == "EM"
    assert first.hospitalization.dischargeDisposition.coding[0].code == "other-hcf"
    assert second.hospitalization.admitSource.coding[0].code == "hosp-trans"
    assert second.hospitalization.dischargeDisposition.coding[0].code == "home"
    assert stay.hospitalization.dischargeDisposition.coding[0].code == "home"
    assert first.identifier[0].value == "E1"
    assert [(s["hospital"], s["locations"], s["status"]) for s in spells(bundle)] == [
        ("RXH01", ["AMU", "Ward 7"], "closed"),
        ("RYJ01", [], "closed"),
    ]
    assert len(provenance_of(bundle, stay).entity) == 5


def test_cancels_are_entered_in_error(ledger: Ledger):
    j = Journey(2)
    j.admit("2025-03-01 08:00", "E1")
    j.add(
        "AdmissionCancelled",
        "2025-03-01 09:00",
        {"encounter_id": "E1"},
        organisation="RXH01",
        setting="acute",
    )
    j.admit("2025-04-01 08:00", "E2")
    j.discharge("2025-04-03 08:00", "E2")
    j.add(
        "DischargeCancelled",
        "2025-04-03 09:00",
        {"encounter_id": "E2"},
        organisation="RXH01",
        setting="acute",
    )
    bundle = bundle_of(ledger, j)
    spell_encounters = [
        e for e in resources_of(bundle, "Encounter") if "admission-spell" in kinds(e)
    ]
    statuses = sorted((e.period.start, e.status) for e in spell_encounters)
    assert statuses == [
        (when("2025-03-01 08:00"), "entered-in-error"),
        (when("2025-04-01 08:00"), "in-progress"),  # its discharge was cancelled
    ]
    cancelled = next(e for e in spell_encounters if e.status == "entered-in-error")
    prov = provenance_of(bundle, cancelled)
    assert prov.activity.coding[0].code == "NULLIFY"
    assert [e.role for e in prov.entity] == ["source", "revision"]


def test_retractions_are_entered_in_error(ledger: Ledger):
    j = Journey(3)
    contact = j.contact("2025-02-01 10:00")
    referral = j.refer("2025-02-02 10:00", "R1")
    plan = j.plan("2025-02-03 10:00", "P1", "2025-05-01")
    kept = j.refer("2025-02-04 10:00", "R2")
    j.first_contact("2025-02-10 10:00", "R2")
    for target in (contact, referral, plan):
        j.events.append(retraction(target, at=when("2025-02-05 10:00")))
    bundle = bundle_of(ledger, j)
    [contact_encounter] = [e for e in resources_of(bundle, "Encounter") if "contact" in kinds(e)]
    assert contact_encounter.status == "entered-in-error"
    requests = {r.identifier[0].value: r for r in resources_of(bundle, "ServiceRequest")}
    assert requests["R1"].status == "entered-in-error"
    assert requests["R2"].status == "completed"
    wait = {x.url: x for x in requests["R2"].extension[0].extension}
    assert wait["wait"].valueDuration.value == 6  # 4 to 10 February
    [care_plan] = resources_of(bundle, "CarePlan")
    assert care_plan.status == "entered-in-error"
    assert care_plan.contained[0].description.text == "walk to the shops"
    assert kept["event_id"] != referral["event_id"]


def test_care_plan_status_goals_and_review(ledger: Ledger):
    j = Journey(5)
    j.plan("2025-02-03 10:00", "P1", "2025-05-01")
    j.add("CarePlanRevised", "2025-03-01 10:00", {"plan_id": "P1", "achieved": ["G1"]})
    j.review("2025-04-20 10:00", "P1", "2025-08-01")
    bundle = bundle_of(ledger, j)
    [care_plan] = resources_of(bundle, "CarePlan")
    assert care_plan.status == "active"
    [goal] = care_plan.contained
    assert (goal.lifecycleStatus, goal.achievementStatus.coding[0].code) == (
        "completed",
        "achieved",
    )
    assert care_plan.goal[0].reference == f"#{goal.id}"
    done, due = care_plan.activity
    assert done.detail.status == "completed"
    assert (due.detail.status, str(due.detail.scheduledPeriod.start)) == ("scheduled", "2025-08-01")
    assert due.detail.statusReason.text == "review overdue"  # asked long after August 2025


def test_merge_joins_the_streams(ledger: Ledger):
    survivor, merged = Journey(6), Journey(7)
    merged.admit("2025-03-01 08:00", "E9")
    ledger.append_batch(merged.events)
    merged_id = str(ledger.patient_id(merged.nhs))
    survivor.events.append(
        envelope(
            "PatientsMerged",
            nhs=survivor.nhs,
            at=datetime.fromisoformat("2025-05-01T10:00:00+00:00"),
            data={"merged_nhs_number": merged.nhs},
        )
    )
    bundle = bundle_of(ledger, survivor)
    patients = {p.id: p for p in resources_of(bundle, "Patient")}
    survivor_id = str(ledger.patient_id(survivor.nhs))
    assert set(patients) == {survivor_id, merged_id}
    assert [(link.type, link.other.reference) for link in patients[survivor_id].link] == [
        ("replaces", f"Patient/{merged_id}")
    ]
    assert patients[merged_id].active is False
    assert patients[merged_id].link[0].type == "replaced-by"
    [spell] = [e for e in resources_of(bundle, "Encounter") if "admission-spell" in kinds(e)]
    assert spell.subject.reference == f"Patient/{survivor_id}"  # the merged person's stay
    assert spell.identifier[0].value == "E9"
