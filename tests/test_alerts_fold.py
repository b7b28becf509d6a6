"""Hand-worked journeys for the alerts fold (docs/alerts.md): each kind opens and closes
at the right facts, including retractions, cancels and late arrivals."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from projections import alerts, coordinators
from projections.alerts import Alert, alert_id
from projections.fold import prepare
from projections.replay import replay
from tests.envelopes import T0
from tests.projection_events import Ledger, fact, recorded, retract

H = 1.0  # hours
DAY = 24 * H
REG = fact("PatientRegistered", 0)
ASSIGN = fact("CoordinatorAssigned", 1)


def fold(events: list[Any]) -> tuple[Alert, ...]:
    person = prepare(events)
    return alerts.fold(person, coordinators.fold(person))


def of(found: tuple[Alert, ...], kind: str) -> list[Alert]:
    return [a for a in found if a.kind == kind]


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def contact(hours: float, with_id: str = "N100") -> dict[str, Any]:
    return fact(
        "ContactRecorded",
        hours,
        {
            "setting": "community",
            "mode": "phone",
            "with": {"id": with_id, "role": "community_nurse", "organisation": "RYX01"},
        },
    )


def informed(hours: float) -> dict[str, Any]:
    return fact(
        "PersonInformed",
        hours,
        {
            "by": {"id": "N100", "role": "community_nurse", "organisation": "RYX01"},
            "told": "patient",
            "about": "coordinator",
            "how": "phone",
        },
    )


def test_admission_opens_for_the_named_coordinator_and_closes_at_discharge() -> None:
    admitted = fact("Admitted", 10)
    discharged = fact("Discharged", 50)
    events = recorded(REG, ASSIGN, admitted, discharged)
    [alert] = of(fold(events), "admission")
    assert alert.coordinator_id == "N100" and alert.organisation == "RYX01"
    assert not alert.team_queue
    assert alert.opened_at == at(10) and alert.due == at(34)
    assert alert.positions == (3,) and alert.opened_position == 3
    assert alert.opened_recorded_at == events[2].recorded_at
    assert (alert.status, alert.close_reason, alert.closed_at) == ("closed", "discharged", at(50))
    assert alert.closed_position == 4
    assert alert.alert_id == alert_id("admission", admitted["event_id"])
    # Before the discharge is recorded it is open.
    [still] = of(fold(events[:3]), "admission")
    assert still.status == "open" and still.closed_at is None


def test_nobody_named_means_the_practice_team_queue() -> None:
    [alert] = of(fold(recorded(REG, fact("Admitted", 10))), "admission")
    assert alert.team_queue and alert.coordinator_id is None
    assert alert.organisation == "A81001"


def test_no_journey_no_alert() -> None:
    assert of(fold(recorded(fact("Admitted", 10))), "admission") == []


def test_open_alerts_follow_the_coordinator_and_closed_ones_keep_theirs() -> None:
    handoff = fact("CoordinatorHandedOff", 20)
    events = recorded(REG, ASSIGN, fact("Admitted", 10), handoff)
    [alert] = of(fold(events), "admission")
    assert alert.coordinator_id == "S200"  # open: the person's current coordinator
    events = recorded(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 15), handoff)
    [alert] = of(fold(events), "admission")
    assert alert.coordinator_id == "N100"  # closed before the handoff


def test_cancelled_admission_closes_its_alert_as_cancelled() -> None:
    cancel = fact("AdmissionCancelled", 12)
    events = recorded(REG, ASSIGN, fact("Admitted", 10), cancel)
    [alert] = of(fold(events), "admission")
    assert (alert.status, alert.close_reason, alert.closed_position) == ("closed", "cancelled", 4)


def test_retracted_admission_closes_its_alert_as_retracted() -> None:
    admitted = fact("Admitted", 10)
    events = recorded(REG, ASSIGN, admitted, retract(admitted, 30))
    [alert] = of(fold(events), "admission")
    assert (alert.status, alert.close_reason, alert.closed_position) == ("closed", "retracted", 4)


def test_discharge_is_due_in_72_hours_and_escalates_without_contact() -> None:
    events = recorded(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 50))
    found = fold(events)
    [discharge] = of(found, "discharge")
    assert discharge.opened_at == at(50) and discharge.due == at(50 + 72)
    assert discharge.status == "open" and "usual residence" in discharge.detail
    escalations = of(found, "follow_up_overdue")
    assert [(e.opened_at, e.due) for e in escalations] == [
        (at(50 + 72), at(50 + 7 * DAY)),
        (at(50 + 7 * DAY), None),
    ]
    assert all(e.status == "open" for e in escalations)
    assert len({e.alert_id for e in escalations}) == 2


def test_contact_within_72_hours_closes_the_discharge_and_nothing_escalates() -> None:
    events = recorded(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 50), contact(60))
    found = fold(events)
    [discharge] = of(found, "discharge")
    assert (discharge.status, discharge.close_reason, discharge.closed_at) == (
        "closed",
        "contact",
        at(60),
    )
    assert of(found, "follow_up_overdue") == []


def test_contact_after_4_days_closes_the_first_escalation_only_one_opened() -> None:
    events = recorded(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 50), contact(50 + 96))
    [escalation] = of(fold(events), "follow_up_overdue")
    assert escalation.opened_at == at(50 + 72)
    assert (escalation.status, escalation.close_reason) == ("closed", "contact")


def test_a_late_contact_that_occurred_in_time_removes_the_escalation() -> None:
    """The contact is recorded after the 72 h passed but occurred within them."""
    ledger = Ledger()
    ledger.deliver(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 50))
    assert len(of(fold(ledger.events), "follow_up_overdue")) == 2
    ledger.deliver(contact(55))
    assert of(fold(ledger.events), "follow_up_overdue") == []
    [discharge] = of(fold(ledger.events), "discharge")
    assert discharge.close_reason == "contact" and discharge.closed_position == 5


def test_an_adt_attendance_is_an_alert_and_never_follow_up() -> None:
    ledger = Ledger()
    ledger.deliver(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 50))
    attendance = fact(
        "ContactRecorded",
        60,
        {
            "setting": "acute",
            "mode": "face_to_face",
            "with": {"id": "AE", "role": "other", "organisation": "RXH01"},
        },
    )
    [event] = ledger.deliver(attendance)
    adt = dataclasses.replace(event, source={**event.source, "system": "hl7v2:RXH"})
    events = [*ledger.events[:-1], adt]
    found = fold(events)
    [seen] = of(found, "attendance")
    assert seen.opened_at == at(60) and seen.status == "open"
    [discharge] = of(found, "discharge")
    assert discharge.status == "open"  # an attendance is not follow-up


def test_referral_waiting_opens_after_the_threshold_and_closes_at_first_contact() -> None:
    made = fact("ReferralMade", 5)
    events = recorded(REG, ASSIGN, made)
    [waiting] = of(fold(events), "referral_waiting")
    assert waiting.opened_at == at(5 + 28 * DAY) and waiting.status == "open"
    events = recorded(REG, ASSIGN, made, fact("FirstContactMade", 5 + 30 * DAY))
    [waiting] = of(fold(events), "referral_waiting")
    assert (waiting.status, waiting.close_reason) == ("closed", "first_contact")
    in_time = recorded(REG, ASSIGN, made, fact("FirstContactMade", 5 + 10 * DAY))
    assert of(fold(in_time), "referral_waiting") == []
    declined = recorded(REG, ASSIGN, made, fact("ReferralDeclined", 5 + 40 * DAY))
    [waiting] = of(fold(declined), "referral_waiting")
    assert waiting.close_reason == "declined"


def test_a_retracted_referral_keeps_an_alert_only_if_it_could_have_been_seen() -> None:
    made = fact("ReferralMade", 5)
    # Recorded 2026-06-01 onwards: the 28 days (to 30 March) had passed, so it was seen.
    [waiting] = of(fold(recorded(REG, ASSIGN, made, retract(made, 6))), "referral_waiting")
    assert waiting.close_reason == "retracted"
    late = fact("ReferralMade", datetime.fromisoformat("2026-05-31T00:00:00+00:00"))
    assert of(fold(recorded(REG, ASSIGN, late, retract(late, 6))), "referral_waiting") == []


def test_review_overdue_from_the_day_after_it_was_due() -> None:
    agreed = fact("CarePlanAgreed", 2)  # review due 2026-06-01
    [overdue] = of(fold(recorded(REG, ASSIGN, agreed)), "review_overdue")
    assert overdue.opened_at == datetime.fromisoformat("2026-06-02T00:00:00+01:00")
    reviewed = fact(
        "CarePlanReviewed",
        datetime.fromisoformat("2026-06-05T09:00:00+01:00"),
        {"plan_id": "P1", "next_review_due": "2026-12-01"},
    )
    found = fold(recorded(REG, ASSIGN, agreed, reviewed))
    [first, second] = of(found, "review_overdue")
    assert (first.status, first.close_reason) == ("closed", "reviewed")
    assert second.opened_at == datetime.fromisoformat("2026-12-02T00:00:00+00:00")
    on_time = fact(
        "CarePlanReviewed",
        datetime.fromisoformat("2026-05-20T09:00:00+01:00"),
        {"plan_id": "P1", "next_review_due": "2026-12-01"},
    )
    [only] = of(fold(recorded(REG, ASSIGN, agreed, on_time)), "review_overdue")
    assert only.opened_at.date().isoformat() == "2026-12-02"


def test_handoff_alerts_the_new_coordinator_until_they_make_contact() -> None:
    handoff = fact("CoordinatorHandedOff", 20)
    found = fold(recorded(REG, ASSIGN, handoff, contact(30, "N100"), contact(40, "S200")))
    handoffs = of(found, "handoff")
    assert [(a.coordinator_id, a.status, a.close_reason) for a in handoffs] == [
        ("N100", "closed", "superseded"),
        ("S200", "closed", "contact"),
    ]
    assert handoffs[1].closed_at == at(40)


def test_tell_the_person_stays_open_until_person_informed() -> None:
    handoff = fact("CoordinatorHandedOff", 20)
    found = fold(recorded(REG, ASSIGN, handoff))
    informs = of(found, "inform_person")
    assert [(a.coordinator_id, a.status, a.close_reason) for a in informs] == [
        ("N100", "closed", "superseded"),
        ("S200", "open", None),
    ]
    told = informed(25)
    informs = of(fold(recorded(REG, ASSIGN, handoff, told)), "inform_person")
    assert informs[1].status == "closed" and informs[1].close_reason == "informed"
    assert informs[1].closed_position == 4
    # Retracting the PersonInformed opens it again.
    informs = of(fold(recorded(REG, ASSIGN, handoff, told, retract(told, 26))), "inform_person")
    assert informs[1].status == "open"


def test_release_goes_to_the_team_queue_until_the_next_assignment() -> None:
    release = fact("CoordinatorReleased", 20, {"coordinator_id": "N100"})
    reassign = fact("CoordinatorAssigned", 30)
    found = fold(recorded(REG, ASSIGN, release, reassign))
    [released] = of(found, "released")
    assert released.team_queue and released.organisation == "A81001"
    assert (released.status, released.close_reason, released.closed_at) == (
        "closed",
        "assigned",
        at(30),
    )
    # A release of someone else changes nothing: no alert.
    wrong = fact("CoordinatorReleased", 20, {"coordinator_id": "X9"})
    assert of(fold(recorded(REG, ASSIGN, wrong)), "released") == []


def test_unassigned_for_more_than_n_days() -> None:
    found = fold(recorded(REG))
    [waiting] = of(found, "unassigned")
    assert waiting.team_queue and waiting.opened_at == at(14 * DAY)
    assert waiting.status == "open"
    assigned_late = fact("CoordinatorAssigned", 20 * DAY)
    [waiting] = of(fold(recorded(REG, assigned_late)), "unassigned")
    assert (waiting.status, waiting.close_reason, waiting.closed_at) == (
        "closed",
        "assigned",
        at(20 * DAY),
    )
    assert of(fold(recorded(REG, fact("CoordinatorAssigned", 3 * DAY))), "unassigned") == []


def test_discharge_ready_alerts_at_once_later_decision_updates_the_reason() -> None:
    first = fact("DischargeReady", 20, {"encounter_id": "E1", "delay_reason": "equipment"})
    second = fact("DischargeReady", 40, {"encounter_id": "E1", "delay_reason": "home_care_package"})
    found = fold(recorded(REG, ASSIGN, fact("Admitted", 10), first, second))
    [ready] = of(found, "discharge_ready")
    assert ready.opened_at == at(20) and ready.due == at(20)
    assert ready.positions == (4, 5) and "home care package" in ready.detail
    assert ready.status == "open"
    found = fold(recorded(REG, ASSIGN, fact("Admitted", 10), first, fact("Discharged", 90)))
    [ready] = of(found, "discharge_ready")
    assert (ready.status, ready.close_reason, ready.closed_at) == ("closed", "discharged", at(90))


def test_death_alert_closes_only_when_acknowledged_and_journey_close_closes_the_rest() -> None:
    died = fact("JourneyClosed", 30, {"reason": "died"})
    events = recorded(REG, ASSIGN, fact("Admitted", 10), died)
    found = fold(events)
    [death] = of(found, "death")
    assert death.status == "open" and death.coordinator_id == "N100"
    [admission] = of(found, "admission")
    assert admission.close_reason == "journey_closed"
    ack = fact("AlertAcknowledged", 31, {"alert_id": str(death.alert_id), "coordinator_id": "N100"})
    [death] = of(fold(recorded(REG, ASSIGN, fact("Admitted", 10), died, ack)), "death")
    assert (death.status, death.close_reason) == ("closed", "acknowledged")
    assert death.acknowledged_by == "N100" and death.acknowledged_at == at(31)


def test_acknowledging_other_kinds_records_it_without_closing() -> None:
    admitted = fact("Admitted", 10)
    ident = alert_id("admission", admitted["event_id"])
    ack = fact("AlertAcknowledged", 11, {"alert_id": str(ident), "coordinator_id": "N100"})
    [alert] = of(fold(recorded(REG, ASSIGN, admitted, ack)), "admission")
    assert alert.status == "open" and alert.acknowledged_by == "N100"


def test_a_late_arriving_fact_opens_an_alert_for_the_current_coordinator() -> None:
    ledger = Ledger()
    ledger.deliver(REG, ASSIGN, fact("Admitted", 10 * DAY), fact("Discharged", 12 * DAY))
    early = {"encounter_id": "E0", "hospital": "RXH01", "method": "elective"}
    ledger.deliver(fact("Admitted", 2 * DAY, early))
    found = fold(ledger.events)
    [late] = of(found, "late_arrival")
    assert late.opened_position == 5 and late.coordinator_id == "N100"
    assert late.status == "open" and "Admitted" in late.detail


def test_replay_shows_person_informed() -> None:
    told = informed(25)
    events = recorded(REG, ASSIGN, fact("CoordinatorHandedOff", 20), told)
    shown = replay(events)
    [entry] = [e for e in shown["timeline"] if e["type"] == "PersonInformed"]
    told_by = "by N100 (community nurse, RYX01) (phone)"
    assert entry["summary"] == f"Patient told about their coordinator {told_by}"
    before = replay(events, known_at=events[2].recorded_at)
    assert not [e for e in before["timeline"] if e["type"] == "PersonInformed"]


def test_ids_are_stable_across_folds() -> None:
    events = recorded(REG, ASSIGN, fact("Admitted", 10), fact("Discharged", 50))
    assert [a.alert_id for a in fold(events)] == [a.alert_id for a in fold(list(events))]
    assert len({a.alert_id for a in fold(events)}) == len(fold(events))
