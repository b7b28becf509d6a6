"""The cross-setting journey timeline and admission spells (a pure fold).

Timeline: every event of the person (all merged streams), ordered by occurred time with
ties by ledger position, each with its lane (``RecordedEvent.setting``: the source's
setting, a contact's own), a coarse kind, a one-line summary, the source, both clocks,
the position, and its status: ``recorded``, ``retracted``, ``corrected`` or ``cancelled`` (with the
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

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, NamedTuple, cast
from uuid import UUID

from domain.contract import EventType, by_type
from domain.event_data import AdmittedData, DischargedData, TransferredData
from domain.journey import RecordedEvent
from projections.fold import Finding, PersonEvents
from projections.readmodel import ReadModel, Rows
from projections.tables import JSONB, Position, person_key, table


class TimelineEntry(NamedTuple):
    """One row of ``journey_timeline``."""

    patient_id: UUID
    seq: int
    position: Position
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
    transfers: Annotated[tuple[dict[str, Any], ...], JSONB]
    admitted_event_id: UUID
    discharged_event_id: UUID | None
    status: str  # "open" or "closed"


@dataclass(frozen=True, slots=True)
class TimelineFold:
    entries: tuple[TimelineEntry, ...]
    spells: tuple[Spell, ...]
    findings: tuple[Finding, ...]


# The dispatch table: every event type's coarse kind (its summary is in _SUMMARIES).
# The timeline shows every event, corrections included, so no type is ignored.
KINDS: dict[str, str] = by_type(
    {
        EventType.PATIENT_REGISTERED: "journey",
        EventType.JOURNEY_CLOSED: "journey",
        EventType.PATIENTS_MERGED: "journey",
        EventType.CASE_IDENTIFIED: "identification",
        EventType.REFERRAL_MADE: "referral",
        EventType.REFERRAL_ACCEPTED: "referral",
        EventType.REFERRAL_DECLINED: "referral",
        EventType.FIRST_CONTACT_MADE: "referral",
        EventType.COORDINATOR_ASSIGNED: "coordination",
        EventType.COORDINATOR_HANDED_OFF: "coordination",
        EventType.COORDINATOR_RELEASED: "coordination",
        EventType.ADMITTED: "hospital",
        EventType.TRANSFERRED: "hospital",
        EventType.DISCHARGED: "hospital",
        EventType.ADMISSION_CANCELLED: "hospital",
        EventType.TRANSFER_CANCELLED: "hospital",
        EventType.DISCHARGE_CANCELLED: "hospital",
        EventType.CONTACT_RECORDED: "contact",
        EventType.CARE_PLAN_AGREED: "care_plan",
        EventType.CARE_PLAN_REVISED: "care_plan",
        EventType.CARE_PLAN_REVIEWED: "care_plan",
        EventType.CARE_PLAN_CLOSED: "care_plan",
        EventType.CARE_TEAM_MEMBER_JOINED: "care_team",
        EventType.CARE_TEAM_MEMBER_LEFT: "care_team",
        EventType.CARER_RECORDED: "carer",
        EventType.OUTCOME_RECORDED: "outcome",
        EventType.EVENT_RETRACTED: "correction",
        EventType.DISCHARGE_READY: "hospital",
        EventType.PERSON_INFORMED: "coordination",
        EventType.ALERT_ACKNOWLEDGED: "alert",
    }
)

# Plain names (not enum members) where every event is compared: see ``by_type``.
ADMITTED: str = EventType.ADMITTED.value
TRANSFERRED: str = EventType.TRANSFERRED.value
DISCHARGED: str = EventType.DISCHARGED.value
RETRACTED_TYPE: str = EventType.EVENT_RETRACTED.value
SPELL_TYPES = frozenset({ADMITTED, TRANSFERRED, DISCHARGED})
_SpellData = AdmittedData | TransferredData | DischargedData


def fold(person: PersonEvents) -> TimelineFold:
    """The person's timeline rows, spells and spell findings (module docstring)."""
    patient = person.patient_id
    by_id: dict[UUID, RecordedEvent] | None = None
    entries = []
    for seq, (e, status, voider) in enumerate(person.entries):
        if e.type == RETRACTED_TYPE and by_id is None:  # names its target's type
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


@dataclass(slots=True)
class _Stay:
    """An admission while the fold runs."""

    admitted: RecordedEvent
    location: str | None  # the ward, then wherever the last transfer took the person
    transfers: list[dict[str, Any]] = field(default_factory=list)
    discharge: RecordedEvent | None = None


def _spells(person: PersonEvents) -> tuple[tuple[Spell, ...], tuple[Finding, ...]]:
    zone = person.config.zone
    open_: dict[str, _Stay] = {}
    done: list[_Stay] = []
    findings: list[Finding] = []
    for event in person.effective:
        kind = event.type
        if kind not in SPELL_TYPES:
            continue
        data = cast(_SpellData, event.data)
        encounter = data["encounter_id"]
        spell = open_.get(encounter)
        if kind == ADMITTED:
            if spell is not None:
                findings.append(
                    Finding(
                        "admission_while_admitted",
                        event,
                        f"encounter {encounter} is already admitted",
                    )
                )
                continue
            spell = _Stay(event, cast(AdmittedData, data).get("ward"))
            open_[encounter] = spell
            done.append(spell)
        elif spell is None:
            what = "discharge" if kind == DISCHARGED else "transfer"
            findings.append(
                Finding(
                    f"{what}_without_admission",
                    event,
                    f"no open admission of encounter {encounter}",
                )
            )
        elif kind == TRANSFERRED:
            moved = cast(TransferredData, data)
            spell.transfers.append(
                {
                    "at": event.occurred_at.isoformat(),
                    "from": moved["from_location"],
                    "to": moved["to_location"],
                    "event_id": str(event.event_id),
                }
            )
            spell.location = moved["to_location"]
        else:
            spell.discharge = event
            del open_[encounter]
    spells = []
    for seq, spell in enumerate(done):
        admitted = spell.admitted
        admission = cast(AdmittedData, admitted.data)
        discharge = spell.discharge
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
                admission["encounter_id"],
                admission["hospital"],
                admission.get("ward"),
                spell.location,
                admission["method"],
                admitted.occurred_at,
                discharge.occurred_at if discharge is not None else None,
                cast(DischargedData, discharge.data)["destination"]
                if discharge is not None
                else None,
                stay,
                tuple(spell.transfers),
                admitted.event_id,
                discharge.event_id if discharge is not None else None,
                "closed" if discharge is not None else "open",
            )
        )
    return tuple(spells), tuple(findings)


def summary(event: RecordedEvent, by_id: dict[UUID, RecordedEvent] | None = None) -> str:
    """A one-line, human summary of the event (no identifiers beyond staff codes)."""
    d = event.data
    kind = event.type
    maker = _SUMMARIES.get(kind)
    if maker is not None:
        return maker(d)
    if kind == RETRACTED_TYPE:
        target_id = _uuid(d.get("retracted_event_id"))
        target = (by_id or {}).get(target_id) if target_id is not None else None
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


_SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = by_type(
    {
        EventType.PATIENT_REGISTERED: _registered,
        EventType.CASE_IDENTIFIED: _identified,
        EventType.REFERRAL_MADE: _referred,
        EventType.REFERRAL_ACCEPTED: lambda d: f"Referral {d['referral_id']} accepted",
        EventType.REFERRAL_DECLINED: lambda d: (
            f"Referral {d['referral_id']} declined: {d['reason']}"
        ),
        EventType.FIRST_CONTACT_MADE: lambda d: f"First contact on referral {d['referral_id']}",
        EventType.COORDINATOR_ASSIGNED: lambda d: (
            f"Coordinator assigned: {_who(d['coordinator'])}" + _reason(d)
        ),
        EventType.COORDINATOR_HANDED_OFF: lambda d: (
            f"Coordination handed off from {d['from_id']} to {_who(d['to'])}" + _reason(d)
        ),
        EventType.COORDINATOR_RELEASED: lambda d: (
            f"Coordinator {d['coordinator_id']} released" + _reason(d)
        ),
        EventType.ADMITTED: _admitted,
        EventType.TRANSFERRED: lambda d: (
            f"Transferred from {d['from_location']} to {d['to_location']} [{d['encounter_id']}]"
        ),
        EventType.DISCHARGED: lambda d: (
            f"Discharged to {_words(d['destination'])} [{d['encounter_id']}]"
        ),
        EventType.ADMISSION_CANCELLED: lambda d: f"Admission cancelled [{d['encounter_id']}]",
        EventType.TRANSFER_CANCELLED: lambda d: f"Transfer cancelled [{d['encounter_id']}]",
        EventType.DISCHARGE_CANCELLED: lambda d: f"Discharge cancelled [{d['encounter_id']}]",
        EventType.CONTACT_RECORDED: _contact,
        EventType.CARE_PLAN_AGREED: _plan_agreed,
        EventType.CARE_PLAN_REVISED: _plan_revised,
        EventType.CARE_PLAN_REVIEWED: lambda d: (
            f"Care plan {d['plan_id']} reviewed; next review due {d['next_review_due']}"
        ),
        EventType.CARE_PLAN_CLOSED: lambda d: f"Care plan {d['plan_id']} closed" + _reason(d),
        EventType.CARE_TEAM_MEMBER_JOINED: lambda d: f"{_who(d['member'])} joined the care team",
        EventType.CARE_TEAM_MEMBER_LEFT: lambda d: (
            f"{d['member_id']} left the care team" + _reason(d)
        ),
        EventType.CARER_RECORDED: _carer,
        EventType.OUTCOME_RECORDED: lambda d: f"{d['instrument']} score {d['score']:g}",
        EventType.JOURNEY_CLOSED: lambda d: f"Journey closed: {_words(d['reason'])}",
        EventType.PATIENTS_MERGED: lambda d: (
            "Another patient record merged into this journey" + _reason(d)
        ),
        EventType.DISCHARGE_READY: lambda d: (
            f"Ready for discharge [{d['encounter_id']}]"
            + (f"; waiting for {_words(d['delay_reason'])}" if d.get("delay_reason") else "")
        ),
        EventType.PERSON_INFORMED: lambda d: (
            f"{_words(d['told']).capitalize()} told about their {_words(d['about'])} "
            f"by {_who(d['by'])} ({_words(d['how'])})"
        ),
        EventType.ALERT_ACKNOWLEDGED: lambda d: f"Alert acknowledged by {d['coordinator_id']}",
    }
)


TIMELINE = table(
    "journey_timeline",
    TimelineEntry,
    person_key("seq"),
)
SPELLS = table(
    "admission_spells",
    Spell,
    person_key("seq"),
)


def _rows(result: TimelineFold) -> Rows:
    return {TIMELINE.name: result.entries, SPELLS.name: result.spells}


MODEL: ReadModel[TimelineFold] = ReadModel(
    "timeline",
    (TIMELINE, SPELLS),
    frozenset(KINDS),
    frozenset(),
    lambda person, _folds: fold(person),
    _rows,
)
