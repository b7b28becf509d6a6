"""The cross-setting journey timeline and admission spells (a pure fold).

Timeline: every event of the person (all merged streams), ordered by occurred time with
ties by ledger position, each with its lane (``RecordedEvent.setting``: the source's
setting, a contact's own), a coarse kind, a one-line summary, the source, both clocks,
the position, and its status: ``recorded``, ``retracted`` or ``cancelled`` (with the
event that voided it). Corrections (retractions, cancels, merges) are in the timeline
too, so an auditor sees what changed and why.

Spells: one per admission, from the standing facts in occurred order, keyed by
``encounter_id`` while open: ``Admitted`` opens, ``Transferred`` moves the person (the
transfers are listed), ``Discharged`` closes, with the length of stay in calendar days
in the configured zone (NHS convention: discharge date minus admission date). Cancelled
and retracted admissions, transfers and discharges have already been removed by
``projections/fold.py``. A discharge or transfer with no open admission of its
encounter, and an admission of an encounter already open, are flagged and otherwise
ignored (the timeline still shows them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from domain.journey import RecordedEvent
from projections.fold import Finding, PersonEvents


class TimelineEntry(NamedTuple):
    """One row of ``journey_timeline``."""

    patient_id: UUID
    seq: int
    position: int
    event_id: UUID
    stream_patient_id: UUID
    type: str
    kind: str
    setting: str
    summary: str
    source_organisation: str
    source_system: str
    occurred_at: datetime
    recorded_at: datetime
    status: str
    voided_by: UUID | None


class Spell(NamedTuple):
    """One row of ``admission_spells``."""

    patient_id: UUID
    seq: int
    encounter_id: str
    hospital: str
    ward: str | None
    location: str | None
    method: str
    admitted_at: datetime
    discharged_at: datetime | None
    destination: str | None
    length_of_stay_days: int | None
    transfers: tuple[dict[str, Any], ...]
    admitted_event_id: UUID
    discharged_event_id: UUID | None
    status: str  # "open" or "closed"


@dataclass(frozen=True, slots=True)
class TimelineFold:
    entries: tuple[TimelineEntry, ...]
    spells: tuple[Spell, ...]
    findings: tuple[Finding, ...]


KINDS: dict[str, str] = {
    "PatientRegistered": "journey",
    "JourneyClosed": "journey",
    "PatientsMerged": "journey",
    "CaseIdentified": "identification",
    "ReferralMade": "referral",
    "ReferralAccepted": "referral",
    "ReferralDeclined": "referral",
    "FirstContactMade": "referral",
    "CoordinatorAssigned": "coordination",
    "CoordinatorHandedOff": "coordination",
    "CoordinatorReleased": "coordination",
    "Admitted": "hospital",
    "Transferred": "hospital",
    "Discharged": "hospital",
    "AdmissionCancelled": "hospital",
    "TransferCancelled": "hospital",
    "DischargeCancelled": "hospital",
    "ContactRecorded": "contact",
    "CarePlanAgreed": "care_plan",
    "CarePlanRevised": "care_plan",
    "CarePlanReviewed": "care_plan",
    "CarePlanClosed": "care_plan",
    "CareTeamMemberJoined": "care_team",
    "CareTeamMemberLeft": "care_team",
    "CarerRecorded": "carer",
    "OutcomeRecorded": "outcome",
    "EventRetracted": "correction",
    "DischargeReady": "hospital",
    "PersonInformed": "coordination",
    "AlertAcknowledged": "alert",
}


def fold(person: PersonEvents) -> TimelineFold:
    """The person's timeline rows, spells and spell findings (module docstring)."""
    patient = person.patient_id
    by_id: dict[UUID, RecordedEvent] | None = None
    entries = []
    for seq, (e, status, voider) in enumerate(person.entries):
        if e.type == "EventRetracted" and by_id is None:  # names its target's type
            by_id = {entry.event.event_id: entry.event for entry in person.entries}
        source = e.source
        entries.append(
            TimelineEntry(
                patient,
                seq,
                e.position,
                e.event_id,
                e.patient_id,
                e.type,
                KINDS.get(e.type, "other"),
                e.setting,
                summary(e, by_id),
                source["organisation"],
                source["system"],
                e.occurred_at,
                e.recorded_at,
                status,
                voider.event_id if voider is not None else None,
            )
        )
    spells, findings = _spells(person)
    return TimelineFold(tuple(entries), spells, findings)


def _spells(person: PersonEvents) -> tuple[tuple[Spell, ...], tuple[Finding, ...]]:
    zone = person.config.zone
    open_: dict[str, dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for event in person.effective:
        kind = event.type
        if kind not in ("Admitted", "Transferred", "Discharged"):
            continue
        data = event.data
        encounter = str(data["encounter_id"])
        spell = open_.get(encounter)
        if kind == "Admitted":
            if spell is not None:
                findings.append(
                    Finding(
                        "admission_while_admitted",
                        event,
                        f"encounter {encounter} is already admitted",
                    )
                )
                continue
            spell = {"event": event, "transfers": [], "location": data.get("ward")}
            open_[encounter] = spell
            done.append(spell)
        elif spell is None:
            what = "discharge" if kind == "Discharged" else "transfer"
            findings.append(
                Finding(
                    f"{what}_without_admission",
                    event,
                    f"no open admission of encounter {encounter}",
                )
            )
        elif kind == "Transferred":
            spell["transfers"].append(
                {
                    "at": event.occurred_at.isoformat(),
                    "from": data["from_location"],
                    "to": data["to_location"],
                    "event_id": str(event.event_id),
                }
            )
            spell["location"] = data["to_location"]
        else:
            spell["discharge"] = event
            del open_[encounter]
    spells = []
    for seq, spell in enumerate(done):
        admitted: RecordedEvent = spell["event"]
        discharge: RecordedEvent | None = spell.get("discharge")
        stay = None
        if discharge is not None:
            stay = (
                discharge.occurred_at.astimezone(zone).date()
                - admitted.occurred_at.astimezone(zone).date()
            ).days
        spells.append(
            Spell(
                person.patient_id,
                seq,
                str(admitted.data["encounter_id"]),
                str(admitted.data["hospital"]),
                _opt(admitted.data.get("ward")),
                _opt(spell["location"]),
                str(admitted.data["method"]),
                admitted.occurred_at,
                discharge.occurred_at if discharge is not None else None,
                str(discharge.data["destination"]) if discharge is not None else None,
                stay,
                tuple(spell["transfers"]),
                admitted.event_id,
                discharge.event_id if discharge is not None else None,
                "closed" if discharge is not None else "open",
            )
        )
    return tuple(spells), tuple(findings)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def summary(event: RecordedEvent, by_id: dict[UUID, RecordedEvent] | None = None) -> str:
    """A one-line, human summary of the event (no identifiers beyond staff codes)."""
    d = event.data
    kind = event.type
    maker = _SUMMARIES.get(kind)
    if maker is not None:
        return maker(d)
    if kind == "EventRetracted":
        target = (by_id or {}).get(_uuid(d.get("retracted_event_id")))
        what = (
            f"{target.type} of {target.occurred_at.date().isoformat()}"
            if target is not None
            else "an earlier event"
        )
        return f"Retracted {what}: {d.get('reason', '')}".rstrip(": ")
    return kind


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _words(value: Any) -> str:
    return str(value).replace("_", " ")


def _who(p: dict[str, Any]) -> str:
    return f"{p.get('id')} ({_words(p.get('role'))}, {p.get('organisation')})"


def _reason(d: dict[str, Any]) -> str:
    return f": {d['reason']}" if d.get("reason") else ""


def _registered(d: dict[str, Any]) -> str:
    gp = f", GP {d['gp_id']}" if d.get("gp_id") else ""
    return f"Registered with practice {d['practice']}{gp}"


def _identified(d: dict[str, Any]) -> str:
    risk = f" (risk {float(d['risk_score']):.2f})" if d.get("risk_score") is not None else ""
    return "Identified for coordinated care: " + ", ".join(map(_words, d["criteria"])) + risk


def _referred(d: dict[str, Any]) -> str:
    to = d["to"]
    return (
        f"Referred ({_words(d['priority'])}) to {to['service']} at "
        f"{to['organisation']} [{d['referral_id']}]"
    )


def _admitted(d: dict[str, Any]) -> str:
    ward = f", ward {d['ward']}" if d.get("ward") else ""
    return f"Admitted ({_words(d['method'])}) to {d['hospital']}{ward} [{d['encounter_id']}]"


def _contact(d: dict[str, Any]) -> str:
    return f"{_words(d['mode']).capitalize()} with {_who(d['with'])}"


def _plan_agreed(d: dict[str, Any]) -> str:
    return (
        f"Care plan {d['plan_id']} agreed with {d['agreed_with']}: "
        f"{len(d['goals'])} goals, review due {d['review_due']}"
    )


def _plan_revised(d: dict[str, Any]) -> str:
    parts = [f"{len(d[k])} {k}" for k in ("added", "changed", "achieved", "dropped") if d.get(k)]
    return f"Care plan {d['plan_id']} revised: " + ", ".join(parts)


def _carer(d: dict[str, Any]) -> str:
    rel = f" ({d['relationship']})" if d.get("relationship") else ""
    consent = "consents" if d.get("consent_to_share") else "does not consent"
    return f"Carer {d['carer_id']}{rel} recorded; {consent} to share"


_SUMMARIES: dict[str, Any] = {
    "PatientRegistered": _registered,
    "CaseIdentified": _identified,
    "ReferralMade": _referred,
    "ReferralAccepted": lambda d: f"Referral {d['referral_id']} accepted",
    "ReferralDeclined": lambda d: f"Referral {d['referral_id']} declined: {d['reason']}",
    "FirstContactMade": lambda d: f"First contact on referral {d['referral_id']}",
    "CoordinatorAssigned": lambda d: f"Coordinator assigned: {_who(d['coordinator'])}" + _reason(d),
    "CoordinatorHandedOff": lambda d: (
        f"Coordination handed off from {d['from_id']} to {_who(d['to'])}" + _reason(d)
    ),
    "CoordinatorReleased": lambda d: f"Coordinator {d['coordinator_id']} released" + _reason(d),
    "Admitted": _admitted,
    "Transferred": lambda d: (
        f"Transferred from {d['from_location']} to {d['to_location']} [{d['encounter_id']}]"
    ),
    "Discharged": lambda d: f"Discharged to {_words(d['destination'])} [{d['encounter_id']}]",
    "AdmissionCancelled": lambda d: f"Admission cancelled [{d['encounter_id']}]",
    "TransferCancelled": lambda d: f"Transfer cancelled [{d['encounter_id']}]",
    "DischargeCancelled": lambda d: f"Discharge cancelled [{d['encounter_id']}]",
    "ContactRecorded": _contact,
    "CarePlanAgreed": _plan_agreed,
    "CarePlanRevised": _plan_revised,
    "CarePlanReviewed": lambda d: (
        f"Care plan {d['plan_id']} reviewed; next review due {d['next_review_due']}"
    ),
    "CarePlanClosed": lambda d: f"Care plan {d['plan_id']} closed" + _reason(d),
    "CareTeamMemberJoined": lambda d: f"{_who(d['member'])} joined the care team",
    "CareTeamMemberLeft": lambda d: f"{d['member_id']} left the care team" + _reason(d),
    "CarerRecorded": _carer,
    "OutcomeRecorded": lambda d: f"{d['instrument']} score {d['score']:g}",
    "JourneyClosed": lambda d: f"Journey closed: {_words(d['reason'])}",
    "PatientsMerged": lambda d: "Another patient record merged into this journey" + _reason(d),
    "DischargeReady": lambda d: (
        f"Ready for discharge [{d['encounter_id']}]"
        + (f"; waiting for {_words(d['delay_reason'])}" if d.get("delay_reason") else "")
    ),
    "PersonInformed": lambda d: (
        f"{_words(d['told']).capitalize()} told about their {_words(d['about'])} "
        f"by {_who(d['by'])} ({_words(d['how'])})"
    ),
    "AlertAcknowledged": lambda d: f"Alert acknowledged by {d['coordinator_id']}",
}
