"""The published event contract v1 (docs/api.md, "Publishing"): envelope, data, errors.

Services publish facts as JSON envelopes. This module is the single place that decides
whether an envelope is well formed, so every door (HTTP, Kafka, HL7 ADT, the CLI)
accepts and rejects exactly the same things with the same messages:

* ``parse_envelope`` validates the envelope and its type-specific ``data`` and reports
  *every* problem at once as a ``ContractError`` whose ``errors`` carry dotted paths
  (``data.to.setting``), so a publisher can fix a message in one round trip.
* ``envelope_content`` is what the ledger stores and hashes: the envelope without the
  NHS number (docs/architecture.md, "No direct identifier"), times in UTC spelled with ``Z``,
  optional fields that are absent and ones that are ``null`` spelled the same, so idempotency
  compares meaning rather than spelling.
* ``data_from_content`` rebuilds the typed data model from stored content.

Every model forbids unknown fields (a typo never passes silently) and is frozen (a
recorded fact is never edited). Validation is lax where JSON has no native type (ids as
UUID strings, dates, enum values) and strict where coercion would hide a mistake
(booleans, numbers and versions sent as strings). Models and validators are built once
at import, never per call: the ledger must validate 20,000+ envelopes per second.

Adding an event type: add it to ``EventType``, define its data model below (class name =
type name) and list it in ``DATA_MODELS``; then every read model must say whether it
handles or ignores it (``tests/test_vocabulary.py`` fails until each has decided;
CONTRIBUTING.md has the recipe).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from types import UnionType
from typing import Annotated, Any, Final, Self, TypeVar, Union, get_args, get_origin
from uuid import UUID

import pydantic_core
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializeAsAny,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from domain.nhs_number import check_nhs_number

SCHEMA_VERSION: Final = 1
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({SCHEMA_VERSION})

# -- vocabularies ---------------------------------------------------------------------


class EventType(StrEnum):
    """Every event type of contract v1: the one vocabulary the ledger, the folds and the
    API share. A ``StrEnum``, so a member equals (and hashes as) its name: code that
    compares ``event.type`` with a plain string keeps working."""

    PATIENT_REGISTERED = "PatientRegistered"
    CASE_IDENTIFIED = "CaseIdentified"
    REFERRAL_MADE = "ReferralMade"
    REFERRAL_ACCEPTED = "ReferralAccepted"
    REFERRAL_DECLINED = "ReferralDeclined"
    FIRST_CONTACT_MADE = "FirstContactMade"
    COORDINATOR_ASSIGNED = "CoordinatorAssigned"
    COORDINATOR_HANDED_OFF = "CoordinatorHandedOff"
    COORDINATOR_RELEASED = "CoordinatorReleased"
    ADMITTED = "Admitted"
    TRANSFERRED = "Transferred"
    DISCHARGED = "Discharged"
    ADMISSION_CANCELLED = "AdmissionCancelled"
    TRANSFER_CANCELLED = "TransferCancelled"
    DISCHARGE_CANCELLED = "DischargeCancelled"
    CONTACT_RECORDED = "ContactRecorded"
    CARE_PLAN_AGREED = "CarePlanAgreed"
    CARE_PLAN_REVISED = "CarePlanRevised"
    CARE_PLAN_REVIEWED = "CarePlanReviewed"
    CARE_PLAN_CLOSED = "CarePlanClosed"
    CARE_TEAM_MEMBER_JOINED = "CareTeamMemberJoined"
    CARE_TEAM_MEMBER_LEFT = "CareTeamMemberLeft"
    CARER_RECORDED = "CarerRecorded"
    OUTCOME_RECORDED = "OutcomeRecorded"
    JOURNEY_CLOSED = "JourneyClosed"
    EVENT_RETRACTED = "EventRetracted"
    PATIENTS_MERGED = "PatientsMerged"
    DISCHARGE_READY = "DischargeReady"
    PERSON_INFORMED = "PersonInformed"
    ALERT_ACKNOWLEDGED = "AlertAcknowledged"


T = TypeVar("T")


def by_type(table: Mapping[EventType, T]) -> dict[str, T]:
    """A dispatch table keyed by the types' plain names. Stored events carry ``type`` as
    a plain ``str``, and a dict of exact ``str`` keys (unlike one of enum members) takes
    the interpreter's fast lookup: half the cost, on every event of every fold."""
    return {kind.value: value for kind, value in table.items()}


class Setting(StrEnum):
    """Where care happens; also the timeline lane of an event (docs/projections.md)."""

    PRIMARY_CARE = "primary_care"
    ACUTE = "acute"
    COMMUNITY = "community"
    MENTAL_HEALTH = "mental_health"
    SOCIAL_CARE = "social_care"
    VOLUNTARY = "voluntary"
    HOME = "home"


class CoordinatorRole(StrEnum):
    """Who may coordinate a person's care (or join their team)."""

    GP = "gp"
    PRACTICE_NURSE = "practice_nurse"
    SPECIALIST_NURSE = "specialist_nurse"
    COMMUNITY_NURSE = "community_nurse"
    OCCUPATIONAL_THERAPIST = "occupational_therapist"
    MENTAL_HEALTH_PROFESSIONAL = "mental_health_professional"
    SOCIAL_WORKER = "social_worker"
    VOLUNTARY_SECTOR_ADVISER = "voluntary_sector_adviser"
    OTHER = "other"


class RecorderRole(StrEnum):
    """Who recorded an event: a coordinator role, an administrator, or a system feed."""

    GP = "gp"
    PRACTICE_NURSE = "practice_nurse"
    SPECIALIST_NURSE = "specialist_nurse"
    COMMUNITY_NURSE = "community_nurse"
    OCCUPATIONAL_THERAPIST = "occupational_therapist"
    MENTAL_HEALTH_PROFESSIONAL = "mental_health_professional"
    SOCIAL_WORKER = "social_worker"
    VOLUNTARY_SECTOR_ADVISER = "voluntary_sector_adviser"
    OTHER = "other"
    ADMINISTRATOR = "administrator"
    SYSTEM = "system"


class Criterion(StrEnum):
    """Why a person was identified for coordinated care (``CaseIdentified``)."""

    MULTIMORBIDITY = "multimorbidity"
    FRAILTY = "frailty"
    RECENT_ADMISSIONS = "recent_admissions"
    MENTAL_HEALTH = "mental_health"
    SOCIAL_CIRCUMSTANCES = "social_circumstances"
    END_OF_LIFE = "end_of_life"
    OTHER = "other"


class Priority(StrEnum):
    """A referral's priority; waits are measured against it."""

    ROUTINE = "routine"
    URGENT = "urgent"
    TWO_WEEK_WAIT = "two_week_wait"


class AdmissionMethod(StrEnum):
    """How a person was admitted; readmission counts emergency admissions only."""

    EMERGENCY = "emergency"
    ELECTIVE = "elective"
    MATERNITY = "maternity"
    TRANSFER = "transfer"
    UNKNOWN = "unknown"  # v1 addition: sent empty or as a local code no map translates


class DischargeDestination(StrEnum):
    """Where a person went on discharge; a death is not an index discharge."""

    USUAL_RESIDENCE = "usual_residence"
    CARE_HOME = "care_home"
    OTHER_HOSPITAL = "other_hospital"
    DIED = "died"
    OTHER = "other"
    UNKNOWN = "unknown"  # v1 addition: sent as free text or a local code no map translates


class PatientClass(StrEnum):
    """v1 addition: the hospital's class of the visit (HL7 PV1-2), when a feed says it."""

    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"
    DAY_CASE = "day_case"
    EMERGENCY = "emergency"
    MATERNITY = "maternity"
    OTHER = "other"
    UNKNOWN = "unknown"


class ContactMode(StrEnum):
    """How a contact took place."""

    FACE_TO_FACE = "face_to_face"
    PHONE = "phone"
    VIDEO = "video"
    HOME_VISIT = "home_visit"


class AgreedWith(StrEnum):
    """Who a personalised care plan was agreed with."""

    PATIENT = "patient"
    CARER = "carer"
    BOTH = "both"


class JourneyCloseReason(StrEnum):
    """Why a journey closed."""

    DIED = "died"
    MOVED_AWAY = "moved_away"
    NO_LONGER_NEEDED = "no_longer_needed"


class DelayReason(StrEnum):
    """Why a person medically fit to leave hospital is still there (``DischargeReady``)."""

    SOCIAL_CARE_ASSESSMENT = "social_care_assessment"
    HOME_CARE_PACKAGE = "home_care_package"
    CARE_HOME_PLACE = "care_home_place"
    EQUIPMENT = "equipment"
    FAMILY = "family"
    OTHER = "other"


class InformedAbout(StrEnum):
    """What a person was told (``PersonInformed``)."""

    COORDINATOR = "coordinator"
    CARE_PLAN = "care_plan"
    HANDOFF = "handoff"


class InformedHow(StrEnum):
    """How a person was told."""

    FACE_TO_FACE = "face_to_face"
    PHONE = "phone"
    VIDEO = "video"
    HOME_VISIT = "home_visit"
    LETTER = "letter"
    MESSAGE = "message"


# -- field types ----------------------------------------------------------------------

ID_MAX = 100
TEXT_MAX = 500

# A publisher's identifier (referral, encounter, plan, staff or team code): non-empty,
# short, surrounding whitespace ignored so " R1" and "R1" are the same referral.
# No control characters: ids are keys in read models, and PostgreSQL text cannot hold NUL.
Id = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=ID_MAX, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]
# Short free text (a reason, a ward). Empty text is refused: leave the field out instead.
# Line breaks and tabs are allowed in text; other control characters (NUL) are not.
Text = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=TEXT_MAX,
        pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]+$",
    ),
]
# An ODS-style organisation code, exactly as published (no case folding: a code is a key).
OdsCode = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{3,10}$")]
# A JSON number that is a real measurement: no strings, no booleans, no NaN or infinity.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _date_input(value: Any) -> Any:
    """Dates travel as ``YYYY-MM-DD`` only, not as timestamps or date-times."""
    if isinstance(value, str):
        if _ISO_DATE.fullmatch(value) is None:
            raise PydanticCustomError("date_format", "Date should be written YYYY-MM-DD")
        return value
    if isinstance(value, datetime) or not isinstance(value, date):
        raise PydanticCustomError("date_type", "Date should be a YYYY-MM-DD string")
    return value


Day = Annotated[date, BeforeValidator(_date_input)]


def _instant(type_message: str, offset_message: str) -> tuple[BeforeValidator, AfterValidator]:
    """The two checks of a date-time in the contract, with the messages of the field they
    guard: it travels as a string (or a ``datetime``), never a Unix timestamp, since the
    publisher's offset is part of the fact; and it carries that offset."""

    def given(value: Any) -> Any:
        if isinstance(value, str | datetime):
            return value
        raise PydanticCustomError("datetime_type", type_message)

    def aware(value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError("timezone_aware", offset_message)
        return value

    return BeforeValidator(given), AfterValidator(aware)


_MOMENT_GIVEN, _MOMENT_AWARE = _instant(
    "should be an ISO-8601 date-time string with a UTC offset",
    "a date-time must carry a UTC offset",
)
_OCCURRED_GIVEN, _OCCURRED_AWARE = _instant(
    "occurred_at should be an ISO-8601 date-time string with a UTC offset",
    "occurred_at must carry a UTC offset",
)

# An instant inside ``data`` (v1 addition): offset required, stored as UTC with ``Z`` so two
# spellings of one instant hash the same.
Moment = Annotated[
    datetime,
    _MOMENT_GIVEN,
    _MOMENT_AWARE,
    PlainSerializer(lambda v: utc_text(v), return_type=str, when_used="json"),
]


def _nhs(value: str) -> str:
    try:
        return check_nhs_number(value)
    except ValueError as exc:
        raise PydanticCustomError("nhs_number", "{reason}", {"reason": str(exc)}) from None


def _known_type(value: str) -> str:
    if value not in DATA_MODELS:
        raise PydanticCustomError(
            "unknown_type",
            "unknown event type {given}; known types: {known}",
            {"given": repr(value[:ID_MAX]), "known": ", ".join(EVENT_TYPES)},
        )
    return value


def _supported_version(value: int) -> int:
    if value not in SUPPORTED_SCHEMA_VERSIONS:
        supported = ", ".join(map(str, sorted(SUPPORTED_SCHEMA_VERSIONS)))
        raise PydanticCustomError(
            "schema_version",
            "unsupported schema_version {given}; supported: {supported}",
            {"given": value, "supported": supported},
        )
    return value


# -- shared shapes --------------------------------------------------------------------

FROZEN = ConfigDict(extra="forbid", frozen=True)


class Data(BaseModel):
    """A part of the contract (an event's data, or a value inside it): unknown fields
    are refused and nothing changes once made (``FROZEN``)."""

    model_config = FROZEN


class Source(Data):
    """The publishing organisation and system; authorisation checks ``organisation``."""

    organisation: OdsCode
    system: Id
    setting: Setting


class RecordedBy(Data):
    """The person or feed that recorded the fact at the source."""

    id: Id
    role: RecorderRole


class Professional(Data):
    """A staff member or team (never a patient identifier) who coordinates or helps."""

    id: Id
    role: CoordinatorRole
    organisation: OdsCode
    setting: Setting


class Goal(Data):
    """One goal of a personalised care plan, named by the publisher's ``goal_id``."""

    goal_id: Id
    description: Text
    target_date: Day | None = None


class ReferralTarget(Data):
    """Where a referral was sent."""

    organisation: OdsCode
    service: Text
    setting: Setting


class ContactWith(Data):
    """The professional a contact was with."""

    id: Id
    role: CoordinatorRole
    organisation: OdsCode


class LocalId(Data):
    """v1 addition: a person named by a local identifier (a hospital MRN from PID-3): the
    assigning authority (e.g. the trust's code) and the value it assigned. Like the NHS
    number it lives only in the identity register, never in the log."""

    authority: Id
    value: Id


class AsSent(Data):
    """v1 addition: a coded field as the source sent it (HL7 CWE: code and/or text), kept
    beside the contract's value so an uncoded or locally coded field loses nothing."""

    code: Text | None = None
    text: Text | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.code is None and self.text is None:
            raise PydanticCustomError("as_sent_empty", "give the code, the text or both")
        return self


def _unique_goal_ids(goals: tuple[Goal, ...] | None, field: str) -> None:
    """Two goals with one id in the same list would make later revisions ambiguous."""
    if not goals:
        return
    seen: set[str] = set()
    for goal in goals:
        if goal.goal_id in seen:
            raise PydanticCustomError(
                "duplicate_goal_id",
                "{field} names goal_id {goal_id} more than once",
                {"field": field, "goal_id": repr(goal.goal_id)},
            )
        seen.add(goal.goal_id)


# -- one data model per event type ----------------------------------------------------


class PatientRegistered(Data):
    """Opens the journey; the practice is the default coordinator."""

    practice: OdsCode
    gp_id: Id | None = None


class CaseIdentified(Data):
    """The person was identified for coordinated care (the cohort of the measures)."""

    criteria: tuple[Criterion, ...] = Field(min_length=1)
    risk_score: Annotated[Number, Field(ge=0, le=1)] | None = None


class ReferralMade(Data):
    referral_id: Id
    to: ReferralTarget
    priority: Priority
    reason: Text | None = None


class ReferralAccepted(Data):
    referral_id: Id


class ReferralDeclined(Data):
    referral_id: Id
    reason: Text


class FirstContactMade(Data):
    """The referral's clock stops."""

    referral_id: Id


class CoordinatorAssigned(Data):
    """First assignment of a named coordinator, or one after a gap."""

    coordinator: Professional
    reason: Text | None = None


class CoordinatorHandedOff(Data):
    """Coordination passes on; ``from_id`` is as reported, checked only as data quality."""

    from_id: Id
    to: Professional
    reason: Text | None = None


class CoordinatorReleased(Data):
    """Coordination ends with no successor."""

    coordinator_id: Id
    reason: Text | None = None


class Admitted(Data):
    """An admission. v1 additions (optional): the method and the patient class as sent,
    the class, and ``sent_at`` (when the source sent this version: of two admissions of
    one encounter at one time, the later sent corrects the other)."""

    encounter_id: Id
    hospital: OdsCode
    ward: Text | None = None
    method: AdmissionMethod
    method_as_sent: AsSent | None = None
    patient_class: PatientClass | None = None
    patient_class_as_sent: AsSent | None = None
    sent_at: Moment | None = None


class Transferred(Data):
    encounter_id: Id
    from_location: Text
    to_location: Text


class Discharged(Data):
    """A discharge. v1 additions (optional): the destination and patient class as sent,
    the class, the location discharged from, and ``sent_at`` (as for ``Admitted``)."""

    encounter_id: Id
    destination: DischargeDestination
    destination_as_sent: AsSent | None = None
    location: Text | None = None
    patient_class: PatientClass | None = None
    patient_class_as_sent: AsSent | None = None
    sent_at: Moment | None = None


class AdmissionCancelled(Data):
    """HL7 A11: voids the latest uncancelled admission of the encounter."""

    encounter_id: Id


class TransferCancelled(Data):
    """HL7 A12: voids the latest uncancelled transfer of the encounter."""

    encounter_id: Id


class DischargeCancelled(Data):
    """HL7 A13: voids the latest uncancelled discharge of the encounter."""

    encounter_id: Id


class ContactRecorded(BaseModel):
    """A contact with a professional; its own ``setting`` is its timeline lane.

    The JSON field is ``with`` (a Python keyword), held as ``with_`` and always
    serialised by its alias.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_alias=True,
        validate_by_name=True,
        serialize_by_alias=True,
    )

    setting: Setting
    mode: ContactMode
    with_: ContactWith = Field(alias="with")


class CarePlanAgreed(Data):
    plan_id: Id
    goals: tuple[Goal, ...]
    agreed_with: AgreedWith
    review_due: Day

    @model_validator(mode="after")
    def _goal_ids_unique(self) -> Self:
        _unique_goal_ids(self.goals, "goals")
        return self


class CarePlanRevised(Data):
    """A change to a plan's goals; a revision that changes nothing is a mistake."""

    plan_id: Id
    added: tuple[Goal, ...] | None = None
    changed: tuple[Goal, ...] | None = None
    achieved: tuple[Id, ...] | None = None
    dropped: tuple[Id, ...] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not (self.added or self.changed or self.achieved or self.dropped):
            raise PydanticCustomError(
                "empty_revision",
                "a revision needs at least one of added, changed, achieved or dropped",
            )
        _unique_goal_ids(self.added, "added")
        _unique_goal_ids(self.changed, "changed")
        return self


class CarePlanReviewed(Data):
    plan_id: Id
    next_review_due: Day


class CarePlanClosed(Data):
    plan_id: Id
    reason: Text | None = None


class CareTeamMemberJoined(Data):
    member: Professional


class CareTeamMemberLeft(Data):
    member_id: Id
    reason: Text | None = None


class CarerRecorded(Data):
    """A carer (by the publisher's id, never their name) and their consent to share."""

    carer_id: Id
    relationship: Text | None = None
    consent_to_share: Annotated[bool, Strict()]


class OutcomeRecorded(Data):
    """A score on a named instrument (e.g. ``P3CEQ``, ``EQ-5D-5L``), with item scores."""

    instrument: Id
    score: Number
    items: dict[Id, Number] | None = None


class JourneyClosed(Data):
    reason: JourneyCloseReason


class EventRetracted(Data):
    """Names an event entered in error; the ledger checks it exists for this person."""

    retracted_event_id: UUID
    reason: Text


class DischargeReady(Data):
    """The hospital's decision that the person no longer needs to be in hospital
    (medically optimised, no criteria to reside). A later one for the same encounter
    updates the delay reason; the discharge ends the wait."""

    encounter_id: Id
    delay_reason: DelayReason | None = None
    detail: Text | None = None


class PersonInformed(Data):
    """Someone (``by``) told the person or their carer (``told``) about their
    coordinator, care plan or a handoff; ``coordinator_id`` / ``plan_id`` say which."""

    by: ContactWith
    told: AgreedWith
    about: InformedAbout
    how: InformedHow
    coordinator_id: Id | None = None
    plan_id: Id | None = None


class AlertAcknowledged(Data):
    """A coordinator saw an alert (``docs/alerts.md``): the audit trail of who saw what
    when. The alert id is the read model's deterministic id."""

    alert_id: UUID
    coordinator_id: Id
    note: Text | None = None


class PatientsMerged(Data):
    """HL7 A40: the envelope's person (the survivor) and the merged person are one.

    Publishers name the merged person by ``merged_nhs_number`` or (v1 addition) by
    ``merged_local_id``; the ledger stores ``merged_patient_id`` instead (resolved
    through the identity register, so the log never holds an identifier) and refuses a
    publisher that sends it. Exactly one of the three is present: an identifier on the
    way in, the id in stored content.
    """

    merged_nhs_number: Annotated[str, AfterValidator(_nhs)] | None = None
    merged_local_id: LocalId | None = None
    merged_patient_id: UUID | None = None
    reason: Text | None = None

    @model_validator(mode="after")
    def _one_person(self) -> Self:
        named = (self.merged_nhs_number, self.merged_local_id, self.merged_patient_id)
        if sum(n is not None for n in named) != 1:
            raise PydanticCustomError(
                "merged_person", "name the merged person by merged_nhs_number or merged_local_id"
            )
        return self


# The registry: event type name -> data model (the class name is the type's name).
DATA_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        PatientRegistered,
        CaseIdentified,
        ReferralMade,
        ReferralAccepted,
        ReferralDeclined,
        FirstContactMade,
        CoordinatorAssigned,
        CoordinatorHandedOff,
        CoordinatorReleased,
        Admitted,
        Transferred,
        Discharged,
        AdmissionCancelled,
        TransferCancelled,
        DischargeCancelled,
        ContactRecorded,
        CarePlanAgreed,
        CarePlanRevised,
        CarePlanReviewed,
        CarePlanClosed,
        CareTeamMemberJoined,
        CareTeamMemberLeft,
        CarerRecorded,
        OutcomeRecorded,
        JourneyClosed,
        EventRetracted,
        PatientsMerged,
        DischargeReady,
        PersonInformed,
        AlertAcknowledged,
    )
}
if set(DATA_MODELS) != set(EventType):  # one vocabulary: the enum and the models agree
    raise RuntimeError(
        f"EventType and DATA_MODELS differ: {sorted(set(DATA_MODELS) ^ set(EventType))}"
    )
EVENT_TYPES: tuple[str, ...] = tuple(sorted(DATA_MODELS))


# -- the envelope ---------------------------------------------------------------------


class _Unchecked(Data):
    """Stands in for ``data`` while ``parse_envelope`` checks the envelope fields, when
    the data has already failed (or cannot be checked), so its errors are not doubled."""


_UNCHECKED: Final = _Unchecked()


class Envelope(Data):
    """One published fact: who it is about, when it occurred, who reported it, and its
    type-specific ``data`` (an instance of ``DATA_MODELS[type]``).

    Build envelopes with ``parse_envelope``, which reports data errors by path;
    constructing ``Envelope`` directly validates the same rules but summarises data
    errors under ``data``.
    """

    event_id: UUID
    type: Annotated[str, AfterValidator(_known_type)]
    schema_version: Annotated[int, Strict(), AfterValidator(_supported_version)]
    nhs_number: Annotated[str, AfterValidator(_nhs)] | None = None
    local_id: LocalId | None = None
    occurred_at: Annotated[datetime, _OCCURRED_GIVEN, _OCCURRED_AWARE]
    source: Source
    recorded_by: RecordedBy | None = None
    data: SerializeAsAny[BaseModel]

    @field_validator("data", mode="before")
    @classmethod
    def _typed_data(cls, value: Any, info: ValidationInfo) -> Any:
        if value is _UNCHECKED:
            return value
        model = DATA_MODELS.get(info.data.get("type", ""))
        if model is None:
            raise PydanticCustomError("data_unchecked", "cannot be checked without a known type")
        if isinstance(value, model):
            return value
        if isinstance(value, BaseModel):
            raise PydanticCustomError(
                "data_model",
                "a {given} cannot be the data of a {type} event",
                {"given": type(value).__name__, "type": model.__name__},
            )
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise PydanticCustomError(
                "data_invalid", "{errors}", {"errors": str(_contract_error(exc, "data"))}
            ) from None

    @model_validator(mode="after")
    def _names_a_person(self) -> Self:
        if self.nhs_number is None and self.local_id is None:
            raise PydanticCustomError("person_missing", PERSON_MISSING)
        return self


PERSON_MISSING: Final = "Field required: name the person by nhs_number or local_id (or both)"


# -- errors ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem: ``loc`` is a dotted path into the envelope (``data.goals.0.goal_id``;
    empty for the document as a whole), ``msg`` says what is wrong."""

    loc: str
    msg: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


class ContractError(ValueError):
    """An envelope that breaks the contract, with every problem found."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in self.errors))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.errors,))


def _dotted(loc: tuple[int | str, ...], prefix: str) -> str:
    parts = [prefix] if prefix else []
    parts.extend(str(part) for part in loc)
    return ".".join(parts)


def _field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    # include_input/url off: messages never echo values (an NHS number, for one).
    return [
        FieldError(_dotted(e["loc"], prefix), e["msg"])
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _contract_error(exc: ValidationError, prefix: str = "") -> ContractError:
    return ContractError(_field_errors(exc, prefix))


# -- parsing --------------------------------------------------------------------------


def _load(raw: Mapping[str, Any] | str | bytes) -> dict[str, Any]:
    if isinstance(raw, str | bytes | bytearray):
        try:
            raw = pydantic_core.from_json(raw)
        except ValueError as exc:
            raise ContractError([FieldError("", f"not valid JSON: {exc}")]) from None
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, Mapping):
        return dict(raw)
    kind = _JSON_KINDS.get(type(raw), type(raw).__name__)
    raise ContractError([FieldError("", f"an envelope must be a JSON object, not {kind}")])


_JSON_KINDS: Final = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def parse_envelope(raw: Mapping[str, Any] | str | bytes) -> Envelope:
    """The validated envelope, or a ContractError listing every problem found.

    ``data`` is checked against the model of ``type`` whenever the type is known, even
    when envelope fields are wrong too; it is not checked when ``schema_version`` names
    another version (its data would follow other rules).
    """
    obj = _load(raw)
    errors: list[FieldError] = []
    if obj.get("nhs_number") is None and obj.get("local_id") is None:
        errors.append(FieldError("nhs_number", PERSON_MISSING))
    kind = obj.get("type")
    model = DATA_MODELS.get(kind) if isinstance(kind, str) else None
    fields = dict(obj)
    if "data" in obj:
        version = obj.get("schema_version")
        other_version = isinstance(version, int) and version not in SUPPORTED_SCHEMA_VERSIONS
        fields["data"] = _UNCHECKED
        if model is not None and not other_version:
            try:
                fields["data"] = model.model_validate(obj["data"])
            except ValidationError as exc:
                errors.extend(_field_errors(exc, "data"))
    try:
        envelope = Envelope.model_validate(fields)
    except ValidationError as exc:
        # Envelope-field errors first, in field order, then the data's.
        found = _field_errors(exc)
        raise ContractError(_in_field_order(found, errors)) from None
    if errors:
        raise ContractError(errors)
    return envelope


def _in_field_order(found: list[FieldError], ours: list[FieldError]) -> list[FieldError]:
    """The model's errors and ours (a missing person, the data's), envelope fields in
    field order first, without the model's own summary of a missing person."""
    order = {name: i for i, name in enumerate(Envelope.model_fields)}
    person = [e for e in ours if e.loc == "nhs_number"]
    data = [e for e in ours if e.loc != "nhs_number"]
    fields = [e for e in found if e.msg != PERSON_MISSING] + person
    fields.sort(key=lambda e: order.get(e.loc.split(".")[0], len(order)))
    return fields + data


def data_from_content(type: str, data: Mapping[str, Any]) -> BaseModel:
    """The typed data model of a stored event, from its stored ``data``."""
    model = DATA_MODELS.get(type)
    if model is None:
        raise ContractError([FieldError("type", f"unknown event type {type!r}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _contract_error(exc, "data") from None


# -- stored content -------------------------------------------------------------------


def utc_text(moment: datetime) -> str:
    """One spelling per instant: UTC, ``Z``, microseconds only when non-zero."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def envelope_content(env: Envelope) -> dict[str, Any]:
    """The JSON-ready content the ledger stores and hashes: no NHS number, UTC times,
    absent and null optional data fields alike (both left out of ``data``).

    One pydantic-core dump does the work; ``exclude_none`` can only drop optional data
    fields and ``recorded_by`` (every other envelope field is required), which is put
    back as ``null``. pydantic-core already writes a zero offset as ``Z``; any other
    offset is converted to UTC here.
    """
    content = env.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=_NOT_CONTENT)
    if "recorded_by" not in content:
        content["recorded_by"] = None
    if not content["occurred_at"].endswith("Z"):
        content["occurred_at"] = utc_text(env.occurred_at)
    return content


_NOT_CONTENT: Final = {"nhs_number", "local_id"}


# -- which contents are plain JSON ------------------------------------------------------


def _plain(annotation: Any) -> bool:
    """Whether every value a field of this type dumps to (``mode="json"``) is a string,
    a boolean, null, or an object/array of those with fixed ASCII keys: no number at
    all, and no key a publisher chooses. For such content orjson with sorted keys writes
    exactly the RFC 8785 bytes (``domain.integrity.canonical_content``)."""
    if annotation is None or annotation is type(None):
        return True
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return all(
                (f.alias or name).isascii() and _plain(f.annotation)
                for name, f in annotation.model_fields.items()
            )
        return issubclass(annotation, str | bool | UUID | date | datetime)  # not int
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _plain(args[0])
    if origin in (Union, UnionType):
        return all(_plain(a) for a in args)
    if origin in (tuple, list, frozenset, set):
        return all(_plain(a) for a in args if a is not Ellipsis)
    return False  # dict (publisher's keys), float, int, Any, Literal, anything new


# The event types whose stored content can hold no number and no publisher-chosen key
# (the envelope's own fields are fixed, and its one number, ``schema_version``, is a
# supported version): decided from the models at import, so a type that gains a
# number leaves the set by itself.
PLAIN_CONTENT_TYPES: Final = frozenset(kind for kind, model in DATA_MODELS.items() if _plain(model))
