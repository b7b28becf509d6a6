"""The synthetic cohort: contract-valid, deterministic, and realistic where measures care.

These tests read the generated envelopes as a consumer would (plain JSON dicts), with
their own small folds, so they hold the generator to the contract and to the causal
rules the ledger and projections rely on, not to its own internals.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from domain.synthetic import delivery_order, generate_cohort, generate_people

LONDON = ZoneInfo("Europe/London")
ALL_TYPES = {
    "PatientRegistered",
    "CaseIdentified",
    "ReferralMade",
    "ReferralAccepted",
    "ReferralDeclined",
    "FirstContactMade",
    "CoordinatorAssigned",
    "CoordinatorHandedOff",
    "CoordinatorReleased",
    "Admitted",
    "Transferred",
    "Discharged",
    "AdmissionCancelled",
    "TransferCancelled",
    "DischargeCancelled",
    "ContactRecorded",
    "CarePlanAgreed",
    "CarePlanRevised",
    "CarePlanReviewed",
    "CarePlanClosed",
    "CareTeamMemberJoined",
    "CareTeamMemberLeft",
    "CarerRecorded",
    "OutcomeRecorded",
    "JourneyClosed",
    "EventRetracted",
}
Person = list[dict[str, Any]]


@pytest.fixture(scope="module")
def cohort() -> list[Person]:
    return list(generate_people(500, seed=7))


@pytest.fixture(scope="module")
def delivered(cohort: list[Person]) -> list[dict[str, Any]]:
    return delivery_order(cohort, seed=11)


def at(envelope: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(envelope["occurred_at"])


def london_day(envelope: dict[str, Any]) -> date:
    return at(envelope).astimezone(LONDON).date()


# -- the contract ------------------------------------------------------------------------


def test_every_envelope_passes_the_contract(cohort: list[Person]) -> None:
    from domain.contract import parse_envelope

    for person in cohort[:300]:
        for envelope in person:
            parse_envelope(envelope)  # raises ContractError with every problem


def test_envelope_shape_is_exactly_the_published_one(cohort: list[Person]) -> None:
    keys = {"event_id", "type", "schema_version", "nhs_number", "occurred_at", "source", "data"}
    for person in cohort:
        for envelope in person:
            assert set(envelope) - {"recorded_by"} == keys
            assert envelope["schema_version"] == 1
            assert UUID(envelope["event_id"]).version == 4
            assert set(envelope["source"]) == {"organisation", "system", "setting"}


def test_envelopes_share_no_mutable_parts(cohort: list[Person]) -> None:
    """A consumer may mutate one envelope without changing another."""
    seen: set[int] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict | list):
            assert id(value) not in seen
            seen.add(id(value))
            for item in value.values() if isinstance(value, dict) else value:
                walk(item)

    for person in cohort:
        for envelope in person:
            walk(envelope)


def test_adt_events_usually_have_no_recorder(cohort: list[Person]) -> None:
    adt = [e for p in cohort for e in p if e["type"] in ("Admitted", "Transferred", "Discharged")]
    without = sum("recorded_by" not in e for e in adt)
    assert 0.6 < without / len(adt) < 0.95
    roles = {e["recorded_by"]["role"] for p in cohort for e in p if "recorded_by" in e}
    assert {"system", "administrator", "gp", "practice_nurse"} <= roles


# -- determinism and identity --------------------------------------------------------------


def test_same_seed_same_bytes_and_different_seed_differs() -> None:
    first = json.dumps(list(generate_cohort(120, seed=3)))
    again = json.dumps(list(generate_cohort(120, seed=3)))
    other = json.dumps(list(generate_cohort(120, seed=4)))
    assert first == again
    assert first != other


def test_a_small_cohort_is_a_prefix_of_a_larger_one(cohort: list[Person]) -> None:
    assert list(generate_people(40, seed=7)) == cohort[:40]


def test_delivery_order_is_deterministic(cohort: list[Person]) -> None:
    ids = [e["event_id"] for e in delivery_order(cohort, seed=11)]
    assert ids == [e["event_id"] for e in delivery_order(cohort, seed=11)]
    assert ids != [e["event_id"] for e in delivery_order(cohort, seed=12)]


def test_event_ids_and_nhs_numbers_are_unique(cohort: list[Person]) -> None:
    from domain.nhs_number import check_nhs_number

    event_ids = [e["event_id"] for p in cohort for e in p]
    assert len(event_ids) == len(set(event_ids))
    numbers = []
    for person in cohort:
        assert len({e["nhs_number"] for e in person}) == 1
        numbers.append(person[0]["nhs_number"])
    assert len(numbers) == len(set(numbers))
    for number in numbers:
        assert check_nhs_number(number) == number
        assert number.startswith("9000")


# -- volume and variety ----------------------------------------------------------------


def test_all_26_types_occur_and_volume_is_realistic(cohort: list[Person]) -> None:
    from domain.contract import EVENT_TYPES

    counts = Counter(e["type"] for p in cohort for e in p)
    assert set(counts) == ALL_TYPES  # the 26 types of §4 (merges come from ADT A40 only)
    assert set(EVENT_TYPES) >= ALL_TYPES
    per_person = sum(counts.values()) / len(cohort)
    assert 10 <= per_person <= 20
    identified = counts["CaseIdentified"] / len(cohort)
    assert 0.5 < identified < 0.7
    assert 0.002 < counts["EventRetracted"] / sum(counts.values()) < 0.01


def test_offsets_mix_z_gmt_and_bst(cohort: list[Person]) -> None:
    spellings = Counter()
    for person in cohort:
        for envelope in person:
            text = envelope["occurred_at"]
            suffix = "Z" if text.endswith("Z") else text[-6:]
            spellings[suffix] += 1
            if suffix == "+01:00":  # only local-time publishers in British Summer Time
                assert at(envelope).astimezone(LONDON).utcoffset() == timedelta(hours=1)
    assert set(spellings) == {"Z", "+00:00", "+01:00"}


# -- journeys in causal order --------------------------------------------------------------


def test_each_journey_is_in_occurrence_order_within_the_window(cohort: list[Person]) -> None:
    start = datetime(2024, 1, 1, tzinfo=LONDON)
    end = datetime(2026, 1, 1, tzinfo=LONDON)
    for person in cohort:
        moments = [at(e) for e in person]
        assert moments == sorted(moments)
        assert start <= moments[0] and moments[-1] < end
        assert person[0]["type"] == "PatientRegistered"
        assert sum(e["type"] == "PatientRegistered" for e in person) == 1


def test_nothing_after_journey_closed(cohort: list[Person]) -> None:
    closed = 0
    for person in cohort:
        types = [e["type"] for e in person]
        if "JourneyClosed" in types:
            closed += 1
            assert types.count("JourneyClosed") == 1
            assert types[-1] == "JourneyClosed"
            assert at(person[-1]) > at(person[-2])
    reasons = Counter(p[-1]["data"]["reason"] for p in cohort if p[-1]["type"] == "JourneyClosed")
    assert set(reasons) == {"died", "moved_away", "no_longer_needed"}
    assert closed < len(cohort) * 0.15


def test_handoffs_come_from_the_coordinator_of_the_moment(cohort: list[Person]) -> None:
    gaps = handoffs = 0
    for person in cohort:
        current: str | None = None
        released = False
        for envelope in person:
            data = envelope["data"]
            if envelope["type"] == "CoordinatorAssigned":
                assert current is None
                gaps += released
                current = data["coordinator"]["id"]
            elif envelope["type"] == "CoordinatorHandedOff":
                assert data["from_id"] == current
                assert data["to"]["id"] != current
                current = data["to"]["id"]
                handoffs += 1
            elif envelope["type"] == "CoordinatorReleased":
                assert data["coordinator_id"] == current
                current, released = None, True
    assert gaps > 0 and handoffs > 0


def test_referrals_follow_their_lifecycle(cohort: list[Person]) -> None:
    open_referrals = 0
    for person in cohort:
        state: dict[str, str] = {}
        for envelope in person:
            kind, data = envelope["type"], envelope["data"]
            if kind == "ReferralMade":
                assert data["referral_id"] not in state
                state[data["referral_id"]] = "made"
            elif kind in ("ReferralAccepted", "ReferralDeclined"):
                assert state[data["referral_id"]] == "made"
                state[data["referral_id"]] = kind
            elif kind == "FirstContactMade":
                assert state[data["referral_id"]] == "ReferralAccepted"
                state[data["referral_id"]] = "seen"
        open_referrals += sum(s in ("made", "ReferralAccepted") for s in state.values())
    assert open_referrals > 0


def test_discharges_and_cancels_follow_their_admission(cohort: list[Person]) -> None:
    kinds = {
        "TransferCancelled": "Transferred",
        "DischargeCancelled": "Discharged",
        "AdmissionCancelled": "Admitted",
    }
    for person in cohort:
        seen: dict[str, list[str]] = defaultdict(list)
        for envelope in person:
            kind = envelope["type"]
            encounter = envelope["data"].get("encounter_id")
            if kind in ("Transferred", "Discharged"):
                assert "Admitted" in seen[encounter], "discharge or transfer without admission"
            if kind in kinds:
                assert kinds[kind] in seen[encounter], "cancel before its target"
            if encounter is not None:
                seen[encounter].append(kind)


def test_transfers_between_hospitals_continue_the_spell(cohort: list[Person]) -> None:
    transfers = 0
    for person in cohort:
        for i, envelope in enumerate(person):
            if envelope["type"] == "Discharged" and envelope["data"]["destination"] == (
                "other_hospital"
            ):
                following = [e for e in person[i + 1 :] if e["type"] == "Admitted"]
                if following:
                    transfers += 1
                    assert following[0]["data"]["method"] == "transfer"
                    assert following[0]["data"]["hospital"] != envelope["source"]["organisation"]
                    assert at(following[0]) - at(envelope) < timedelta(hours=4)
    assert transfers > 0


def test_care_plan_events_follow_their_plan(cohort: list[Person]) -> None:
    reviews: Counter[str] = Counter()
    for person in cohort:
        goals: dict[str, set[str]] = {}
        due: dict[str, date] = {}
        for envelope in person:
            kind, data = envelope["type"], envelope["data"]
            if kind == "CarePlanAgreed":
                assert 2 <= len(data["goals"]) <= 4
                goals[data["plan_id"]] = {g["goal_id"] for g in data["goals"]}
                due[data["plan_id"]] = date.fromisoformat(data["review_due"])
            elif kind.startswith("CarePlan"):
                assert data["plan_id"] in goals
            if kind == "CarePlanRevised":
                plan = goals[data["plan_id"]]
                for goal in data.get("added", []):
                    assert goal["goal_id"] not in plan
                    plan.add(goal["goal_id"])
                for goal_id in data.get("achieved", []) + data.get("dropped", []):
                    assert goal_id in plan
            if kind == "CarePlanReviewed":
                day = london_day(envelope)
                reviews["late" if day > due[data["plan_id"]] else "in time"] += 1
                due[data["plan_id"]] = date.fromisoformat(data["next_review_due"])
                assert due[data["plan_id"]] > day
    assert reviews["late"] > 0 and reviews["in time"] > reviews["late"]


def test_team_members_leave_only_after_joining(cohort: list[Person]) -> None:
    for person in cohort:
        team: set[str] = set()
        for envelope in person:
            if envelope["type"] == "CareTeamMemberJoined":
                team.add(envelope["data"]["member"]["id"])
            elif envelope["type"] == "CareTeamMemberLeft":
                assert envelope["data"]["member_id"] in team
                team.discard(envelope["data"]["member_id"])


# -- the edges the measures must get right ------------------------------------------------


def test_readmissions_on_day_0_29_and_30(cohort: list[Person]) -> None:
    gaps: Counter[int] = Counter()
    for person in cohort:
        last_discharge: dict[str, Any] | None = None
        for envelope in person:
            if envelope["type"] == "Discharged":
                last_discharge = envelope
            elif envelope["type"] == "Admitted" and last_discharge is not None:
                days = (london_day(envelope) - london_day(last_discharge)).days
                gaps[days] += envelope["data"]["method"] == "emergency"
    assert gaps[0] and gaps[29] and gaps[30]


def test_follow_up_contacts_around_the_measure_edges(cohort: list[Person]) -> None:
    found: Counter[str] = Counter()
    for person in cohort:
        for i, envelope in enumerate(person):
            if envelope["type"] != "Discharged" or (
                envelope["data"]["destination"] != "usual_residence"
            ):
                continue
            contacts = [e for e in person[i + 1 :] if e["type"] == "ContactRecorded"]
            if not contacts:
                continue
            days = (london_day(contacts[0]) - london_day(envelope)).days
            hours = (at(contacts[0]) - at(envelope)) / timedelta(hours=1)
            if days == 0:
                found["same day"] += 1
            elif hours <= 72:
                found["within 72h"] += 1
            elif days <= 7:
                found["within 7 days"] += 1
            else:
                found["later"] += 1
    assert set(found) == {"same day", "within 72h", "within 7 days", "later"}


def test_continuity_of_care_varies_between_people(cohort: list[Person]) -> None:
    upcs = []
    for person in cohort:
        seen = Counter(e["data"]["with"]["id"] for e in person if e["type"] == "ContactRecorded")
        total = sum(seen.values())
        if total >= 4:
            upcs.append(max(seen.values()) / total)
    assert min(upcs) < 0.5 and max(upcs) == 1.0


# -- retractions and delivery order --------------------------------------------------------


def test_retraction_targets_are_earlier_events_of_the_same_person(cohort: list[Person]) -> None:
    retractions = 0
    for person in cohort:
        position = {e["event_id"]: i for i, e in enumerate(person)}
        for i, envelope in enumerate(person):
            if envelope["type"] == "EventRetracted":
                retractions += 1
                target = envelope["data"]["retracted_event_id"]
                assert target in position and position[target] < i
                assert envelope["data"]["reason"] == "entered in error"
                assert person[position[target]]["type"] != "EventRetracted"
    assert retractions > 0


def test_delivery_is_a_permutation_with_some_late_events(
    cohort: list[Person], delivered: list[dict[str, Any]]
) -> None:
    assert sorted(e["event_id"] for e in delivered) == sorted(
        e["event_id"] for p in cohort for e in p
    )
    order = {e["event_id"]: i for i, e in enumerate(delivered)}
    late = 0
    discharge_first = 0
    total = 0
    for person in cohort:
        for i, envelope in enumerate(person):
            total += 1
            later = person[i + 1 :]
            if any(order[e["event_id"]] < order[envelope["event_id"]] for e in later):
                late += 1
                if envelope["type"] == "Admitted" and any(
                    e["type"] == "Discharged"
                    and e["data"]["encounter_id"] == envelope["data"]["encounter_id"]
                    and order[e["event_id"]] < order[envelope["event_id"]]
                    for e in later
                ):
                    discharge_first += 1
    assert 0.01 < late / total < 0.04
    assert discharge_first > 0


def test_delivery_keeps_retractions_after_their_targets(
    cohort: list[Person], delivered: list[dict[str, Any]]
) -> None:
    position = {e["event_id"]: i for i, e in enumerate(delivered)}
    owner = {e["event_id"]: e["nhs_number"] for e in delivered}
    for i, envelope in enumerate(delivered):
        if envelope["type"] == "EventRetracted":
            target = envelope["data"]["retracted_event_id"]
            assert owner[target] == envelope["nhs_number"]
            assert position[target] < i


def test_delivery_keeps_retractions_after_late_targets() -> None:
    """Even when the target itself is held back, its retraction still waits for it."""
    people = list(generate_people(300, seed=5))
    for seed in range(20):
        delivered = delivery_order(people, seed)
        position = {e["event_id"]: i for i, e in enumerate(delivered)}
        for i, envelope in enumerate(delivered):
            if envelope["type"] == "EventRetracted":
                assert position[envelope["data"]["retracted_event_id"]] < i
