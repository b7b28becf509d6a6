"""The pure folds on hand-built journeys: the edge cases issue 3 names, merges, replay."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from projections import care_plans, coordinators, quality, referrals, timeline
from projections.fold import CANCELLED, RETRACTED, STANDING, people, prepare
from projections.replay import replay
from tests.envelopes import T0
from tests.projection_events import OTHER, PATIENT, Ledger, fact, recorded, retract


def hours(h: float):
    return T0 + timedelta(hours=h)


def named(intervals):
    return [(i.coordinator_id, i.named, i.valid_from, i.valid_to) for i in intervals]


def kinds(person):
    return sorted((f.kind, f.event_type) for f in quality.fold(person))


REG = "PatientRegistered"


def handoff(frm: str, to: str, at: float) -> dict:
    return fact(
        "CoordinatorHandedOff",
        at,
        {
            "from_id": frm,
            "to": {
                "id": to,
                "role": "specialist_nurse",
                "organisation": "RYX01",
                "setting": "community",
            },
        },
    )


# -- coordinators -------------------------------------------------------------------------


def test_handoff_delivered_before_its_assignment_lands_where_it_occurred() -> None:
    reg, assigned, handed = fact(REG, 0), fact("CoordinatorAssigned", 1), handoff("N100", "S200", 2)
    ledger = Ledger()
    ledger.deliver(reg, handed)
    early = prepare(ledger.events)
    assert [f.kind for f in coordinators.fold(early).findings] == [
        "handoff_from_non_coordinator"
    ]  # the assignment is not known yet
    ledger.deliver(assigned)
    person = prepare(ledger.events)
    fold = coordinators.fold(person)
    assert named(fold.intervals) == [
        ("G1234567", False, hours(0), hours(1)),
        ("N100", True, hours(1), hours(2)),
        ("S200", True, hours(2), None),
    ]
    assert fold.findings == ()
    assert fold.status.handoffs == 1 and fold.status.coordinator_id == "S200"
    assert kinds(person) == [("out_of_order", "CoordinatorAssigned")]


def test_retraction_of_a_handoff_removes_it_and_retracting_that_restores_it() -> None:
    reg, assigned, handed = fact(REG, 0), fact("CoordinatorAssigned", 1), handoff("N100", "S200", 2)
    undo = retract(handed, 3)
    person = prepare(recorded(reg, assigned, handed, undo))
    fold = coordinators.fold(person)
    assert named(fold.intervals)[-1] == ("N100", True, hours(1), None)
    assert fold.status.handoffs == 0
    line = timeline.fold(person)
    status = {e.event_id: (e.status, e.voided_by) for e in line.entries}
    assert status[handed["event_id"]] == (RETRACTED, undo["event_id"])
    assert ("retracted", "CoordinatorHandedOff") in kinds(person)

    redo = retract(undo, 4)
    person = prepare(recorded(reg, assigned, handed, undo, redo))
    assert coordinators.fold(person).status.coordinator_id == "S200"
    entries = {e.event_id: e.status for e in timeline.fold(person).entries}
    assert entries[handed["event_id"]] == STANDING
    assert entries[undo["event_id"]] == RETRACTED


def test_two_handoffs_at_the_same_instant_are_ordered_by_position() -> None:
    reg, assigned = fact(REG, 0), fact("CoordinatorAssigned", 1)
    first, second = handoff("N100", "S200", 2), handoff("S200", "T300", 2)
    fold = coordinators.fold(prepare(recorded(reg, assigned, first, second)))
    assert named(fold.intervals)[1:] == [
        ("N100", True, hours(1), hours(2)),
        ("S200", True, hours(2), hours(2)),  # zero-length: no "as of" ever selects it
        ("T300", True, hours(2), None),
    ]
    assert fold.findings == () and fold.status.handoffs == 2

    swapped = coordinators.fold(prepare(recorded(reg, assigned, second, first)))
    assert swapped.status.coordinator_id == "S200"  # the later position wins the tie
    assert [f.kind for f in swapped.findings] == ["handoff_from_non_coordinator"] * 2


def test_release_leaves_the_practice_answering_unnamed_and_closing_ends_coordination() -> None:
    reg, assigned = fact(REG, 0), fact("CoordinatorAssigned", 1)
    released = fact("CoordinatorReleased", 5, {"coordinator_id": "N100"})
    wrong = fact("CoordinatorReleased", 4, {"coordinator_id": "X999"})
    fold = coordinators.fold(prepare(recorded(reg, assigned, released, wrong)))
    assert named(fold.intervals)[-1] == ("G1234567", False, hours(5), None)
    assert fold.status.named is False and fold.status.unnamed_since == hours(5)
    assert fold.status.first_named_at == hours(1)
    assert [f.kind for f in fold.findings] == ["release_of_non_coordinator"]

    closed = fact("JourneyClosed", 9)
    fold = coordinators.fold(prepare(recorded(reg, assigned, closed)))
    assert named(fold.intervals)[-1] == ("N100", True, hours(1), hours(9))
    assert fold.status.journey == "closed" and fold.status.coordinator_id is None


def test_each_interval_names_who_recorded_its_change_why_and_both_clocks() -> None:
    reg, assigned = fact(REG, 0), fact("CoordinatorAssigned", 1)
    handed = handoff("N100", "S200", 2)
    handed["data"]["reason"] = "moved to the falls team"
    ledger = Ledger()
    ledger.deliver(reg, assigned)
    late = ledger.deliver(handed)[0]
    late = dataclasses.replace(
        late,
        source={"organisation": "RYX01", "system": "hl7v2:RIO", "setting": "community"},
        recorded_by={"id": "N042", "role": "community_nurse"},
    )
    events = [*ledger.events[:2], late]
    fold = coordinators.fold(prepare(events))
    first, second, third = fold.intervals
    assert (first.opened_position, first.publisher, first.source_system) == (1, "A81001", "test")
    assert first.reason is None and first.way_in is None and first.recorder_id is None
    assert first.closed_by == assigned["event_id"] and first.closed_position == 2
    assert first.closed_recorded_at == events[1].recorded_at
    assert (third.opened_by, third.opened_position) == (handed["event_id"], 3)
    assert third.valid_from == hours(2) and third.opened_recorded_at == late.recorded_at
    assert (third.publisher, third.source_system, third.way_in) == ("RYX01", "hl7v2:RIO", "adt")
    assert (third.recorder_id, third.recorder_role) == ("N042", "community_nurse")
    assert third.reason == "moved to the falls team"
    assert second.closed_position == 3 and third.closed_position is None
    assert third.closed_recorded_at is None


def test_assignment_before_registration_is_kept_and_flagged() -> None:
    assigned, reg = fact("CoordinatorAssigned", -1), fact(REG, 0)
    person = prepare(recorded(assigned, reg))
    fold = coordinators.fold(person)
    assert named(fold.intervals) == [("N100", True, hours(0), None)]
    assert [f.kind for f in fold.findings] == ["outside_journey"]


# -- hospital spells -------------------------------------------------------------------


def test_discharge_delivered_before_its_admission_makes_one_spell() -> None:
    admitted, discharged = fact("Admitted", 10), fact("Discharged", 60)
    ledger = Ledger()
    ledger.deliver(fact(REG, 0), discharged)
    early = timeline.fold(prepare(ledger.events))
    assert early.spells == ()
    assert [f.kind for f in early.findings] == ["discharge_without_admission"]
    ledger.deliver(admitted)
    spells = timeline.fold(prepare(ledger.events))
    assert spells.findings == ()
    [spell] = spells.spells
    assert (spell.admitted_at, spell.discharged_at) == (hours(10), hours(60))
    assert spell.length_of_stay_days == 2 and spell.status == "closed"


def test_discharge_that_occurred_before_any_admission_is_flagged() -> None:
    line = timeline.fold(prepare(recorded(fact("Discharged", 5), fact("Admitted", 10))))
    [spell] = line.spells
    assert spell.status == "open"
    assert [f.kind for f in line.findings] == ["discharge_without_admission"]


def test_cancel_of_a_discharge_voids_it_even_before_it_arrives() -> None:
    admitted, premature = fact("Admitted", 10), fact("Discharged", 20)
    cancel, real = fact("DischargeCancelled", 21), fact("Discharged", 40)
    ledger = Ledger()
    ledger.deliver(admitted, cancel)
    early = prepare(ledger.events)
    assert [f.kind for f in early.findings] == ["cancel_without_target"]
    ledger.deliver(premature, real)
    person = prepare(ledger.events)
    [spell] = timeline.fold(person).spells
    assert spell.discharged_at == hours(40)
    status = {
        e.event.event_id: (e.status, e.voided_by and e.voided_by.event_id) for e in person.entries
    }
    assert status[premature["event_id"]] == (CANCELLED, cancel["event_id"])
    assert status[real["event_id"]] == (STANDING, None)
    assert "cancel_without_target" not in [f.kind for f in person.findings]


def test_cancel_never_voids_what_occurred_after_it_and_takes_the_latest_before() -> None:
    admitted, transfer1 = fact("Admitted", 0), fact("Transferred", 2)
    transfer2 = fact(
        "Transferred", 3, {"encounter_id": "E1", "from_location": "Ward 7", "to_location": "ICU"}
    )
    cancel, later = fact("TransferCancelled", 4), fact("Transferred", 5)
    person = prepare(recorded(admitted, transfer1, transfer2, cancel, later))
    status = {e.event.event_id: e.status for e in person.entries}
    assert status[transfer2["event_id"]] == CANCELLED
    assert status[transfer1["event_id"]] == status[later["event_id"]] == STANDING
    [spell] = timeline.fold(person).spells
    assert len(spell.transfers) == 2 and spell.location == "Ward 7"


def test_cancelled_admission_leaves_no_spell() -> None:
    person = prepare(
        recorded(fact("Admitted", 0), fact("AdmissionCancelled", 1), fact("Discharged", 8))
    )
    line = timeline.fold(person)
    assert line.spells == ()
    assert [f.kind for f in line.findings] == ["discharge_without_admission"]


# -- plans, referrals, arrivals -------------------------------------------------------------


def test_care_plan_goals_reviews_and_plan_findings() -> None:
    person = prepare(
        recorded(
            fact("CarePlanAgreed", 0),
            fact("CarePlanRevised", 1),
            fact("CarePlanRevised", 2, {"plan_id": "P1", "dropped": ["g7"]}),
            fact("CarePlanReviewed", 3),
            fact("CarePlanClosed", 4),
            fact("CarePlanReviewed", 5),
        )
    )
    fold = care_plans.fold(person)
    [plan] = fold.plans
    assert plan.status == "closed" and plan.reviews == 1 and plan.revisions == 2
    assert plan.review_due == date(2026, 9, 1)
    assert [(g["goal_id"], g["status"]) for g in plan.goals] == [("g1", "achieved"), ("g2", "open")]
    assert [f.kind for f in fold.findings] == ["unknown_goal", "unknown_plan"]
    active = care_plans.fold(prepare(recorded(fact("CarePlanAgreed", 0)))).plans[0]
    assert care_plans.review_overdue(active, date(2026, 6, 2))
    assert not care_plans.review_overdue(active, date(2026, 6, 1))


def test_referral_waits_are_london_calendar_days_and_unknown_ones_are_flagged() -> None:
    made = fact("ReferralMade", T0.replace(month=3, day=28, hour=23, minute=30))
    seen = fact("FirstContactMade", T0.replace(month=3, day=29, hour=23, minute=30))
    # 23:30 UTC on the 29th is 00:30 BST on the 30th in London: two calendar days.
    stray = fact("ReferralAccepted", 1, {"referral_id": "R9"})
    fold = referrals.fold(prepare(recorded(made, seen, stray)))
    [ref] = fold.referrals
    assert ref.status == "first_contact" and ref.wait_days == 2
    assert [f.kind for f in fold.findings] == ["unknown_referral"]


def test_late_arrivals_are_judged_against_the_journey_not_the_wall_clock() -> None:
    reg, contact = fact(REG, 0), fact("ContactRecorded", 24 * 30)
    backfill = prepare(recorded(reg, contact))
    assert quality.fold(backfill) == ()  # recorded long after, but in order
    late = fact("ContactRecorded", 24 * 2)
    soon = fact("ContactRecorded", 24 * 29)
    found = kinds(prepare(recorded(reg, contact, late, soon)))
    assert found == [("late_arrival", "ContactRecorded"), ("out_of_order", "ContactRecorded")]


# -- merges ---------------------------------------------------------------------------------


def merge(survivor_fact_at: float, merged=OTHER, survivor=PATIENT) -> dict:
    return fact(
        "PatientsMerged", survivor_fact_at, {"merged_patient_id": str(merged)}, patient=survivor
    )


def test_a_standing_merge_folds_both_streams_and_a_retracted_one_neither() -> None:
    mine = [fact(REG, 0), fact("CoordinatorAssigned", 2)]
    theirs = [fact("Admitted", 1, patient=OTHER), fact("Discharged", 30, patient=OTHER)]
    joined = merge(40)
    events = recorded(*mine, *theirs, joined)
    person = prepare(events)  # the survivor is inferred
    assert person.patient_id == PATIENT and person.streams == {PATIENT, OTHER}
    assert len(timeline.fold(person).spells) == 1
    assert {e.stream_patient_id for e in timeline.fold(person).entries} == {PATIENT, OTHER}
    assert set(people(events)) == {PATIENT}

    # The same facts told as one person's stream fold to the same rows.
    relabeled = recorded(*[dict(f, patient_id=PATIENT) for f in (*mine, *theirs)], joined)
    alone = prepare(relabeled, PATIENT)
    assert coordinators.fold(alone).intervals == coordinators.fold(person).intervals
    assert timeline.fold(alone).spells == timeline.fold(person).spells

    undone = recorded(*mine, *theirs, joined, retract(joined, 41))
    apart = people(undone)
    assert set(apart) == {PATIENT, OTHER}
    assert timeline.fold(prepare(apart[PATIENT], PATIENT)).spells == ()
    assert len(timeline.fold(prepare(apart[OTHER], OTHER)).spells) == 1


# -- replay -----------------------------------------------------------------------------------


def test_replay_answers_as_of_an_occurred_time_and_as_known_at_a_recorded_time() -> None:
    reg, assigned, handed = fact(REG, 0), fact("CoordinatorAssigned", 1), handoff("N100", "S200", 5)
    contact = fact("ContactRecorded", 6)
    events = recorded(reg, assigned, handed, contact, retract(contact, 7))
    handoff_known = events[2].recorded_at
    assert replay(events, as_of=hours(3))["coordinator"]["coordinator"]["id"] == "N100"
    assert replay(events, as_of=hours(5))["coordinator"]["coordinator"]["id"] == "S200"
    before = replay(events, known_at=handoff_known - timedelta(microseconds=1))
    assert before["coordinator"]["coordinator"]["id"] == "N100"
    assert before["position"] == 2
    # The retraction was recorded after the contact: known at the contact, it stands.
    at_contact = replay(events, known_at=events[3].recorded_at)
    assert [e["status"] for e in at_contact["timeline"]][-1] == "recorded"
    now = replay(events)
    assert [e["status"] for e in now["timeline"]][-2:] == ["retracted", "recorded"]
    assert now["coordinator_as_of"]["coordinator"]["id"] == "S200"
    assert [i["coordinator_id"] for i in now["coordinator_intervals"]] == [
        "G1234567",
        "N100",
        "S200",
    ]
