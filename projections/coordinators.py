"""Coordinator assignments: who coordinates a person, over time (a pure fold).

Rules (docs/projections.md, "The read models"):

* A journey opens at ``PatientRegistered`` and closes at ``JourneyClosed``; a later
  registration opens a new one. Intervals exist only inside an open journey.
* The registered practice answers "who coordinates" when no one is named: the GP
  (``gp_id``) if given, else the practice code, role ``gp``. That answer is an interval
  with ``named = false``; it is *not* a named coordinator.
* A named coordinator is set by ``CoordinatorAssigned`` or ``CoordinatorHandedOff``.
  ``CoordinatorReleased`` of the current named coordinator leaves nobody named (the
  practice answers again). Closing the journey ends coordination.
* What services report is applied and inconsistencies are flagged, never dropped:
  a handoff ``from_id`` someone other than the current coordinator (named, or the
  practice default when nobody is named) is applied and flagged; an assignment while
  someone is named replaces them and is flagged. A release naming someone who is not the
  current named coordinator changes nothing (applying it would end the wrong person's
  coordination) and is flagged.
* Coordination facts that occur outside an open journey (before registration, after
  closure) still move the state, so a registration that arrives late, or occurred a
  minute after the assignment, opens the journey with the named coordinator already in
  place; they are flagged as ``outside_journey``. So is any other fact outside a journey.

Intervals are half-open ``[valid_from, valid_to)`` in occurred time; two changes at the
same instant leave a zero-length interval, which no "as of" question ever selects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NamedTuple
from uuid import UUID

from domain.contract import EventType, by_type
from domain.journey import RecordedEvent
from projections.fold import Finding, PersonEvents
from projections.readmodel import ReadModel, Rows, named
from projections.tables import Index, Position, person_key, table

REGISTERED = EventType.PATIENT_REGISTERED
ASSIGNED = EventType.COORDINATOR_ASSIGNED
HANDED_OFF = EventType.COORDINATOR_HANDED_OFF
RELEASED = EventType.COORDINATOR_RELEASED
CLOSED = EventType.JOURNEY_CLOSED


class Interval(NamedTuple):
    """One row of ``coordinator_intervals``: who answered "who coordinates" when."""

    patient_id: UUID
    seq: int
    valid_from: datetime
    valid_to: datetime | None
    coordinator_id: str
    role: str
    organisation: str
    setting: str
    named: bool
    opened_by: UUID
    opened_by_type: str
    closed_by: UUID | None
    closed_by_type: str | None
    # Provenance of the change that opened the interval (``opened_by``), read from that
    # event, so a rebuild gives the same: its ledger position (the audit bundle's key),
    # its transaction time (``valid_from`` is its occurred time), who published it, the
    # reason it gives, and the way in where the content says it (``way_in``).
    opened_position: Position
    opened_recorded_at: datetime
    publisher: str
    source_system: str
    recorder_id: str | None
    recorder_role: str | None
    reason: str | None
    way_in: str | None
    closed_position: Annotated[int | None, "bigint"]
    closed_recorded_at: datetime | None


class Coordination(NamedTuple):
    """One row of ``coordination_status`` per person: the journey and who answers now."""

    patient_id: UUID
    journey: str  # "open", "closed", or "none" (no registration yet)
    opened_at: datetime | None
    closed_at: datetime | None
    practice: str | None
    gp_id: str | None
    coordinator_id: str | None
    role: str | None
    organisation: str | None
    setting: str | None
    named: bool
    since: datetime | None
    unnamed_since: datetime | None
    first_named_at: datetime | None
    handoffs: int
    position: Position


@dataclass(frozen=True, slots=True)
class CoordinatorFold:
    intervals: tuple[Interval, ...]
    status: Coordination
    findings: tuple[Finding, ...]


def default_answer(practice: str, gp_id: str | None) -> dict[str, Any]:
    """The registered practice as the (unnamed) answer to "who coordinates"."""
    return {
        "id": gp_id or practice,
        "role": "gp",
        "organisation": practice,
        "setting": "primary_care",
    }


def fold(person: PersonEvents) -> CoordinatorFold:
    """The person's coordinator intervals, status row and findings (module docstring)."""
    state = _State(person.patient_id)
    for event in person.effective:
        if event.type in ON:
            ON[event.type](state, event)
        elif not state.open:  # one of FACTS: inline, as most events are
            state.outside(event)
    intervals = list(state.intervals)
    if state.current is not None:
        since, who, named, opener = state.current
        intervals.append(
            _interval(person.patient_id, len(intervals), since, None, who, named, opener, None)
        )
    return CoordinatorFold(tuple(intervals), state.status(person.position), tuple(state.findings))


def _interval(
    patient_id: UUID,
    seq: int,
    since: datetime,
    until: datetime | None,
    who: dict[str, Any],
    named: bool,
    opener: RecordedEvent,
    closer: RecordedEvent | None,
) -> Interval:
    recorder = opener.recorded_by or {}
    return Interval(
        patient_id,
        seq,
        since,
        until,
        str(who["id"]),
        str(who["role"]),
        str(who["organisation"]),
        str(who["setting"]),
        named,
        opener.event_id,
        opener.type,
        closer.event_id if closer is not None else None,
        closer.type if closer is not None else None,
        opener.position,
        opener.recorded_at,
        str(opener.source["organisation"]),
        str(opener.source["system"]),
        _text(recorder.get("id")),
        _text(recorder.get("role")),
        _text(opener.data.get("reason")) if opener.type in REASONED else None,
        way_in(opener),
        closer.position if closer is not None else None,
        closer.recorded_at if closer is not None else None,
    )


# The coordinator facts whose contract carries an optional ``reason``.
REASONED = frozenset({ASSIGNED, HANDED_OFF, RELEASED})
ADT_SYSTEM = "hl7v2:"  # consumers/adt.py: source.system of every event mapped from HL7 v2


def way_in(event: RecordedEvent) -> str | None:
    """``adt`` for an event mapped from an HL7 v2 message (its ``source.system`` says
    so); otherwise None. The ledger does not record whether an envelope came by HTTP,
    Kafka or a file: the same envelope is the same fact (one content hash, idempotent)
    whichever way it came, so the way in is deliberately not part of what is stored."""
    return "adt" if str(event.source.get("system", "")).startswith(ADT_SYSTEM) else None


class _State:
    """The fold's running state; ``apply`` takes the standing facts in occurred order."""

    def __init__(self, patient_id: UUID) -> None:
        self.patient_id = patient_id
        self.open = False
        self.ever_opened = False
        self.opened_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.practice: str | None = None
        self.gp_id: str | None = None
        self.named: dict[str, Any] | None = None
        self.unnamed_since: datetime | None = None
        self.first_named_at: datetime | None = None
        self.handoffs = 0
        self.intervals: list[Interval] = []
        self.current: tuple[datetime, dict[str, Any], bool, RecordedEvent] | None = None
        self.findings: list[Finding] = []

    # -- the answer and its intervals ------------------------------------------------

    def answer(self) -> tuple[dict[str, Any], bool] | None:
        if self.named is not None:
            return self.named, True
        if self.practice is not None:
            return default_answer(self.practice, self.gp_id), False
        return None

    def _close(self, event: RecordedEvent) -> None:
        if self.current is None:
            return
        since, who, named, opener = self.current
        self.intervals.append(
            _interval(
                self.patient_id,
                len(self.intervals),
                since,
                event.occurred_at,
                who,
                named,
                opener,
                event,
            )
        )
        self.current = None

    def _start(self, event: RecordedEvent) -> None:
        answer = self.answer()
        if answer is None:
            return
        who, named = answer
        self.current = (event.occurred_at, who, named, event)
        if named and self.first_named_at is None:
            self.first_named_at = event.occurred_at

    def _changed(self, event: RecordedEvent) -> None:
        """The answer changed at this event: close the open interval, start the next."""
        if not self.open:
            return
        self._close(event)
        self._start(event)
        if self.named is None:
            if self.unnamed_since is None:
                self.unnamed_since = event.occurred_at
        else:
            self.unnamed_since = None

    def _flag(self, kind: str, event: RecordedEvent, detail: str) -> None:
        self.findings.append(Finding(kind, event, detail))

    # -- the facts ----------------------------------------------------------------------

    def outside(self, event: RecordedEvent) -> None:
        """A fact (not a registration or closure) while no journey is open: flagged."""
        self._flag(
            "outside_journey",
            event,
            f"{event.type} occurred while no journey was open "
            f"({'after it closed' if self.ever_opened else 'before registration'})",
        )

    def _fact(self, event: RecordedEvent) -> None:
        if not self.open:
            self.outside(event)

    def _assigned(self, event: RecordedEvent) -> None:
        self._fact(event)
        if self.named is not None:
            self._flag(
                "assigned_while_coordinated",
                event,
                f"assigned while {self.named['id']} was the named coordinator",
            )
        self.named = dict(event.data["coordinator"])
        self._changed(event)

    def _handed_off(self, event: RecordedEvent) -> None:
        self._fact(event)
        data = event.data
        answer = self.answer()
        current = str(answer[0]["id"]) if answer is not None else None
        if str(data["from_id"]) != current:
            who = f"the current coordinator is {current}" if current else "nobody coordinates"
            self._flag(
                "handoff_from_non_coordinator",
                event,
                f"handed off from {data['from_id']}, but {who}",
            )
        self.named = dict(data["to"])
        self.handoffs += 1
        self._changed(event)

    def _released(self, event: RecordedEvent) -> None:
        self._fact(event)
        released = str(event.data["coordinator_id"])
        if self.named is not None and str(self.named["id"]) == released:
            self.named = None
            self._changed(event)
        else:
            current = self.named["id"] if self.named is not None else "nobody"
            self._flag(
                "release_of_non_coordinator",
                event,
                f"released {released}, but the named coordinator is {current}; not applied",
            )

    def _register(self, event: RecordedEvent) -> None:
        before = (self.practice, self.gp_id)
        self.practice = str(event.data["practice"])
        gp = event.data.get("gp_id")
        self.gp_id = str(gp) if gp is not None else None
        if not self.open:
            self.open = True
            self.ever_opened = True
            self.opened_at = event.occurred_at
            self.closed_at = None
            self._start(event)
            self.unnamed_since = event.occurred_at if self.named is None else None
        elif self.named is None and before != (self.practice, self.gp_id):
            self._changed(event)  # another practice answers from now on

    def _close_journey(self, event: RecordedEvent) -> None:
        if not self.open:
            self._flag("outside_journey", event, "JourneyClosed while no journey was open")
        else:
            self._close(event)
            self.open = False
            self.closed_at = event.occurred_at
        self.named = None
        self.unnamed_since = None

    def status(self, position: int) -> Coordination:
        answer = self.answer() if self.open else None
        who, named = answer if answer is not None else ({}, False)
        journey = "open" if self.open else "closed" if self.ever_opened else "none"
        return Coordination(
            self.patient_id,
            journey,
            self.opened_at,
            self.closed_at,
            self.practice,
            self.gp_id,
            _text(who.get("id")),
            _text(who.get("role")),
            _text(who.get("organisation")),
            _text(who.get("setting")),
            named,
            self.current[0] if self.current is not None else None,
            self.unnamed_since if self.open else None,
            self.first_named_at,
            self.handoffs,
            position,
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


_Handler = Callable[[_State, RecordedEvent], None]

# The dispatch table: what each standing fact does to the state. Every other fact only
# has to occur inside an open journey; corrections never reach a fold (fold.prepare).
ON: dict[str, _Handler] = by_type(
    {
        REGISTERED: _State._register,
        CLOSED: _State._close_journey,
        ASSIGNED: _State._assigned,
        HANDED_OFF: _State._handed_off,
        RELEASED: _State._released,
    }
)
# Every other fact is only checked to occur inside an open journey (``fold`` does it
# inline for any type not in ``ON``).
FACTS = named(
    """
    CaseIdentified ReferralMade ReferralAccepted ReferralDeclined FirstContactMade Admitted
    Transferred Discharged ContactRecorded CarePlanAgreed CarePlanRevised CarePlanReviewed
    CarePlanClosed CareTeamMemberJoined CareTeamMemberLeft CarerRecorded OutcomeRecorded
    DischargeReady PersonInformed AlertAcknowledged
    """
)
IGNORES = named(
    """
    EventRetracted PatientsMerged AdmissionCancelled TransferCancelled DischargeCancelled
    """
)

INTERVALS = table(
    "coordinator_intervals",
    Interval,
    person_key("seq"),
)
STATUS = table(
    "coordination_status",
    Coordination,
    person_key(),
    Index("caseload", "coordinator_id", where="named AND journey = 'open'"),
    Index("unassigned", "unnamed_since", where="journey = 'open' AND NOT named"),
)


def _rows(result: CoordinatorFold) -> Rows:
    return {INTERVALS.name: result.intervals, STATUS.name: (result.status,)}


MODEL: ReadModel[CoordinatorFold] = ReadModel(
    "coordinators",
    (INTERVALS, STATUS),
    frozenset(ON) | FACTS,
    IGNORES,
    lambda person, _folds: fold(person),
    _rows,
)
