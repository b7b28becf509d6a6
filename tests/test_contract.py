"""The event contract (domain/contract.py): one test per rule, each naming the field at fault.

Pure: no database, no broker.
"""

from __future__ import annotations

import copy
import json
import pickle
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from domain.contract import (
    DATA_MODELS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    CarePlanRevised,
    ContactRecorded,
    ContractError,
    Envelope,
    FieldError,
    Setting,
    data_from_content,
    envelope_content,
    parse_envelope,
    utc_text,
)
from domain.nhs_number import check_nhs_number, is_valid_nhs_number, make_nhs_number

PRO = {"id": "N1", "role": "specialist_nurse", "organisation": "RX1", "setting": "community"}

# One valid data example per event type: the table the contract is held to.
EXAMPLES: dict[str, dict[str, Any]] = {
    "PatientRegistered": {"practice": "Y02345", "gp_id": "G8123456"},
    "CaseIdentified": {"criteria": ["multimorbidity", "frailty"], "risk_score": 0.73},
    "ReferralMade": {
        "referral_id": "R-001",
        "to": {"organisation": "RX1", "service": "falls clinic", "setting": "community"},
        "priority": "urgent",
        "reason": "two falls in a month",
    },
    "ReferralAccepted": {"referral_id": "R-001"},
    "ReferralDeclined": {"referral_id": "R-001", "reason": "outside catchment"},
    "FirstContactMade": {"referral_id": "R-001"},
    "CoordinatorAssigned": {"coordinator": PRO, "reason": "complex needs"},
    "CoordinatorHandedOff": {"from_id": "G8123456", "to": PRO},
    "CoordinatorReleased": {"coordinator_id": "N1", "reason": "stable"},
    "Admitted": {"encounter_id": "E1", "hospital": "RX1", "ward": "Ward 7", "method": "emergency"},
    "Transferred": {"encounter_id": "E1", "from_location": "Ward 7", "to_location": "ICU"},
    "Discharged": {"encounter_id": "E1", "destination": "usual_residence"},
    "AdmissionCancelled": {"encounter_id": "E1"},
    "TransferCancelled": {"encounter_id": "E1"},
    "DischargeCancelled": {"encounter_id": "E1"},
    "ContactRecorded": {
        "setting": "home",
        "mode": "home_visit",
        "with": {"id": "N1", "role": "community_nurse", "organisation": "RX1"},
    },
    "CarePlanAgreed": {
        "plan_id": "P1",
        "goals": [
            {"goal_id": "g1", "description": "walk to the shops", "target_date": "2026-06-01"},
            {"goal_id": "g2", "description": "fewer falls"},
        ],
        "agreed_with": "both",
        "review_due": "2026-09-01",
    },
    "CarePlanRevised": {
        "plan_id": "P1",
        "added": [{"goal_id": "g3", "description": "see grandchildren"}],
        "achieved": ["g1"],
    },
    "CarePlanReviewed": {"plan_id": "P1", "next_review_due": "2027-03-01"},
    "CarePlanClosed": {"plan_id": "P1"},
    "CareTeamMemberJoined": {"member": PRO},
    "CareTeamMemberLeft": {"member_id": "N1", "reason": "moved post"},
    "CarerRecorded": {"carer_id": "K1", "relationship": "daughter", "consent_to_share": True},
    "OutcomeRecorded": {"instrument": "EQ-5D-5L", "score": 0.81, "items": {"mobility": 2}},
    "JourneyClosed": {"reason": "moved_away"},
    "EventRetracted": {
        "retracted_event_id": "0b8a1c1e-9f6e-4c1a-9d7e-2f6a1b3c4d5e",
        "reason": "entered in error",
    },
    "PatientsMerged": {"merged_nhs_number": "9434765870", "reason": "duplicate registration"},
    "DischargeReady": {"encounter_id": "E1", "delay_reason": "home_care_package"},
    "PersonInformed": {
        "by": {"id": "N1", "role": "community_nurse", "organisation": "RX1"},
        "told": "patient",
        "about": "coordinator",
        "how": "phone",
        "coordinator_id": "N1",
    },
    "AlertAcknowledged": {
        "alert_id": "4c1d2b8e-1f0a-5b7e-9c3d-2a6b8e0f1c2d",
        "coordinator_id": "N1",
    },
}


def envelope(type_: str = "CoordinatorHandedOff", **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "event_id": "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10",
        "type": type_,
        "schema_version": 1,
        "nhs_number": "9434765919",
        "occurred_at": "2026-03-02T10:15:00+00:00",
        "source": {"organisation": "Y02345", "system": "community-emis", "setting": "community"},
        "recorded_by": {"id": "C1234567", "role": "specialist_nurse"},
        "data": copy.deepcopy(EXAMPLES[type_]) if type_ in EXAMPLES else {},
    }
    raw.update(overrides)
    return raw


def errors_of(raw: Any) -> dict[str, str]:
    with pytest.raises(ContractError) as caught:
        parse_envelope(raw)
    return {e.loc: e.msg for e in caught.value.errors}


# -- NHS number -----------------------------------------------------------------------


def test_nhs_number_examples_are_valid_and_normalised() -> None:
    assert is_valid_nhs_number("9434765919")
    assert is_valid_nhs_number("9434765870")
    assert check_nhs_number("943 476 5919") == "9434765919"
    assert check_nhs_number("943-476-5870") == "9434765870"
    assert not is_valid_nhs_number("943-476 5919")  # mixed separators


def test_nhs_number_check_digit_computing_to_ten_is_invalid() -> None:
    with pytest.raises(ValueError, match="computes to 10"):
        check_nhs_number("1234567890")


def test_make_nhs_number() -> None:
    assert make_nhs_number(943476591) == "9434765919"
    assert make_nhs_number("943476587") == "9434765870"
    assert make_nhs_number("123456789") is None  # check digit would be 10
    made = [make_nhs_number(n) for n in range(100_000_000, 100_000_200)]
    assert all(is_valid_nhs_number(m) for m in made if m is not None)
    assert 0 < made.count(None) < 40


def test_bad_nhs_check_digit() -> None:
    errs = errors_of(envelope(nhs_number="9434765918"))
    assert errs == {"nhs_number": errs["nhs_number"]}
    assert "expected 9" in errs["nhs_number"] and "given 8" in errs["nhs_number"]


def test_nine_digit_nhs_number() -> None:
    errs = errors_of(envelope(nhs_number="943476591"))
    assert "must be 10 digits" in errs["nhs_number"]
    assert "got 9 digits" in errs["nhs_number"]


# -- envelope rules -------------------------------------------------------------------


def test_naive_occurred_at() -> None:
    errs = errors_of(envelope(occurred_at="2026-03-02T10:15:00"))
    assert errs == {"occurred_at": "occurred_at must carry a UTC offset"}


def test_occurred_at_as_a_timestamp_number() -> None:
    errs = errors_of(envelope(occurred_at=1_772_446_500))
    assert "ISO-8601" in errs["occurred_at"]


def test_unknown_type_lists_known_types() -> None:
    errs = errors_of(envelope("ReferalMade", data={"referral_id": "R1"}))
    assert list(errs) == ["type"]
    assert "unknown event type 'ReferalMade'" in errs["type"]
    assert "ReferralMade" in errs["type"] and "EventRetracted" in errs["type"]


def test_wrong_schema_version() -> None:
    errs = errors_of(envelope(schema_version=2))
    assert errs == {"schema_version": "unsupported schema_version 2; supported: 1"}


def test_schema_version_as_string_is_refused() -> None:
    errs = errors_of(envelope(schema_version="1"))
    assert "valid integer" in errs["schema_version"]


def test_extra_field_at_envelope_level() -> None:
    errs = errors_of(envelope(patient_name="Jane"))
    assert errs == {"patient_name": "Extra inputs are not permitted"}


def test_extra_field_inside_data() -> None:
    raw = envelope()
    raw["data"]["to"]["extra"] = 1
    errs = errors_of(raw)
    assert errs == {"data.to.extra": "Extra inputs are not permitted"}


def test_bad_nested_setting() -> None:
    raw = envelope()
    raw["data"]["to"]["setting"] = "hospital"
    errs = errors_of(raw)
    assert list(errs) == ["data.to.setting"]
    assert "'primary_care'" in errs["data.to.setting"] and "'home'" in errs["data.to.setting"]


def test_bad_ods_code() -> None:
    raw = envelope()
    raw["source"]["organisation"] = "y02345"
    errs = errors_of(raw)
    assert list(errs) == ["source.organisation"]
    assert "[A-Z0-9]{3,10}" in errs["source.organisation"]


def test_risk_score_out_of_range() -> None:
    errs = errors_of(envelope("CaseIdentified", data={"criteria": ["frailty"], "risk_score": 1.5}))
    assert list(errs) == ["data.risk_score"]
    assert "less than or equal to 1" in errs["data.risk_score"]


def test_bad_event_id() -> None:
    errs = errors_of(envelope(event_id="not-a-uuid"))
    assert list(errs) == ["event_id"]
    assert "UUID" in errs["event_id"]


def test_bad_json() -> None:
    errs = errors_of(b'{"event_id": ')
    assert list(errs) == [""]
    assert errs[""].startswith("not valid JSON")


def test_json_that_is_not_an_object() -> None:
    errs = errors_of("[1, 2]")
    assert errs == {"": "an envelope must be a JSON object, not an array"}


def test_care_plan_revised_with_nothing() -> None:
    for data in ({"plan_id": "P1"}, {"plan_id": "P1", "added": [], "dropped": []}):
        errs = errors_of(envelope("CarePlanRevised", data=data))
        assert list(errs) == ["data"]
        assert "at least one of added, changed, achieved or dropped" in errs["data"]


def test_duplicate_goal_ids_in_a_plan() -> None:
    goals = [{"goal_id": "g1", "description": "a"}, {"goal_id": "g1", "description": "b"}]
    data = {**EXAMPLES["CarePlanAgreed"], "goals": goals}
    errs = errors_of(envelope("CarePlanAgreed", data=data))
    assert "goal_id 'g1' more than once" in errs["data"]


def test_nested_list_locs_are_dotted() -> None:
    data = copy.deepcopy(EXAMPLES["CarePlanAgreed"])
    data["goals"][1]["goal_id"] = "   "
    data["goals"][0]["target_date"] = "01/06/2026"
    errs = errors_of(envelope("CarePlanAgreed", data=data))
    assert set(errs) == {"data.goals.1.goal_id", "data.goals.0.target_date"}
    assert "at least 1 character" in errs["data.goals.1.goal_id"]
    assert "YYYY-MM-DD" in errs["data.goals.0.target_date"]


def test_missing_data_for_a_known_type() -> None:
    raw = envelope()
    del raw["data"]
    assert errors_of(raw) == {"data": "Field required"}


def test_strings_are_not_booleans_or_numbers() -> None:
    errs = errors_of(envelope("CarerRecorded", data={"carer_id": "K1", "consent_to_share": "yes"}))
    assert "valid boolean" in errs["data.consent_to_share"]
    data = {"instrument": "P3CEQ", "score": "12", "items": {"q1": float("nan")}}
    errs = errors_of(envelope("OutcomeRecorded", data=data))
    assert set(errs) == {"data.score", "data.items.q1"}
    assert "finite" in errs["data.items.q1"]


def test_multiple_errors_collected_in_one_contract_error() -> None:
    raw = envelope(nhs_number="9434765918", occurred_at="2026-03-02T10:15:00", extra=1)
    raw["source"]["setting"] = "space"
    raw["data"]["to"]["setting"] = "hospital"
    del raw["data"]["from_id"]
    with pytest.raises(ContractError) as caught:
        parse_envelope(raw)
    locs = [e.loc for e in caught.value.errors]
    assert locs == [
        "nhs_number",
        "occurred_at",
        "source.setting",
        "extra",
        "data.from_id",
        "data.to.setting",
    ]
    text = str(caught.value)
    assert "data.to.setting: Input should be 'primary_care'" in text
    assert text.count("; ") >= 5
    assert isinstance(caught.value, ValueError)
    assert pickle.loads(pickle.dumps(caught.value)).errors == caught.value.errors


def test_unknown_type_still_reports_envelope_errors() -> None:
    errs = errors_of(envelope("Nope", nhs_number="123"))
    assert set(errs) == {"type", "nhs_number"}


# -- valid envelopes ------------------------------------------------------------------


def test_every_event_type_has_an_example() -> None:
    assert set(EXAMPLES) == set(DATA_MODELS) == set(EVENT_TYPES)
    assert list(EVENT_TYPES) == sorted(EVENT_TYPES)
    assert SCHEMA_VERSION == 1


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_valid_example_of_every_type_parses(type_: str) -> None:
    env = parse_envelope(json.dumps(envelope(type_)))
    assert isinstance(env, Envelope)
    assert isinstance(env.data, DATA_MODELS[type_])
    assert env.type == type_ and env.nhs_number == "9434765919"
    assert envelope_content(env)["data"] == EXAMPLES[type_]


@pytest.mark.parametrize("type_", EVENT_TYPES)
def test_data_from_content_round_trip(type_: str) -> None:
    env = parse_envelope(envelope(type_))
    content = json.loads(json.dumps(envelope_content(env)))
    rebuilt = data_from_content(content["type"], content["data"])
    assert rebuilt == env.data


def test_data_from_content_unknown_type() -> None:
    with pytest.raises(ContractError) as caught:
        data_from_content("Nope", {})
    assert caught.value.errors == [FieldError("type", "unknown event type 'Nope'")]


def test_contact_with_alias() -> None:
    env = parse_envelope(envelope("ContactRecorded"))
    assert isinstance(env.data, ContactRecorded)
    assert env.data.with_.id == "N1"
    assert env.data.setting is Setting.HOME
    assert "with" in env.data.model_dump() and "with" in envelope_content(env)["data"]


def test_envelope_content_normalises_spelling() -> None:
    plain = envelope("Admitted", occurred_at="2026-03-02T10:15:00Z")
    plain["data"].pop("ward")
    spelled = envelope("Admitted", occurred_at="2026-03-02T11:15:00+01:00", recorded_by=None)
    spelled["data"]["ward"] = None
    spelled["data"]["encounter_id"] = "  E1 "
    spelled["nhs_number"] = "943 476 5919"
    plain["recorded_by"] = None
    a, b = envelope_content(parse_envelope(plain)), envelope_content(parse_envelope(spelled))
    assert a == b
    assert a["occurred_at"] == "2026-03-02T10:15:00Z"
    assert "ward" not in a["data"]
    assert "nhs_number" not in a
    assert a["recorded_by"] is None
    absent = plain.copy()
    del absent["recorded_by"]
    assert envelope_content(parse_envelope(absent)) == a


def test_envelope_content_keeps_microseconds_only_when_present() -> None:
    env = parse_envelope(envelope(occurred_at="2026-03-02T10:15:00.250-05:00"))
    assert envelope_content(env)["occurred_at"] == "2026-03-02T15:15:00.250000Z"


def test_envelope_content_is_json_ready() -> None:
    env = parse_envelope(envelope("CarePlanAgreed"))
    content = envelope_content(env)
    assert json.loads(json.dumps(content)) == content
    assert content["event_id"] == "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10"
    assert content["source"]["setting"] == "community"
    assert env.data.review_due == date(2026, 9, 1)  # type: ignore[attr-defined]


def test_models_are_frozen() -> None:
    env = parse_envelope(envelope("CarePlanRevised"))
    assert isinstance(env.data, CarePlanRevised)
    with pytest.raises(ValueError, match="frozen"):
        env.data.plan_id = "P2"  # type: ignore[misc]
    with pytest.raises(ValueError, match="frozen"):
        env.type = "Admitted"  # type: ignore[misc]


@pytest.mark.parametrize(
    "given",
    [
        "2026-03-02T10:15:00Z",
        "2026-03-02T10:15:00.000001+00:00",
        "2026-03-02T10:15:00.5Z",
        "2026-07-02T11:15:00.123+01:00",
        "2026-03-01T23:59:59-05:30",
        datetime(2026, 1, 5, 9, 0, tzinfo=ZoneInfo("Europe/London")),
        datetime(2026, 7, 5, 9, 0, 0, 7, tzinfo=ZoneInfo("Europe/London")),
    ],
)
def test_occurred_at_content_is_one_utc_spelling(given: str | datetime) -> None:
    env = parse_envelope(envelope(occurred_at=given))
    text = envelope_content(env)["occurred_at"]
    assert text == utc_text(env.occurred_at)
    assert text.endswith("Z") and "+" not in text
    assert datetime.fromisoformat(text) == env.occurred_at


def test_recorded_by_may_be_a_system_feed_or_absent() -> None:
    env = parse_envelope(envelope(recorded_by={"id": "PAS", "role": "system"}))
    assert envelope_content(env)["recorded_by"] == {"id": "PAS", "role": "system"}
    raw = envelope()
    del raw["recorded_by"]
    assert envelope_content(parse_envelope(raw))["recorded_by"] is None
    errs = errors_of(envelope(recorded_by={"id": "C1", "role": "patient"}))
    assert list(errs) == ["recorded_by.role"]


def test_envelope_built_directly_validates_its_data() -> None:
    fields = envelope()
    env = Envelope(**fields)
    assert env.data == parse_envelope(envelope()).data
    with pytest.raises(ValueError, match=r"data\.from_id: Field required"):
        Envelope(**{**fields, "data": {"to": PRO}})
    with pytest.raises(ValueError, match="cannot be the data of a CoordinatorHandedOff"):
        Envelope(**{**fields, "data": data_from_content("ReferralAccepted", {"referral_id": "R"})})


def test_json_scalars_are_not_envelopes() -> None:
    assert errors_of("null") == {"": "an envelope must be a JSON object, not null"}
    assert errors_of(b'"x"') == {"": "an envelope must be a JSON object, not a string"}


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (
            {"encounter_id": "E1\x00", "hospital": "RXH01", "method": "emergency"},
            "data.encounter_id",
        ),
        (
            {"encounter_id": "E1", "hospital": "RXH01", "method": "emergency", "ward": "W\x007"},
            "data.ward",
        ),
    ],
)
def test_control_characters_are_refused(data: dict, loc: str) -> None:
    """PostgreSQL text cannot hold NUL, and ids are keys in the read models."""
    assert loc in errors_of(envelope("Admitted", data=data))


def test_line_breaks_are_allowed_in_free_text() -> None:
    data = {"referral_id": "R1", "reason": "first line\nsecond line"}
    assert parse_envelope(envelope("ReferralDeclined", data=data)).data.reason.count("\n") == 1


# -- the v1 additions of docs/alerts.md (compatible: new types only) -------------------


def test_discharge_ready_delay_reasons() -> None:
    reasons = {
        "social_care_assessment",
        "home_care_package",
        "care_home_place",
        "equipment",
        "family",
        "other",
    }
    for reason in reasons:
        data = {"encounter_id": "E1", "delay_reason": reason}
        env = parse_envelope(envelope("DischargeReady", data=data))
        assert envelope_content(env)["data"] == data
    unknown = parse_envelope(envelope("DischargeReady", data={"encounter_id": "E1"}))
    assert envelope_content(unknown)["data"] == {"encounter_id": "E1"}
    errs = errors_of(envelope("DischargeReady", data={"encounter_id": "E1", "delay_reason": "x"}))
    assert list(errs) == ["data.delay_reason"]
    assert list(errors_of(envelope("DischargeReady", data={}))) == ["data.encounter_id"]


def test_person_informed_needs_who_whom_what_and_how() -> None:
    errs = errors_of(envelope("PersonInformed", data={}))
    assert set(errs) == {"data.by", "data.told", "data.about", "data.how"}
    bad = {**EXAMPLES["PersonInformed"], "about": "weather", "how": "pigeon"}
    assert set(errors_of(envelope("PersonInformed", data=bad))) == {"data.about", "data.how"}


def test_alert_acknowledged_names_an_alert_by_uuid() -> None:
    data = {"alert_id": "not-a-uuid", "coordinator_id": "N1"}
    assert list(errors_of(envelope("AlertAcknowledged", data=data))) == ["data.alert_id"]


def test_envelopes_valid_before_the_additions_hash_the_same() -> None:
    """Content hashes of the original types, fixed when the v1 additions were made."""
    from domain.integrity import content_hash

    assert content_hash(envelope_content(parse_envelope(envelope()))) == GOLDEN_HANDOFF_HASH
    admitted = content_hash(envelope_content(parse_envelope(envelope("Admitted"))))
    assert admitted == GOLDEN_ADMITTED_HASH


GOLDEN_HANDOFF_HASH = "f6430f03bc6bacc1a6ef359a91f81f383d3ec6054a0bb69f453a432e4a38fff6"
GOLDEN_ADMITTED_HASH = "f1febf0b18e57cfbc64f3d2694e2d7962c122fda735a4b931ed24a943f69ed17"
