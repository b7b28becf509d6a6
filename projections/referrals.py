"""Referrals: open, accepted, declined, first contact, and their waits (a pure fold).

From the standing facts in occurred order, per ``referral_id``: ``ReferralMade`` opens
it; ``ReferralAccepted``, ``ReferralDeclined`` and ``FirstContactMade`` record when each
happened (the first of each counts; a repeat is ignored). The status is the furthest
step reached: ``first_contact`` (the referral's clock stops), else ``declined``, else
``accepted``, else ``open``. A response to a referral never made (before it, in occurred
order) is flagged ``unknown_referral`` and ignored; a second ``ReferralMade`` of the
same id is flagged ``repeated_referral`` and ignored.

``wait_days`` is referral to first contact in calendar days in the configured zone
(docs/measures.md, "Calendar days"); a referral still waiting has none: its wait so far depends
on the day it is asked, and the queries compute it (an incomplete wait, reported, never dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, cast
from uuid import UUID

from domain.contract import EventType, by_type
from domain.event_data import (
    FirstContactMadeData,
    ReferralAcceptedData,
    ReferralDeclinedData,
    ReferralMadeData,
)
from domain.journey import RecordedEvent
from projections.fold import Finding, PersonEvents
from projections.readmodel import ReadModel, Rows, named
from projections.tables import person_key, table


class Referral(NamedTuple):
    """One row of ``referral_status``."""

    patient_id: UUID
    referral_id: str
    made_at: datetime
    to_organisation: str
    service: str
    setting: str
    priority: str
    reason: str | None
    status: str  # "open", "accepted", "declined" or "first_contact"
    accepted_at: datetime | None
    declined_at: datetime | None
    decline_reason: str | None
    first_contact_at: datetime | None
    wait_days: int | None
    made_event_id: UUID


@dataclass(frozen=True, slots=True)
class ReferralFold:
    referrals: tuple[Referral, ...]
    findings: tuple[Finding, ...]


# The event that moves a referral on -> the column it sets (the first one counts).
STEPS: dict[str, str] = by_type(
    {
        EventType.REFERRAL_ACCEPTED: "accepted_at",
        EventType.REFERRAL_DECLINED: "declined_at",
        EventType.FIRST_CONTACT_MADE: "first_contact_at",
    }
)


@dataclass(slots=True)
class _Open:
    """A referral while the fold runs: when each step first happened."""

    made: RecordedEvent
    accepted_at: datetime | None = None
    declined_at: datetime | None = None
    decline_reason: str | None = None
    first_contact_at: datetime | None = None


_Found = dict[str, _Open]
# What the steps share (ReferralAccepted, ReferralDeclined and FirstContactMade data).
_StepData = ReferralAcceptedData | ReferralDeclinedData | FirstContactMadeData
_Handler = Callable[[_Found, RecordedEvent, list[Finding]], None]


def _made(found: _Found, event: RecordedEvent, findings: list[Finding]) -> None:
    referral_id = cast(ReferralMadeData, event.data)["referral_id"]
    if referral_id in found:
        findings.append(
            Finding("repeated_referral", event, f"referral {referral_id} was already made")
        )
        return
    found[referral_id] = _Open(event)


def _step(found: _Found, event: RecordedEvent, findings: list[Finding]) -> None:
    data = cast(_StepData, event.data)
    referral_id = data["referral_id"]
    referral = found.get(referral_id)
    if referral is None:
        findings.append(
            Finding("unknown_referral", event, f"no referral {referral_id} was made before this")
        )
        return
    column = STEPS[event.type]
    if getattr(referral, column) is None:
        setattr(referral, column, event.occurred_at)
        if event.type == EventType.REFERRAL_DECLINED.value:
            referral.decline_reason = cast(ReferralDeclinedData, data).get("reason")


# The dispatch table; every other fact says nothing about referrals.
ON: dict[str, _Handler] = {EventType.REFERRAL_MADE.value: _made, **dict.fromkeys(STEPS, _step)}


def fold(person: PersonEvents) -> ReferralFold:
    """The person's referrals in order of referral, and findings (module docstring)."""
    zone = person.config.zone
    found: _Found = {}
    findings: list[Finding] = []
    for event in person.effective:
        if event.type in ON:  # most events are not this model's: the cheapest test first
            ON[event.type](found, event, findings)
    rows = []
    for referral_id, r in found.items():
        made = r.made
        data = cast(ReferralMadeData, made.data)
        to = data["to"]
        wait: int | None = None
        if r.first_contact_at is not None:
            status = "first_contact"
            wait = (
                r.first_contact_at.astimezone(zone).date()
                - made.occurred_at.astimezone(zone).date()
            ).days
        else:
            status = (
                "declined"
                if r.declined_at is not None
                else "accepted"
                if r.accepted_at is not None
                else "open"
            )
        rows.append(
            Referral(
                person.patient_id,
                referral_id,
                made.occurred_at,
                to["organisation"],
                to["service"],
                to["setting"],
                data["priority"],
                data.get("reason"),
                status,
                r.accepted_at,
                r.declined_at,
                r.decline_reason,
                r.first_contact_at,
                wait,
                made.event_id,
            )
        )
    return ReferralFold(tuple(rows), tuple(findings))


def is_open(referral: Referral) -> bool:
    """Still waiting for a first contact (made or accepted, not declined)."""
    return referral.status in ("open", "accepted")


IGNORES = named(
    """
    PatientRegistered CaseIdentified CoordinatorAssigned CoordinatorHandedOff
    CoordinatorReleased Admitted Transferred Discharged AdmissionCancelled TransferCancelled
    DischargeCancelled ContactRecorded CarePlanAgreed CarePlanRevised CarePlanReviewed
    CarePlanClosed CareTeamMemberJoined CareTeamMemberLeft CarerRecorded OutcomeRecorded
    JourneyClosed EventRetracted PatientsMerged DischargeReady PersonInformed
    AlertAcknowledged
    """
)

REFERRALS = table(
    "referral_status",
    Referral,
    person_key("referral_id"),
)


def _rows(result: ReferralFold) -> Rows:
    return {REFERRALS.name: result.referrals}


MODEL: ReadModel[ReferralFold] = ReadModel(
    "referrals",
    (REFERRALS,),
    frozenset(ON),
    IGNORES,
    lambda person, _folds: fold(person),
    _rows,
)
