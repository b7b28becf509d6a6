"""One person's journey as FHIR R4 resources (a pure mapping; the table is docs/fhir.md).

Input is the person as ``projections/fold.py`` prepared them (merges, order, retractions
and cancels settled; cut at ``as_of`` when asked), so the same folds decide what the
resources say as decide the read models: coordinator intervals (``coordinators``),
spells (``timeline``), care plans (``care_plans``), referrals (``referrals``). What the
read models do not keep (care-team members, contacts, the events behind each resource)
comes from the same prepared events.

* ``Patient``: the NHS number only when the caller may see it (``Subject.nhs_number``);
  standing merges as ``link`` (``replaces`` / ``replaced-by``).
* ``EpisodeOfCare`` per coordination journey (``PatientRegistered`` to
  ``JourneyClosed``), ``careManager`` the named coordinator, ``statusHistory``, and every
  coordinator interval as an extension; a ``CareTeam`` per journey with who coordinated
  when (named or the practice default) and the care-team members.
* ``Encounter`` per admission spell (location history, admit source, discharge
  disposition), per hospital stay of two or more spells joined by transfers (the spells
  are ``partOf`` it: the measures' transfer-chain rule), and per recorded contact.
* ``CarePlan`` with its goals contained, status history and the next review;
  ``ServiceRequest`` per referral with its waits.
* ``Provenance`` per resource: every ledger event it was derived from, by event id,
  position, hash and previous hash, so a receiver can check it against the ledger.

Admissions, contacts, referrals, care plans and registrations that were retracted or
cancelled appear with status ``entered-in-error`` (Provenance activity ``NULLIFY``).

Every resource is validated by its ``fhir.resources`` R4B model as it is built. Ids are
UUIDv5 of the subject's id and the event that started the resource, so the same ledger
gives the same ids, and a pseudonymised export's ids reveal nothing of the person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5

from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.careteam import CareTeam
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.episodeofcare import EpisodeOfCare
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.servicerequest import ServiceRequest

from domain.contract import EventType
from domain.journey import RecordedEvent
from projections import care_plans, coordinators, referrals, timeline
from projections.fhir import vocabulary as v
from projections.fold import CANCELLED, MERGE, RETRACTED, STANDING, PersonEvents

NAMESPACE = UUID("6f1c2d4e-8b7a-5c3d-9e0f-1a2b3c4d5e6f")
ENTERED_IN_ERROR = "entered-in-error"
PLAN_TYPES = frozenset(
    {
        EventType.CARE_PLAN_AGREED,
        EventType.CARE_PLAN_REVISED,
        EventType.CARE_PLAN_REVIEWED,
        EventType.CARE_PLAN_CLOSED,
    }
)
RESOURCE_TYPES: tuple[str, ...] = (
    "Patient",
    "EpisodeOfCare",
    "CareTeam",
    "Encounter",
    "CarePlan",
    "ServiceRequest",
    "Provenance",
)


@dataclass(frozen=True, slots=True)
class Subject:
    """Who the resources are about, as the receiver may know them.

    ``patient_id`` turns an internal patient id into ``Patient.id`` (the id itself for a
    Bundle, the evaluator pseudonym for an export); ``nhs_number`` is given only to
    callers allowed to see it; ``identifiers`` keeps the publishers' business ids
    (encounter, referral, plan numbers), which a pseudonymised export drops.
    """

    patient_id: Callable[[UUID], str] = str
    nhs_number: str | None = None
    identifiers: bool = True


@dataclass(slots=True)
class _Episode:
    opened: RecordedEvent
    events: list[RecordedEvent]
    practice: str
    closed: RecordedEvent | None = None
    intervals: list[coordinators.Interval] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)

    def contains(self, moment: datetime) -> bool:
        return self.opened.occurred_at <= moment and (
            self.closed is None or moment <= self.closed.occurred_at
        )


class _Mapper:
    """The state of one person's mapping: ids, references, the events behind each."""

    def __init__(self, person: PersonEvents, subject: Subject, today: date) -> None:
        self.person = person
        self.subject = subject
        self.today = today
        self.patient = subject.patient_id(person.patient_id)
        self.patient_ref = {"reference": f"Patient/{self.patient}", "type": "Patient"}
        self.by_id = {e.event.event_id: e.event for e in person.entries}
        self.out: list[tuple[Resource, dict[str, Any]]] = []
        self.sources: list[tuple[Resource, list[RecordedEvent], bool]] = []

    def uid(self, kind: str, key: object) -> str:
        return str(uuid5(NAMESPACE, f"{self.patient}/{kind}/{key}"))

    def validated(self, model: type[Resource], body: dict[str, Any]) -> Resource:
        """The resource as its R4B model validates it; the body is kept beside it (the
        export writes the validated body, which is several times faster to serialise
        than the model)."""
        resource = model.model_validate(body)
        self.out.append((resource, body))
        return resource

    def add(
        self,
        model: type[Resource],
        body: dict[str, Any],
        events: Iterable[RecordedEvent],
        *,
        nullified: bool = False,
    ) -> None:
        resource = self.validated(model, body)
        self.sources.append((resource, _unique(events), nullified))


def person_resources(
    person: PersonEvents, subject: Subject | None = None, *, today: date | None = None
) -> list[Resource]:
    """Every resource of the person (Patient, EpisodeOfCare and CareTeam per journey,
    Encounter, CarePlan, ServiceRequest), then one Provenance per resource in the same
    order. ``today`` (default: now in the zone) decides overdue reviews and waits so far."""
    return [resource for resource, _ in _mapped(person, subject, today)]


def person_documents(
    person: PersonEvents, subject: Subject | None = None, *, today: date | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The same resources as ``person_resources``, as (resource type, JSON-ready body):
    each body exactly as its R4B model validated it."""
    return [(r.get_resource_type(), body) for r, body in _mapped(person, subject, today)]


def _mapped(
    person: PersonEvents, subject: Subject | None, today: date | None
) -> list[tuple[Resource, dict[str, Any]]]:
    subject = subject or Subject()
    zone = person.config.zone
    today = today or datetime.now(zone).date()
    m = _Mapper(person, subject, today)
    coord = coordinators.fold(person)
    line = timeline.fold(person)
    episodes = _episodes(person, coord.intervals)
    _patients(m)
    for episode in episodes:
        _episode_of_care(m, episode)
    _voided_registrations(m)
    _spells(m, line.spells, episodes)
    _contacts(m, episodes)
    _care_plans(m, care_plans.fold(person).plans, episodes)
    _referrals(m, referrals.fold(person).referrals)
    for resource, events, nullified in list(m.sources):
        _provenance(m, resource, events, nullified)
    return m.out


# -- shared shapes ----------------------------------------------------------------------


def _unique(events: Iterable[RecordedEvent]) -> list[RecordedEvent]:
    seen: dict[int, RecordedEvent] = {}
    for event in events:
        seen.setdefault(event.position, event)
    return sorted(seen.values(), key=lambda e: e.position)


def _at(event: RecordedEvent | None) -> datetime | None:
    return None if event is None else event.occurred_at


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _period(start: datetime | date | None, end: datetime | date | None = None) -> dict[str, str]:
    out = {}
    if start is not None:
        out["start"] = start.isoformat()
    if end is not None:
        out["end"] = end.isoformat()
    return out


def _org(code: str) -> dict[str, Any]:
    return {"type": "Organization", "identifier": {"system": v.ODS, "value": code}}


def _staff(who: str, display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"type": "Practitioner", "identifier": {"system": v.STAFF, "value": who}}
    if display:
        ref["display"] = display
    return ref


def _words(value: str) -> str:
    return value.replace("_", " ")


def _who(person: dict[str, Any]) -> dict[str, Any]:
    """A coordinator or team member (``Professional``): the practice itself when the
    practice default answers by its own code, otherwise the member of staff or team."""
    if str(person["id"]) == str(person["organisation"]):
        return _org(str(person["organisation"]))
    return _staff(
        str(person["id"]),
        f"{person['id']} ({_words(str(person['role']))}, {person['organisation']})",
    )


def _role(role: str, text: str) -> dict[str, Any]:
    return {"coding": [{"system": v.ROLE, "code": role, "display": _words(role)}], "text": text}


def _kind(code: str, display: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": v.ENCOUNTER_KIND, "code": code, "display": display}]}]


def _ext(url: str, **values: Any) -> dict[str, Any]:
    """A complex extension of simple sub-extensions; ``None`` values are left out."""
    parts = [{"url": k.replace("_", "-"), **val} for k, val in values.items() if val is not None]
    return {"url": url, "extension": parts}


def _days(n: int) -> dict[str, Any]:
    return {"value": n, "unit": "days", "system": v.UCUM, "code": "d"}


# -- Patient ----------------------------------------------------------------------------


def _patients(m: _Mapper) -> None:
    """The person, and anyone a standing merge joined to them (``replaced-by`` link)."""
    registrations = [e for e in m.person.effective if e.type == coordinators.REGISTERED]
    merges = [e.event for e in m.person.entries if e.event.type == MERGE and e.status == STANDING]
    died = [
        e
        for e in m.person.effective
        if e.type == coordinators.CLOSED and e.data.get("reason") == "died"
    ]
    body: dict[str, Any] = {"resourceType": "Patient", "id": m.patient}
    if m.subject.nhs_number is not None:
        body["identifier"] = [{"system": v.NHS_NUMBER, "value": m.subject.nhs_number}]
    if died:
        body["deceasedDateTime"] = died[-1].occurred_at.isoformat()
    if registrations:
        last = registrations[-1].data
        gps = [_org(str(last["practice"]))]
        if last.get("gp_id"):
            gps.append(_staff(str(last["gp_id"])))
        body["generalPractitioner"] = gps
    links: list[dict[str, Any]] = []
    merged_bodies: list[tuple[dict[str, Any], RecordedEvent]] = []
    for merge in merges:
        merged = UUID(str(merge.data["merged_patient_id"]))
        merged_id = m.subject.patient_id(merged)
        survivor_id = m.subject.patient_id(merge.patient_id)
        if survivor_id == m.patient:
            links.append({"other": {"reference": f"Patient/{merged_id}"}, "type": "replaces"})
        merged_bodies.append(
            (
                {
                    "resourceType": "Patient",
                    "id": merged_id,
                    "active": False,
                    "link": [
                        {"other": {"reference": f"Patient/{survivor_id}"}, "type": "replaced-by"}
                    ],
                },
                merge,
            )
        )
    if links:
        body["link"] = links
    m.add(Patient, body, [*registrations, *died, *merges])
    for merged_body, merge in merged_bodies:
        m.add(Patient, merged_body, [merge])


# -- EpisodeOfCare and CareTeam ---------------------------------------------------------


def _episodes(person: PersonEvents, intervals: Sequence[coordinators.Interval]) -> list[_Episode]:
    """The coordination journeys, by the coordinator fold's rule: a registration opens
    one unless one is open; a closure ends the open one. Intervals exist only inside a
    journey, so each belongs to the last journey opened at or before it started."""
    episodes: list[_Episode] = []
    current: _Episode | None = None
    for event in person.effective:
        if event.type == coordinators.REGISTERED:
            if current is None:
                current = _Episode(event, [event], str(event.data["practice"]))
                episodes.append(current)
            else:
                current.events.append(event)
                current.practice = str(event.data["practice"])
        elif event.type == coordinators.CLOSED and current is not None:
            current.closed = event
            current.events.append(event)
            current = None
    for interval in intervals:
        owner = _episode_at(episodes, interval.valid_from)
        if owner is not None:
            owner.intervals.append(interval)
    _team_members(person, episodes)
    return episodes


def _episode_at(episodes: Sequence[_Episode], moment: datetime) -> _Episode | None:
    for episode in reversed(episodes):
        if episode.opened.occurred_at <= moment:
            return episode if episode.contains(moment) else None
    return None


def _team_members(person: PersonEvents, episodes: Sequence[_Episode]) -> None:
    """Care-team members (``CareTeamMemberJoined`` / ``Left``) of the journey they joined
    in; a member who joined outside any journey belongs to the next one, else the last."""
    open_: dict[str, dict[str, Any]] = {}
    for event in person.effective:
        if event.type == EventType.CARE_TEAM_MEMBER_JOINED:
            member = {"who": dict(event.data["member"]), "joined": event, "left": None}
            open_[str(event.data["member"]["id"])] = member
            owner = _episode_at(episodes, event.occurred_at) or next(
                (e for e in episodes if e.opened.occurred_at > event.occurred_at),
                episodes[-1] if episodes else None,
            )
            if owner is not None:
                owner.members.append(member)
        elif event.type == EventType.CARE_TEAM_MEMBER_LEFT:
            left = open_.pop(str(event.data["member_id"]), None)
            if left is not None:
                left["left"] = event


def _interval_extension(interval: coordinators.Interval) -> dict[str, Any]:
    who = {
        "id": interval.coordinator_id,
        "role": interval.role,
        "organisation": interval.organisation,
    }
    return _ext(
        v.EXT_INTERVAL,
        coordinator={"valueReference": _who(who)},
        role={"valueCoding": {"system": v.ROLE, "code": interval.role}},
        organization={"valueReference": _org(interval.organisation)},
        setting={"valueCoding": {"system": v.SETTING, "code": interval.setting}},
        named={"valueBoolean": interval.named},
        period={"valuePeriod": _period(interval.valid_from, interval.valid_to)},
    )


def _episode_of_care(m: _Mapper, episode: _Episode) -> None:
    opened, closed = episode.opened.occurred_at, episode.closed
    episode_id = m.uid("episode", episode.opened.event_id)
    team_id = m.uid("care-team", episode.opened.event_id)
    history = [{"status": "active", "period": _period(opened, _at(closed))}]
    if closed is not None:
        history.append({"status": "finished", "period": _period(closed.occurred_at)})
    body: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": episode_id,
        "status": "active" if closed is None else "finished",
        "statusHistory": history,
        "type": [
            {
                "coding": [
                    {
                        "system": v.EPISODE_TYPE,
                        "code": "care-coordination",
                        "display": "Care coordination",
                    }
                ]
            }
        ],
        "patient": m.patient_ref,
        "managingOrganization": _org(episode.practice),
        "period": _period(opened, _at(closed)),
        "team": [{"reference": f"CareTeam/{team_id}"}],
    }
    if episode.intervals:
        body["extension"] = [_interval_extension(i) for i in episode.intervals]
    named = [i for i in episode.intervals if i.named]
    current = episode.intervals[-1] if episode.intervals else None
    manager = (
        current
        if current is not None and current.named and current.valid_to is None
        else (named[-1] if named and closed is not None else None)
    )
    if manager is not None:
        body["careManager"] = _who(
            {
                "id": manager.coordinator_id,
                "role": manager.role,
                "organisation": manager.organisation,
            }
        )
    events = [*episode.events, *_interval_events(m, episode.intervals)]
    m.add(EpisodeOfCare, body, events)
    _care_team(m, episode, team_id, events)


def _interval_events(m: _Mapper, intervals: Iterable[coordinators.Interval]) -> list[RecordedEvent]:
    ids = [i.opened_by for i in intervals] + [i.closed_by for i in intervals if i.closed_by]
    return [m.by_id[i] for i in ids if i in m.by_id]


def _care_team(m: _Mapper, episode: _Episode, team_id: str, events: list[RecordedEvent]) -> None:
    closed = episode.closed
    participants = []
    for interval in episode.intervals:
        who = {
            "id": interval.coordinator_id,
            "role": interval.role,
            "organisation": interval.organisation,
        }
        participants.append(
            _participant(
                who,
                "named coordinator"
                if interval.named
                else "registered practice (default coordinator)",
                _period(interval.valid_from, interval.valid_to),
            )
        )
    for member in episode.members:
        left: RecordedEvent | None = member["left"]
        participants.append(
            _participant(
                member["who"],
                "care team member",
                _period(member["joined"].occurred_at, _at(left)),
            )
        )
        events = [*events, member["joined"], *([left] if left else [])]
    body: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": team_id,
        "status": "active" if closed is None else "inactive",
        "name": "Care coordination team",
        "subject": m.patient_ref,
        "period": _period(episode.opened.occurred_at, _at(closed)),
        "managingOrganization": [_org(episode.practice)],
    }
    if participants:
        body["participant"] = participants
    m.add(CareTeam, body, events)


def _participant(who: dict[str, Any], text: str, period: dict[str, str]) -> dict[str, Any]:
    member = _who(who)
    out: dict[str, Any] = {
        "role": [_role(str(who["role"]), text)],
        "member": member,
        "period": period,
    }
    if member["type"] == "Practitioner":  # ctm-1: onBehalfOf only for a Practitioner
        out["onBehalfOf"] = _org(str(who["organisation"]))
    return out


def _voided(m: _Mapper, kind: str) -> list[tuple[RecordedEvent, RecordedEvent]]:
    """The retracted or cancelled events of a kind, each with the event that voided it."""
    return [
        (e.event, e.voided_by)
        for e in m.person.entries
        if e.event.type == kind and e.status in (RETRACTED, CANCELLED) and e.voided_by is not None
    ]


def _voided_registrations(m: _Mapper) -> None:
    for event, voider in _voided(m, coordinators.REGISTERED):
        body = {
            "resourceType": "EpisodeOfCare",
            "id": m.uid("episode", event.event_id),
            "status": ENTERED_IN_ERROR,
            "patient": m.patient_ref,
            "managingOrganization": _org(str(event.data["practice"])),
            "period": _period(event.occurred_at),
        }
        m.add(EpisodeOfCare, body, [event, voider], nullified=True)


# -- Encounters -------------------------------------------------------------------------


def _episode_ref(
    m: _Mapper, episodes: Sequence[_Episode], moment: datetime
) -> list[dict[str, Any]]:
    episode = _episode_at(episodes, moment)
    if episode is None:
        return []
    return [{"reference": f"EpisodeOfCare/{m.uid('episode', episode.opened.event_id)}"}]


def _chains(spells: Sequence[timeline.Spell], m: _Mapper) -> list[list[timeline.Spell]]:
    """Spells joined by transfers (``projections/measures/hospital.py``'s rule): one
    discharged to ``other_hospital`` continues into the next when that one's method is
    ``transfer`` and it was admitted on the discharge's local date or the next day."""
    zone = m.person.config.zone
    chains: list[list[timeline.Spell]] = []
    for spell in sorted(spells, key=lambda s: s.admitted_at):
        last = chains[-1][-1] if chains else None
        if (
            last is not None
            and last.discharged_at is not None
            and last.destination == "other_hospital"
            and spell.method == "transfer"
            and 0
            <= (
                spell.admitted_at.astimezone(zone).date()
                - last.discharged_at.astimezone(zone).date()
            ).days
            <= 1
        ):
            chains[-1].append(spell)
        else:
            chains.append([spell])
    return chains


def _coded(system: str, pair: tuple[str, str] | None, text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"text": text}
    if pair is not None:
        out["coding"] = [{"system": system, "code": pair[0], "display": pair[1]}]
    return out


def _hospitalization(admitted: timeline.Spell, discharged: timeline.Spell) -> dict[str, Any]:
    out: dict[str, Any] = {
        "extension": [
            {
                "url": v.EXT_ADMISSION_METHOD,
                "valueCodeableConcept": {
                    "coding": [{"system": v.ADMISSION_METHOD, "code": admitted.method}],
                    "text": _words(admitted.method),
                },
            }
        ],
        "admitSource": _coded(
            v.ADMIT_SOURCE, v.ADMIT_SOURCES.get(admitted.method), _words(admitted.method)
        ),
    }
    if discharged.destination is not None:
        out["dischargeDisposition"] = _coded(
            v.DISCHARGE_DISPOSITION,
            v.DISPOSITIONS.get(discharged.destination),
            _words(discharged.destination),
        )
    return out


def _locations(spell: timeline.Spell) -> list[dict[str, Any]]:
    """Where the person was during the spell: the admitting ward, then each transfer."""
    first = spell.ward or (spell.transfers[0]["from"] if spell.transfers else None)
    if first is None:
        return []
    stays: list[dict[str, Any]] = [{"at": spell.admitted_at.isoformat(), "where": first}]
    stays.extend({"at": t["at"], "where": t["to"]} for t in spell.transfers)
    out = []
    for i, stay in enumerate(stays):
        end = stays[i + 1]["at"] if i + 1 < len(stays) else _time(spell.discharged_at)
        period = {"start": stay["at"], **({"end": end} if end else {})}
        done = i + 1 < len(stays) or spell.discharged_at is not None
        out.append(
            {
                "location": {"display": str(stay["where"])},
                "status": "completed" if done else "active",
                "period": period,
            }
        )
    return out


def _spell_events(m: _Mapper, spell: timeline.Spell) -> list[RecordedEvent]:
    ids = [spell.admitted_event_id, spell.discharged_event_id]
    ids += [UUID(t["event_id"]) for t in spell.transfers]
    return [m.by_id[i] for i in ids if i is not None and i in m.by_id]


def _spells(m: _Mapper, spells: Sequence[timeline.Spell], episodes: Sequence[_Episode]) -> None:
    for chain in _chains(spells, m):
        stay_id = m.uid("stay", chain[0].admitted_event_id) if len(chain) > 1 else None
        for spell in chain:
            body: dict[str, Any] = {
                "resourceType": "Encounter",
                "id": m.uid("spell", spell.admitted_event_id),
                "status": "finished" if spell.status == "closed" else "in-progress",
                "statusHistory": [
                    {
                        "status": "in-progress",
                        "period": _period(spell.admitted_at, spell.discharged_at),
                    }
                ],
                "class": {"system": v.ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
                "type": _kind("admission-spell", "Admission spell"),
                "subject": m.patient_ref,
                "period": _period(spell.admitted_at, spell.discharged_at),
                "hospitalization": _hospitalization(spell, spell),
                "serviceProvider": _org(spell.hospital),
            }
            if m.subject.identifiers:
                body["identifier"] = [
                    {"system": f"{v.ENCOUNTER_ID}/{spell.hospital}", "value": spell.encounter_id}
                ]
            priority = v.ADMISSION_PRIORITY.get(spell.method)
            if priority is not None:
                body["priority"] = _coded(v.ACT_PRIORITY, priority, priority[1])
            if spell.length_of_stay_days is not None:
                body["length"] = _days(spell.length_of_stay_days)
            episode = _episode_ref(m, episodes, spell.admitted_at)
            if episode:
                body["episodeOfCare"] = episode
            if stay_id is not None:
                body["partOf"] = {"reference": f"Encounter/{stay_id}"}
            locations = _locations(spell)
            if locations:
                body["location"] = locations
            m.add(Encounter, body, _spell_events(m, spell))
        if stay_id is not None:
            _stay(m, stay_id, chain, episodes)
    for event, voider in _voided(m, "Admitted"):
        body = {
            "resourceType": "Encounter",
            "id": m.uid("spell", event.event_id),
            "status": ENTERED_IN_ERROR,
            "class": {"system": v.ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
            "type": _kind("admission-spell", "Admission spell"),
            "subject": m.patient_ref,
            "period": _period(event.occurred_at),
            "serviceProvider": _org(str(event.data["hospital"])),
        }
        if m.subject.identifiers:
            body["identifier"] = [
                {
                    "system": f"{v.ENCOUNTER_ID}/{event.data['hospital']}",
                    "value": str(event.data["encounter_id"]),
                }
            ]
        m.add(Encounter, body, [event, voider], nullified=True)


def _stay(
    m: _Mapper, stay_id: str, chain: Sequence[timeline.Spell], episodes: Sequence[_Episode]
) -> None:
    """A hospital stay across a transfer chain: from the first admission to the last
    discharge; its spells are ``partOf`` it."""
    first, last = chain[0], chain[-1]
    body: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": stay_id,
        "status": "finished" if last.status == "closed" else "in-progress",
        "class": {"system": v.ACT_CODE, "code": "IMP", "display": "inpatient encounter"},
        "type": _kind("hospital-stay", "Hospital stay (transfer chain)"),
        "subject": m.patient_ref,
        "period": _period(first.admitted_at, last.discharged_at),
        "hospitalization": _hospitalization(first, last),
    }
    if last.discharged_at is not None:
        zone = m.person.config.zone
        days = (
            last.discharged_at.astimezone(zone).date() - first.admitted_at.astimezone(zone).date()
        ).days
        body["length"] = _days(days)
    episode = _episode_ref(m, episodes, first.admitted_at)
    if episode:
        body["episodeOfCare"] = episode
    m.add(Encounter, body, [e for s in chain for e in _spell_events(m, s)])


def _contact_body(m: _Mapper, event: RecordedEvent, status: str) -> dict[str, Any]:
    data = event.data
    code, display = v.CONTACT_CLASS.get(str(data["mode"]), ("AMB", "ambulatory"))
    with_ = data["with"]
    return {
        "resourceType": "Encounter",
        "id": m.uid("contact", event.event_id),
        "status": status,
        "class": {"system": v.ACT_CODE, "code": code, "display": display},
        "type": [
            *_kind("contact", "Recorded contact"),
            {"text": _words(str(data["mode"]))},
        ],
        "serviceType": {
            "coding": [{"system": v.SETTING, "code": str(data["setting"])}],
            "text": _words(str(data["setting"])),
        },
        "subject": m.patient_ref,
        "participant": [
            {
                "individual": _staff(
                    str(with_["id"]),
                    f"{with_['id']} ({_words(str(with_['role']))}, {with_['organisation']})",
                )
            }
        ],
        "period": _period(event.occurred_at, event.occurred_at),
        "serviceProvider": _org(str(with_["organisation"])),
    }


def _contacts(m: _Mapper, episodes: Sequence[_Episode]) -> None:
    for event in m.person.effective:
        if event.type != "ContactRecorded":
            continue
        body = _contact_body(m, event, "finished")
        episode = _episode_ref(m, episodes, event.occurred_at)
        if episode:
            body["episodeOfCare"] = episode
        m.add(Encounter, body, [event])
    for event, voider in _voided(m, "ContactRecorded"):
        m.add(
            Encounter,
            _contact_body(m, event, ENTERED_IN_ERROR),
            [event, voider],
            nullified=True,
        )


# -- CarePlan ---------------------------------------------------------------------------


def _goal(m: _Mapper, n: int, goal: dict[str, Any]) -> dict[str, Any]:
    status = str(goal.get("status", "open"))
    out: dict[str, Any] = {
        "resourceType": "Goal",
        "id": f"goal{n}",
        "identifier": [{"system": v.GOAL_ID, "value": str(goal["goal_id"])}],
        "lifecycleStatus": v.GOAL_LIFECYCLE.get(status, "active"),
        "description": {"text": str(goal["description"])},
        "subject": m.patient_ref,
    }
    if status == "achieved":
        out["achievementStatus"] = {
            "coding": [{"system": v.GOAL_ACHIEVEMENT, "code": "achieved", "display": "Achieved"}]
        }
    if goal.get("target_date"):
        out["target"] = [{"dueDate": str(goal["target_date"])}]
    return out


def _contributors(m: _Mapper, agreed_with: str) -> list[dict[str, Any]]:
    out = []
    if agreed_with in ("patient", "both"):
        out.append(m.patient_ref)
    if agreed_with in ("carer", "both"):
        out.append({"type": "RelatedPerson", "display": "carer"})
    return out


def _plan_events(m: _Mapper, plan_id: str, agreed: UUID) -> list[RecordedEvent]:
    """The agreement and every later fact of the same plan id that the fold applied."""
    start = m.by_id[agreed]
    return [
        e
        for e in m.person.effective
        if e.type in PLAN_TYPES
        and str(e.data.get("plan_id")) == plan_id
        and (e.occurred_at, e.position) >= (start.occurred_at, start.position)
    ]


def _care_plans(
    m: _Mapper, plans: Sequence[care_plans.CarePlan], episodes: Sequence[_Episode]
) -> None:
    for plan in plans:
        goals = [_goal(m, n, g) for n, g in enumerate(plan.goals, start=1)]
        completed = plan.status == "closed"
        history = [{"status": "active", "period": _period(plan.agreed_at, plan.closed_at)}]
        if completed:
            history.append({"status": "completed", "period": _period(plan.closed_at)})
        activities: list[dict[str, Any]] = []
        if plan.last_reviewed_at is not None:
            activities.append(
                {
                    "detail": {
                        "code": {"text": "Care plan review"},
                        "status": "completed",
                        "description": f"{plan.reviews} review(s); last on "
                        f"{plan.last_reviewed_at.astimezone(m.person.config.zone).date()}",
                        "scheduledPeriod": _period(None, plan.last_reviewed_at),
                    }
                }
            )
        if not completed:
            detail: dict[str, Any] = {
                "code": {"text": "Care plan review"},
                "status": "scheduled",
                "scheduledPeriod": _period(plan.review_due),
            }
            if care_plans.review_overdue(plan, m.today):
                detail["statusReason"] = {"text": "review overdue"}
            activities.append({"detail": detail})
        body: dict[str, Any] = {
            "resourceType": "CarePlan",
            "id": m.uid("care-plan", plan.agreed_event_id),
            "extension": [
                _ext(
                    v.EXT_STATUS_HISTORY,
                    status={"valueCode": h["status"]},
                    period={"valuePeriod": h["period"]},
                )
                for h in history
            ],
            "status": "completed" if completed else "active",
            "intent": "plan",
            "category": [{"text": "Personalised care and support plan"}],
            "subject": m.patient_ref,
            "period": _period(plan.agreed_at, plan.closed_at),
            "created": plan.agreed_at.isoformat(),
            "author": _org(str(m.by_id[plan.agreed_event_id].source["organisation"])),
            "contributor": _contributors(m, plan.agreed_with),
            "activity": activities,
        }
        if goals:
            body["contained"] = goals
            body["goal"] = [{"reference": f"#{g['id']}"} for g in goals]
        if m.subject.identifiers:
            body["identifier"] = [{"system": v.PLAN_ID, "value": plan.plan_id}]
        episode = _episode_at(episodes, plan.agreed_at)
        if episode is not None:
            body["careTeam"] = [
                {"reference": f"CareTeam/{m.uid('care-team', episode.opened.event_id)}"}
            ]
        if plan.close_reason:
            body["note"] = [{"text": f"closed: {plan.close_reason}"}]
        m.add(CarePlan, body, _plan_events(m, plan.plan_id, plan.agreed_event_id))
    for event, voider in _voided(m, "CarePlanAgreed"):
        data = event.data
        goals = [_goal(m, n, dict(g)) for n, g in enumerate(data["goals"], start=1)]
        body = {
            "resourceType": "CarePlan",
            "id": m.uid("care-plan", event.event_id),
            "status": ENTERED_IN_ERROR,
            "intent": "plan",
            "category": [{"text": "Personalised care and support plan"}],
            "subject": m.patient_ref,
            "created": event.occurred_at.isoformat(),
            "author": _org(str(event.source["organisation"])),
        }
        if goals:
            body["contained"] = goals
            body["goal"] = [{"reference": f"#{g['id']}"} for g in goals]
        if m.subject.identifiers:
            body["identifier"] = [{"system": v.PLAN_ID, "value": str(data["plan_id"])}]
        m.add(CarePlan, body, [event, voider], nullified=True)


# -- ServiceRequest ---------------------------------------------------------------------

REFERRAL_STATUS = {
    "open": "active",
    "accepted": "active",
    "first_contact": "completed",
    "declined": "revoked",
}


def _referral_body(m: _Mapper, made: RecordedEvent, status: str, request_id: str) -> dict[str, Any]:
    data = made.data
    to = data["to"]
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": request_id,
        "status": status,
        "intent": "order",
        "category": [
            {"coding": [{"system": v.SNOMED, "code": "3457005", "display": "Patient referral"}]}
        ],
        "priority": v.REFERRAL_PRIORITY.get(str(data["priority"]), "routine"),
        "code": {"text": str(to["service"])},
        "subject": m.patient_ref,
        "authoredOn": made.occurred_at.isoformat(),
        "requester": _org(str(made.source["organisation"])),
        "performer": [_org(str(to["organisation"]))],
        "performerType": {
            "coding": [{"system": v.SETTING, "code": str(to["setting"])}],
            "text": _words(str(to["setting"])),
        },
    }
    if data.get("reason"):
        body["reasonCode"] = [{"text": str(data["reason"])}]
    if m.subject.identifiers:
        body["identifier"] = [{"system": v.REFERRAL_ID, "value": str(data["referral_id"])}]
    return body


def _referrals(m: _Mapper, rows: Sequence[referrals.Referral]) -> None:
    zone = m.person.config.zone
    for r in rows:
        made = m.by_id[r.made_event_id]
        body = _referral_body(
            m, made, REFERRAL_STATUS[r.status], m.uid("referral", r.made_event_id)
        )
        waiting = None
        if referrals.is_open(r):
            waiting = (m.today - r.made_at.astimezone(zone).date()).days
        body["extension"] = [
            _ext(
                v.EXT_REFERRAL_WAIT,
                priority={"valueCode": r.priority},
                accepted={"valueDateTime": _time(r.accepted_at)} if r.accepted_at else None,
                declined={"valueDateTime": _time(r.declined_at)} if r.declined_at else None,
                first_contact={"valueDateTime": _time(r.first_contact_at)}
                if r.first_contact_at
                else None,
                wait={"valueDuration": _days(r.wait_days)} if r.wait_days is not None else None,
                waiting={"valueDuration": _days(waiting)} if waiting is not None else None,
            )
        ]
        if r.decline_reason:
            body["note"] = [{"text": f"declined: {r.decline_reason}"}]
        events = [
            e
            for e in m.person.effective
            if e.type in ("ReferralMade", *referrals.STEPS)
            and str(e.data.get("referral_id")) == r.referral_id
            and e.occurred_at >= made.occurred_at
        ]
        m.add(ServiceRequest, body, [made, *events])
    for event, voider in _voided(m, "ReferralMade"):
        body = _referral_body(m, event, ENTERED_IN_ERROR, m.uid("referral", event.event_id))
        m.add(ServiceRequest, body, [event, voider], nullified=True)


# -- Provenance -------------------------------------------------------------------------

CORRECTION_TYPES = frozenset(
    {"EventRetracted", MERGE, "AdmissionCancelled", "TransferCancelled", "DischargeCancelled"}
)


def _entity(event: RecordedEvent) -> dict[str, Any]:
    ledger = _ext(
        v.EXT_LEDGER_EVENT,
        position={"valueDecimal": event.position},
        hash={"valueString": event.hash},
        prev_hash={"valueString": event.prev_hash} if event.prev_hash else None,
        type={"valueCode": event.type},
        occurred={"valueDateTime": event.occurred_at.isoformat()},
    )
    return {
        "extension": [ledger],
        "role": "revision" if event.type in CORRECTION_TYPES else "source",
        "what": {
            "identifier": {"system": v.LEDGER_EVENT, "value": str(event.event_id)},
            "display": f"{event.type} at ledger position {event.position}",
        },
    }


def _provenance(
    m: _Mapper, resource: Resource, events: Sequence[RecordedEvent], nullified: bool
) -> None:
    if not events:
        return
    kind = resource.get_resource_type()
    organisations = list(dict.fromkeys(str(e.source["organisation"]) for e in events))
    activity = "NULLIFY" if nullified else ("CREATE" if len(events) == 1 else "UPDATE")
    body = {
        "resourceType": "Provenance",
        "id": m.uid("provenance", f"{kind}/{resource.id}"),
        "target": [{"reference": f"{kind}/{resource.id}"}],
        "occurredPeriod": _period(
            min(e.occurred_at for e in events), max(e.occurred_at for e in events)
        ),
        "recorded": max(e.recorded_at for e in events).isoformat(),
        "activity": {"coding": [{"system": v.DATA_OPERATION, "code": activity}]},
        "agent": [
            {
                "type": {"coding": [{"system": v.PARTICIPANT_TYPE, "code": "author"}]},
                "who": _org(code),
            }
            for code in organisations
        ],
        "entity": [_entity(e) for e in events],
    }
    m.validated(Provenance, body)
