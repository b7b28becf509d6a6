"""The contract's event data as stored: what ``RecordedEvent.data`` holds, per type.

Generated from ``domain.contract.DATA_MODELS`` by ``tests/test_event_data.py`` (which
fails when this file and the contract differ; run it as a script to write this file
again). Do not edit by hand.

``data`` is the JSON the ledger stored (``envelope_content``): enumerations, days,
moments and ids are strings (a value a later contract version adds is still a string),
tuples are lists, and an optional field the publisher left out or sent as null is
absent (``NotRequired``). Types only: the folds ``cast`` ``event.data`` to these, which
costs nothing at run time, and mypy checks each key and value they read.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class PatientRegisteredData(TypedDict):
    """``PatientRegistered`` data."""

    practice: str
    gp_id: NotRequired[str]


class CaseIdentifiedData(TypedDict):
    """``CaseIdentified`` data."""

    criteria: list[str]
    risk_score: NotRequired[float]


class ReferralTarget(TypedDict):
    organisation: str
    service: str
    setting: str


class ReferralMadeData(TypedDict):
    """``ReferralMade`` data."""

    referral_id: str
    to: ReferralTarget
    priority: str
    reason: NotRequired[str]


class ReferralAcceptedData(TypedDict):
    """``ReferralAccepted`` data."""

    referral_id: str


class ReferralDeclinedData(TypedDict):
    """``ReferralDeclined`` data."""

    referral_id: str
    reason: str


class FirstContactMadeData(TypedDict):
    """``FirstContactMade`` data."""

    referral_id: str


class Professional(TypedDict):
    id: str
    role: str
    organisation: str
    setting: str


class CoordinatorAssignedData(TypedDict):
    """``CoordinatorAssigned`` data."""

    coordinator: Professional
    reason: NotRequired[str]


class CoordinatorHandedOffData(TypedDict):
    """``CoordinatorHandedOff`` data."""

    from_id: str
    to: Professional
    reason: NotRequired[str]


class CoordinatorReleasedData(TypedDict):
    """``CoordinatorReleased`` data."""

    coordinator_id: str
    reason: NotRequired[str]


class AsSent(TypedDict):
    code: NotRequired[str]
    text: NotRequired[str]


class AdmittedData(TypedDict):
    """``Admitted`` data."""

    encounter_id: str
    hospital: str
    ward: NotRequired[str]
    method: str
    method_as_sent: NotRequired[AsSent]
    patient_class: NotRequired[str]
    patient_class_as_sent: NotRequired[AsSent]
    sent_at: NotRequired[str]


class TransferredData(TypedDict):
    """``Transferred`` data."""

    encounter_id: str
    from_location: str
    to_location: str


class DischargedData(TypedDict):
    """``Discharged`` data."""

    encounter_id: str
    destination: str
    destination_as_sent: NotRequired[AsSent]
    location: NotRequired[str]
    patient_class: NotRequired[str]
    patient_class_as_sent: NotRequired[AsSent]
    sent_at: NotRequired[str]


class AdmissionCancelledData(TypedDict):
    """``AdmissionCancelled`` data."""

    encounter_id: str


class TransferCancelledData(TypedDict):
    """``TransferCancelled`` data."""

    encounter_id: str


class DischargeCancelledData(TypedDict):
    """``DischargeCancelled`` data."""

    encounter_id: str


class ContactWith(TypedDict):
    id: str
    role: str
    organisation: str


ContactRecordedData = TypedDict(
    "ContactRecordedData",
    {
        "setting": str,
        "mode": str,
        "with": ContactWith,
    },
)


class Goal(TypedDict):
    goal_id: str
    description: str
    target_date: NotRequired[str]


class CarePlanAgreedData(TypedDict):
    """``CarePlanAgreed`` data."""

    plan_id: str
    goals: list[Goal]
    agreed_with: str
    review_due: str


class CarePlanRevisedData(TypedDict):
    """``CarePlanRevised`` data."""

    plan_id: str
    added: NotRequired[list[Goal]]
    changed: NotRequired[list[Goal]]
    achieved: NotRequired[list[str]]
    dropped: NotRequired[list[str]]


class CarePlanReviewedData(TypedDict):
    """``CarePlanReviewed`` data."""

    plan_id: str
    next_review_due: str


class CarePlanClosedData(TypedDict):
    """``CarePlanClosed`` data."""

    plan_id: str
    reason: NotRequired[str]


class CareTeamMemberJoinedData(TypedDict):
    """``CareTeamMemberJoined`` data."""

    member: Professional


class CareTeamMemberLeftData(TypedDict):
    """``CareTeamMemberLeft`` data."""

    member_id: str
    reason: NotRequired[str]


class CarerRecordedData(TypedDict):
    """``CarerRecorded`` data."""

    carer_id: str
    relationship: NotRequired[str]
    consent_to_share: bool


class OutcomeRecordedData(TypedDict):
    """``OutcomeRecorded`` data."""

    instrument: str
    score: float
    items: NotRequired[dict[str, float]]


class JourneyClosedData(TypedDict):
    """``JourneyClosed`` data."""

    reason: str


class EventRetractedData(TypedDict):
    """``EventRetracted`` data."""

    retracted_event_id: str
    reason: str


class LocalId(TypedDict):
    authority: str
    value: str


class PatientsMergedData(TypedDict):
    """``PatientsMerged`` data."""

    merged_nhs_number: NotRequired[str]
    merged_local_id: NotRequired[LocalId]
    merged_patient_id: NotRequired[str]
    reason: NotRequired[str]


class DischargeReadyData(TypedDict):
    """``DischargeReady`` data."""

    encounter_id: str
    delay_reason: NotRequired[str]
    detail: NotRequired[str]


class PersonInformedData(TypedDict):
    """``PersonInformed`` data."""

    by: ContactWith
    told: str
    about: str
    how: str
    coordinator_id: NotRequired[str]
    plan_id: NotRequired[str]


class AlertAcknowledgedData(TypedDict):
    """``AlertAcknowledged`` data."""

    alert_id: str
    coordinator_id: str
    note: NotRequired[str]


# Each event type's data type, by the type's name.
DATA: dict[str, object] = {
    "PatientRegistered": PatientRegisteredData,
    "CaseIdentified": CaseIdentifiedData,
    "ReferralMade": ReferralMadeData,
    "ReferralAccepted": ReferralAcceptedData,
    "ReferralDeclined": ReferralDeclinedData,
    "FirstContactMade": FirstContactMadeData,
    "CoordinatorAssigned": CoordinatorAssignedData,
    "CoordinatorHandedOff": CoordinatorHandedOffData,
    "CoordinatorReleased": CoordinatorReleasedData,
    "Admitted": AdmittedData,
    "Transferred": TransferredData,
    "Discharged": DischargedData,
    "AdmissionCancelled": AdmissionCancelledData,
    "TransferCancelled": TransferCancelledData,
    "DischargeCancelled": DischargeCancelledData,
    "ContactRecorded": ContactRecordedData,
    "CarePlanAgreed": CarePlanAgreedData,
    "CarePlanRevised": CarePlanRevisedData,
    "CarePlanReviewed": CarePlanReviewedData,
    "CarePlanClosed": CarePlanClosedData,
    "CareTeamMemberJoined": CareTeamMemberJoinedData,
    "CareTeamMemberLeft": CareTeamMemberLeftData,
    "CarerRecorded": CarerRecordedData,
    "OutcomeRecorded": OutcomeRecordedData,
    "JourneyClosed": JourneyClosedData,
    "EventRetracted": EventRetractedData,
    "PatientsMerged": PatientsMergedData,
    "DischargeReady": DischargeReadyData,
    "PersonInformed": PersonInformedData,
    "AlertAcknowledged": AlertAcknowledgedData,
}

__all__ = [
    "AdmissionCancelledData",
    "AdmittedData",
    "AlertAcknowledgedData",
    "CarePlanAgreedData",
    "CarePlanClosedData",
    "CarePlanReviewedData",
    "CarePlanRevisedData",
    "CareTeamMemberJoinedData",
    "CareTeamMemberLeftData",
    "CarerRecordedData",
    "CaseIdentifiedData",
    "ContactRecordedData",
    "CoordinatorAssignedData",
    "CoordinatorHandedOffData",
    "CoordinatorReleasedData",
    "DischargeCancelledData",
    "DischargeReadyData",
    "DischargedData",
    "EventRetractedData",
    "FirstContactMadeData",
    "JourneyClosedData",
    "OutcomeRecordedData",
    "PatientRegisteredData",
    "PatientsMergedData",
    "PersonInformedData",
    "ReferralAcceptedData",
    "ReferralDeclinedData",
    "ReferralMadeData",
    "TransferCancelledData",
    "TransferredData",
]
