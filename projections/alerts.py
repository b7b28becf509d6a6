"""Alerts: what a coordinator must hear about one person (a pure fold, docs/alerts.md).

Every alert comes from a *cause* (a recorded fact, or a deadline after one) and closes at
the first later fact that *resolves* it. The fold is pure: given the same events it gives
the same rows, so the runner, the rebuild and the replay agree, and a late fact simply
lands where it occurred. Deadlines are part of the row (an alert "opens" at the moment a
wait passes, ``opened_at``), so whether it is visible yet is a question of the reader's
clock, asked by the queries, never by the fold.

Who hears it. Alerts about a transition of the person follow the person's coordinator:
the answer of the coordinators fold over the time the alert is open (the latest holder;
for a closed alert, the holder just before it closed). When no one is named the answer is
the registered practice, and the alert is in the practice's *team queue*
(``team_queue``, ``coordinator_id`` NULL). Alerts about coordination itself belong to the
coordinator the fact names (``handoff``, ``inform_person``), or to the team queue
(``released``, ``unassigned``). No open journey at that moment: nobody to tell, no alert.

Retracted or cancelled causes: the alerts of a voided cause (``EventRetracted``, or an
HL7 cancel) are worked out as if that one fact stood, and each still appears when it
could have been seen before the correction was recorded (``opened_at`` at or before the
correction's ``recorded_at``), closed by the correction (``retracted`` / ``cancelled``)
unless a fact recorded earlier had already resolved it; otherwise it never existed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import NamedTuple
from uuid import UUID, uuid5

from domain.contract import EventType
from domain.journey import RecordedEvent
from projections import coordinators
from projections.coordinators import CoordinatorFold, Interval
from projections.fold import CANCELLED, RETRACTED, STANDING, PersonEvents, order_key
from projections.readmodel import ReadModel, Rows
from projections.tables import TS, Index, table

NAMESPACE = UUID("5d6f1e1c-3f0b-4c1e-9a57-0c1f2a3b4c5d")  # alert ids: uuid5 of the cause

ADMISSION = "admission"
ATTENDANCE = "attendance"
DISCHARGE = "discharge"
FOLLOW_UP = "follow_up_overdue"
REFERRAL = "referral_waiting"
REVIEW = "review_overdue"
HANDOFF = "handoff"
RELEASED = "released"
UNASSIGNED = "unassigned"
INFORM = "inform_person"
DISCHARGE_READY = "discharge_ready"
DEATH = "death"
LATE = "late_arrival"
KINDS: tuple[str, ...] = (
    ADMISSION,
    ATTENDANCE,
    DISCHARGE,
    FOLLOW_UP,
    REFERRAL,
    REVIEW,
    HANDOFF,
    RELEASED,
    UNASSIGNED,
    INFORM,
    DISCHARGE_READY,
    DEATH,
    LATE,
)
# Kinds nothing but an acknowledgement resolves: there is nothing else to do about them.
ACKNOWLEDGE_CLOSES = frozenset({DEATH, LATE})

FOLLOW_UP_72H = timedelta(hours=72)
FOLLOW_UP_7D = timedelta(days=7)
NO_FOLLOW_UP = frozenset({"died", "other_hospital"})  # discharges not followed up at home
ADT_SYSTEM = "hl7v2:"  # an A04 attendance: a contact that never counts as follow-up


class Alert(NamedTuple):
    """One row of ``alerts``."""

    patient_id: UUID
    alert_id: UUID
    kind: str
    coordinator_id: str | None  # None: the team queue of ``organisation``
    organisation: str
    team_queue: bool
    opened_at: datetime  # occurred time the alert opens (a deadline for waits)
    opened_recorded_at: datetime  # when the ledger knew the cause
    opened_position: int
    due: datetime | None
    positions: tuple[int, ...]  # the ledger positions that caused it
    detail: str
    status: str  # "open" or "closed"
    closed_at: datetime | None
    closed_recorded_at: datetime | None
    closed_position: int | None
    close_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None


@dataclass(slots=True)
class _Draft:
    """An alert being worked out, before its holder and acknowledgement are known."""

    kind: str
    cause: RecordedEvent
    opened_at: datetime
    due: datetime | None
    detail: str
    variant: str = ""
    causes: list[RecordedEvent] = field(default_factory=list)
    closer: RecordedEvent | None = None
    close_reason: str | None = None
    holder: tuple[str | None, str] | None = None  # fixed (coordinator_id, organisation)

    def close(self, event: RecordedEvent, reason: str) -> None:
        if self.closer is None:
            self.closer = event
            self.close_reason = reason

    @property
    def closed_at(self) -> datetime | None:
        if self.closer is None:
            return None
        return max(self.closer.occurred_at, self.opened_at)


def alert_id(kind: str, cause: UUID, variant: str = "") -> UUID:
    """Deterministic: the same cause gives the same id in every fold, rebuild and replay
    (so an acknowledgement names an alert that survives rebuilds)."""
    return uuid5(NAMESPACE, f"{kind}:{cause}:{variant}")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The waits after which an alert opens (``FoldConfig`` carries them)."""

    referral_wait: timedelta = timedelta(days=28)
    unassigned: timedelta = timedelta(days=14)


def fold(
    person: PersonEvents, coord: CoordinatorFold, thresholds: Thresholds | None = None
) -> tuple[Alert, ...]:
    """The person's alerts (module docstring), ordered by opening."""
    limits = thresholds or Thresholds(
        timedelta(days=person.config.referral_wait_days),
        timedelta(days=person.config.unassigned_days),
    )
    holders = _Holders(coord.intervals)
    standing = [e.event for e in person.entries if e.status == STANDING]
    facts = _World(person.effective)
    drafts = [
        (d, holders, facts)
        for d in _drafts(standing, person.effective, coord, holders, person, limits)
    ]
    drafts += [(d, holders, facts) for d in _late(person)]
    drafts += [(d, holders, facts) for d in _unassigned_drafts(person, coord, limits)]
    voided: dict[UUID, RecordedEvent] = {}
    for entry in person.entries:
        if entry.status in (RETRACTED, CANCELLED) and entry.voided_by is not None:
            # Its alerts are those it would have caused had it stood (module docstring).
            voided[entry.event.event_id] = entry.voided_by
            world = tuple(sorted((*person.effective, entry.event), key=order_key))
            again = coordinators.fold(replace(person, effective=world))
            seen = _Holders(again.intervals)
            found = _drafts([entry.event], world, again, seen, person, limits)
            if found:
                alt = _World(world)
                drafts += [(d, seen, alt) for d in found]
    out: list[Alert] = []
    for draft, world_holders, world_facts in drafts:
        world_facts.close_with_journey(draft)
        ident = alert_id(draft.kind, draft.cause.event_id, draft.variant)
        ack = world_facts.acknowledgement(ident)
        if (
            draft.kind in ACKNOWLEDGE_CLOSES
            and ack is not None
            and (draft.closed_at is None or max(ack.occurred_at, draft.opened_at) < draft.closed_at)
        ):
            draft.closer, draft.close_reason = ack, "acknowledged"
        voider = voided.get(draft.cause.event_id)
        if voider is not None and not _correct(draft, voider):
            continue
        if not world_holders.journey_open(draft.opened_at, at_close=draft.kind == DEATH):
            continue  # nobody to tell
        holder = draft.holder or holders.at(draft.opened_at, draft.closed_at)
        if holder is None:
            continue
        out.append(_row(person.patient_id, ident, draft, holder, ack))
    out.sort(key=lambda a: (a.opened_at, a.opened_position, a.kind, a.alert_id))
    return tuple(out)


def _drafts(
    causes: list[RecordedEvent],
    effective: tuple[RecordedEvent, ...],
    coord: CoordinatorFold,
    holders: _Holders,
    person: PersonEvents,
    limits: Thresholds,
) -> list[_Draft]:
    """The alerts the ``causes`` open, resolved against ``effective``."""
    drafts = _hospital(causes, effective, holders)
    drafts += _each(
        causes, ("ReferralMade",), lambda c: _referral(c, effective, limits.referral_wait)
    )
    drafts += _each(
        causes, ("CarePlanAgreed", "CarePlanReviewed"), lambda c: _review(c, effective, person)
    )
    drafts += _coordination(causes, effective, coord)
    drafts += _deaths(causes, holders)
    return drafts


class _World:
    """The journey closures and acknowledgements among one world's standing facts,
    looked up per alert by bisection and by id: scanning every fact for every alert made
    a person's fold quadratic in their history (a person with thousands of late
    arrivals has thousands of alerts; issue 16)."""

    __slots__ = ("acks", "closes", "closes_at", "effective")

    def __init__(self, effective: tuple[RecordedEvent, ...]) -> None:
        self.effective = effective
        self.closes: list[RecordedEvent] | None = None  # read on first use: most
        self.closes_at: list[datetime] = []  # people have no alert at all
        self.acks: dict[str, RecordedEvent] = {}

    def _index(self) -> list[RecordedEvent]:
        # ``effective`` is in (occurred_at, position) order, so the closures are too.
        closes: list[RecordedEvent] = []
        for event in self.effective:
            if event.type == "JourneyClosed":
                closes.append(event)
            elif event.type == "AlertAcknowledged":
                self.acks.setdefault(str(event.data.get("alert_id")), event)
        self.closes = closes
        self.closes_at = [e.occurred_at for e in closes]
        return closes

    def close_with_journey(self, draft: _Draft) -> None:
        """Closing the journey closes every alert but a death's: the first closure that
        occurred at or after the alert opened, unless it had already closed earlier."""
        if draft.kind == DEATH:
            return
        closes = self._index() if self.closes is None else self.closes
        i = bisect_left(self.closes_at, draft.opened_at)
        if i < len(closes):
            closed = closes[i]
            if draft.closed_at is None or closed.occurred_at < draft.closed_at:
                draft.closer, draft.close_reason = closed, "journey_closed"

    def acknowledgement(self, ident: UUID) -> RecordedEvent | None:
        """The first acknowledgement naming the alert, in the person's order."""
        if self.closes is None:
            self._index()
        return self.acks.get(str(ident))


def _correct(draft: _Draft, voider: RecordedEvent) -> bool:
    """A voided cause: keep the alert, closed by the correction, if it could have been
    seen before the correction was recorded (module docstring); else drop it."""
    if draft.opened_at > voider.recorded_at:
        return False
    if draft.closer is not None and draft.closer.recorded_at <= voider.recorded_at:
        return True  # already resolved before the correction: stays as it was
    draft.closer = voider
    draft.close_reason = "retracted" if voider.type == "EventRetracted" else "cancelled"
    return True


def _row(
    patient_id: UUID,
    ident: UUID,
    draft: _Draft,
    holder: tuple[str | None, str],
    ack: RecordedEvent | None,
) -> Alert:
    causes = draft.causes or [draft.cause]
    closer = draft.closer
    return Alert(
        patient_id,
        ident,
        draft.kind,
        holder[0],
        holder[1],
        holder[0] is None,
        draft.opened_at,
        max(c.recorded_at for c in causes),
        max(c.position for c in causes),
        draft.due,
        tuple(sorted({c.position for c in causes})),
        draft.detail,
        "open" if closer is None else "closed",
        draft.closed_at,
        closer.recorded_at if closer is not None else None,
        closer.position if closer is not None else None,
        draft.close_reason,
        ack.occurred_at if ack is not None else None,
        str(ack.data.get("coordinator_id")) if ack is not None else None,
    )


# -- who holds an alert ----------------------------------------------------------------


class _Holders:
    """The coordinators fold's answers over time, asked "who held [opened, closed)"."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        every = list(intervals)
        self.every = every
        # Zero-length intervals answer no question (coordinators.py).
        self.intervals = [i for i in every if i.valid_to is None or i.valid_to > i.valid_from]

    def journey_open(self, moment: datetime, *, at_close: bool = False) -> bool:
        """Intervals exist only inside an open journey; ``at_close`` counts its closing
        instant too (a death closes the journey as it is reported)."""
        return any(
            i.valid_from <= moment
            and (i.valid_to is None or i.valid_to > moment or (at_close and i.valid_to == moment))
            for i in self.every
        )

    def at(self, opened: datetime, closed: datetime | None) -> tuple[str | None, str] | None:
        """The latest holder while the alert was open; when it closed as it opened (or
        opened as the journey closed), the one holding at that instant."""
        if closed is None or closed > opened:
            for interval in reversed(self.intervals):
                starts_in = closed is None or interval.valid_from < closed
                if starts_in and (interval.valid_to is None or interval.valid_to > opened):
                    return _holder(interval)
        for interval in reversed(self.intervals):
            if interval.valid_from <= opened and (
                interval.valid_to is None or interval.valid_to >= opened
            ):
                return _holder(interval)
        return None


def _holder(interval: Interval) -> tuple[str | None, str]:
    return (interval.coordinator_id if interval.named else None, interval.organisation)


# -- the causes --------------------------------------------------------------------------


def _counts_as_contact(event: RecordedEvent) -> bool:
    return event.type == "ContactRecorded" and not str(event.source.get("system", "")).startswith(
        ADT_SYSTEM
    )


def _first(
    events: Iterable[RecordedEvent],
    after: datetime,
    test: Callable[..., bool],  # called with the event (lambdas bind loop values as defaults)
    strict: bool = False,
) -> RecordedEvent | None:
    for event in events:
        if (event.occurred_at > after if strict else event.occurred_at >= after) and test(event):
            return event
    return None


def _answer(
    effective: Iterable[RecordedEvent],
    cause: RecordedEvent,
    key: str,
    types: tuple[str, ...],
    strict: bool = False,
) -> RecordedEvent | None:
    """The first other event from ``cause`` on, of one of ``types``, about the same thing
    (the same ``key`` in its data: encounter, referral, plan): what ends the alert the
    cause opened (a discharge, a first contact, a review)."""
    about = str(cause.data.get(key))
    return _first(
        effective,
        cause.occurred_at,
        lambda e: (
            e.type in types and str(e.data.get(key)) == about and e.event_id != cause.event_id
        ),
        strict,
    )


def _encounter(event: RecordedEvent) -> str:
    return str(event.data.get("encounter_id"))


def _hospital(
    causes: list[RecordedEvent],
    effective: tuple[RecordedEvent, ...],
    holders: _Holders,
) -> list[_Draft]:
    drafts: list[_Draft] = []
    closings = [e for e in effective if e.type == "JourneyClosed"]
    ready: dict[str, _Draft] = {}
    for cause in causes:
        t = cause.occurred_at
        if cause.type == "Admitted":
            draft = _Draft(
                ADMISSION,
                cause,
                t,
                t + timedelta(days=1),
                f"Admitted ({_words(cause.data.get('method'))}) to {cause.data.get('hospital')}",
            )
            closer = _answer(effective, cause, "encounter_id", ("Discharged",))
            if closer is not None:
                draft.close(closer, "discharged")
            drafts.append(draft)
        elif cause.type == "ContactRecorded" and not _counts_as_contact(cause):
            if cause.setting != "acute":
                continue
            draft = _Draft(
                ATTENDANCE,
                cause,
                t,
                t + timedelta(days=1),
                f"Attended {cause.data.get('with', {}).get('organisation', 'hospital')}",
            )
            closer = _first(effective, t, _counts_as_contact, strict=True)
            if closer is not None:
                draft.close(closer, "contact")
            drafts.append(draft)
        elif cause.type == "Discharged":
            drafts += _discharge(cause, effective)
        elif cause.type == "DischargeReady":
            enc = _encounter(cause)
            reason = cause.data.get("delay_reason")
            waiting = f"; waiting for {_words(reason)}" if reason else ""
            existing = ready.get(enc)
            if existing is not None and _still_open(existing, t, closings):
                # A later decision updates the reason of the same alert.
                existing.causes.append(cause)
                existing.detail = f"Ready for discharge{waiting}"
                continue
            draft = _Draft(DISCHARGE_READY, cause, t, t, f"Ready for discharge{waiting}")
            draft.causes = [cause]
            closer = _answer(effective, cause, "encounter_id", ("Discharged",))
            if closer is not None:
                draft.close(closer, "discharged")
            if holders.journey_open(t):
                ready[enc] = draft
            drafts.append(draft)
    return drafts


def _still_open(draft: _Draft, moment: datetime, closings: list[RecordedEvent]) -> bool:
    """Whether the draft is still open at ``moment`` (its closer and the journey's
    closings both later)."""
    if draft.closer is not None and draft.closer.occurred_at <= moment:
        return False
    return not any(draft.opened_at <= c.occurred_at <= moment for c in closings)


def _discharge(cause: RecordedEvent, effective: tuple[RecordedEvent, ...]) -> list[_Draft]:
    t = cause.occurred_at
    destination = str(cause.data.get("destination"))
    if destination == "died":
        return []  # a death alert instead (_deaths)
    draft = _Draft(DISCHARGE, cause, t, t + FOLLOW_UP_72H, f"Discharged to {_words(destination)}")
    drafts = [draft]
    resolving = _first(
        effective,
        t,
        lambda e: _counts_as_contact(e) or e.type == "Admitted",
        strict=True,
    )
    reason = None
    if resolving is not None:
        reason = "contact" if resolving.type == "ContactRecorded" else "readmitted"
        draft.close(resolving, reason)
    if destination in NO_FOLLOW_UP:
        return drafts
    for wait, due, label in (
        (FOLLOW_UP_72H, t + FOLLOW_UP_7D, "72h"),
        (FOLLOW_UP_7D, None, "7d"),
    ):
        deadline = t + wait
        if resolving is not None and resolving.occurred_at <= deadline:
            break
        escalation = _Draft(
            FOLLOW_UP,
            cause,
            deadline,
            due,
            f"No contact within {'72 hours' if label == '72h' else '7 days'} of discharge",
            variant=label,
        )
        if resolving is not None and reason is not None:
            escalation.close(resolving, reason)
        drafts.append(escalation)
    return drafts


def _each(
    causes: list[RecordedEvent],
    types: tuple[str, ...],
    one: Callable[[RecordedEvent], _Draft | None],
) -> list[_Draft]:
    """The alerts of the kinds that open at most one alert per cause (a referral's wait,
    a plan's overdue review), in the causes' order."""
    return [d for cause in causes if cause.type in types and (d := one(cause)) is not None]


def _referral(
    cause: RecordedEvent, effective: tuple[RecordedEvent, ...], wait: timedelta
) -> _Draft | None:
    deadline = cause.occurred_at + wait
    resolving = _answer(effective, cause, "referral_id", ("FirstContactMade", "ReferralDeclined"))
    if resolving is not None and resolving.occurred_at <= deadline:
        return None
    to = cause.data.get("to", {})
    draft = _Draft(
        REFERRAL,
        cause,
        deadline,
        None,
        f"Referral to {to.get('service')} at {to.get('organisation')} waiting "
        f"over {wait.days} days",
    )
    if resolving is not None:
        reason = "first_contact" if resolving.type == "FirstContactMade" else "declined"
        draft.close(resolving, reason)
    return draft


def _review(
    cause: RecordedEvent, effective: tuple[RecordedEvent, ...], person: PersonEvents
) -> _Draft | None:
    """A plan's review is overdue from the start of the day after it was due (in the
    ledger's zone) until a review or the plan's closure."""
    plan = str(cause.data.get("plan_id"))
    due_day = cause.data.get("review_due") or cause.data.get("next_review_due")
    if due_day is None:
        return None
    day = due_day if not isinstance(due_day, str) else datetime.fromisoformat(due_day).date()
    deadline = datetime.combine(day + timedelta(days=1), time(0), person.config.zone)
    resolving = _answer(
        effective, cause, "plan_id", ("CarePlanReviewed", "CarePlanClosed"), strict=True
    )
    if resolving is not None and resolving.occurred_at < deadline:
        return None
    draft = _Draft(
        REVIEW, cause, deadline, None, f"Care plan {plan} review was due {day.isoformat()}"
    )
    if resolving is not None:
        draft.close(
            resolving, "reviewed" if resolving.type == "CarePlanReviewed" else "plan_closed"
        )
    return draft


def _coordination(
    causes: list[RecordedEvent], effective: tuple[RecordedEvent, ...], coord: CoordinatorFold
) -> list[_Draft]:
    """Handoffs and assignments (to the coordinator named), releases and long waits
    without a named coordinator (the team queue), and "tell the person" after each."""
    drafts: list[_Draft] = []
    changes = [i for i in coord.intervals if i.opened_by_type in _CHANGES]
    applied = {i.opened_by: i for i in changes}
    later_changes = [e for e in effective if e.event_id in applied]
    for cause in causes:
        if cause.type not in _CHANGES:
            continue
        t = cause.occurred_at
        if cause.type == "CoordinatorReleased":
            interval = applied.get(cause.event_id)
            if interval is None:
                continue  # a release that changed nothing (flagged by the coordinators fold)
            holder: tuple[str | None, str] = (None, interval.organisation)
        else:
            who = cause.data.get("coordinator") or cause.data.get("to") or {}
            holder = (str(who.get("id")), str(who.get("organisation")))
        superseded = _first(
            later_changes, t, lambda e, cause=cause: e.event_id != cause.event_id, strict=True
        )
        if cause.type == "CoordinatorReleased":
            draft = _Draft(
                RELEASED, cause, t, t + timedelta(days=1), "Coordinator released; nobody named"
            )
            if superseded is not None:
                draft.close(superseded, "assigned")
        else:
            verb = "Handed off" if cause.type == "CoordinatorHandedOff" else "Assigned"
            draft = _Draft(HANDOFF, cause, t, t + timedelta(days=7), f"{verb} to you")
            named = holder[0]
            contact = _first(
                effective,
                t,
                lambda e, named=named: (
                    _counts_as_contact(e) and str(e.data.get("with", {}).get("id")) == named
                ),
            )
            ends = [e for e in (contact, superseded) if e is not None]
            if ends:
                first = min(ends, key=lambda e: (e.occurred_at, e.position))
                draft.close(first, "contact" if first is contact else "superseded")
        draft.holder = holder
        drafts.append(draft)
        inform = _Draft(
            INFORM,
            cause,
            t,
            t + timedelta(days=7),
            "Tell the person who coordinates their care",
        )
        inform.holder = holder
        told = _first(
            effective,
            t,
            lambda e: (
                e.type == "PersonInformed" and e.data.get("about") in ("coordinator", "handoff")
            ),
        )
        ends = [e for e in (told, superseded) if e is not None]
        if ends:
            first = min(ends, key=lambda e: (e.occurred_at, e.position))
            inform.close(first, "informed" if first is told else "superseded")
        drafts.append(inform)
    return drafts


_CHANGES = ("CoordinatorAssigned", "CoordinatorHandedOff", "CoordinatorReleased")


def _unassigned_drafts(
    person: PersonEvents, coord: CoordinatorFold, limits: Thresholds
) -> list[_Draft]:
    by_id = {e.event.event_id: e.event for e in person.entries}
    return _unassigned(coord.intervals, limits.unassigned, by_id)


def _unassigned(
    intervals: tuple[Interval, ...], wait: timedelta, by_id: dict[UUID, RecordedEvent]
) -> list[_Draft]:
    """Each run of unnamed answers inside a journey (contiguous intervals, practice
    changes included) that lasts longer than ``wait``: a team-queue alert opening when
    the wait passes, closed by the assignment (or the journey's closing) that ends it."""
    runs: list[list[Interval]] = []
    previous: Interval | None = None
    for interval in intervals:
        # The previous interval was unnamed too and this one starts where it ended.
        continues = (
            previous is not None and not previous.named and previous.valid_to == interval.valid_from
        )
        if not interval.named:
            if runs and continues:
                runs[-1].append(interval)
            else:
                runs.append([interval])
        previous = interval
    drafts: list[_Draft] = []
    for run in runs:
        first, last = run[0], run[-1]
        deadline = first.valid_from + wait
        if last.valid_to is not None and last.valid_to <= deadline:
            continue
        draft = _Draft(
            UNASSIGNED,
            by_id[first.opened_by],
            deadline,
            None,
            f"No named coordinator for over {wait.days} days",
        )
        draft.holder = (None, last.organisation)
        if last.closed_by is not None:
            closer = by_id[last.closed_by]
            named = closer.type in ("CoordinatorAssigned", "CoordinatorHandedOff")
            draft.close(closer, "assigned" if named else "journey_closed")
        drafts.append(draft)
    return drafts


def _deaths(causes: list[RecordedEvent], holders: _Holders) -> list[_Draft]:
    """One alert for the first report of the death inside a journey (a discharge to
    ``died`` and the journey's closing usually both say it)."""
    for cause in causes:
        died = (cause.type == "Discharged" and cause.data.get("destination") == "died") or (
            cause.type == "JourneyClosed" and cause.data.get("reason") == "died"
        )
        if died and holders.journey_open(cause.occurred_at, at_close=True):
            return [_Draft(DEATH, cause, cause.occurred_at, None, "The person died")]
    return []


def _late(person: PersonEvents) -> list[_Draft]:
    return [
        _Draft(
            LATE,
            f.event,
            f.event.occurred_at,
            None,
            f"{f.event.type} recorded late: {f.detail}",
        )
        for f in person.findings
        if f.kind == "late_arrival"
    ]


def _words(value: object) -> str:
    return str(value).replace("_", " ")


# -- the read model ------------------------------------------------------------------------

ALERTS = table(
    "alerts",
    Alert,
    {
        "patient_id": "uuid NOT NULL",
        "alert_id": "uuid NOT NULL",
        "kind": "text NOT NULL",
        "coordinator_id": "text",
        "organisation": "text NOT NULL",
        "team_queue": "boolean NOT NULL",
        "opened_at": f"{TS} NOT NULL",
        "opened_recorded_at": f"{TS} NOT NULL",
        "opened_position": "bigint NOT NULL",
        "due": TS,
        "positions": "jsonb NOT NULL",
        "detail": "text NOT NULL",
        "status": "text NOT NULL",
        "closed_at": TS,
        "closed_recorded_at": TS,
        "closed_position": "bigint",
        "close_reason": "text",
        "acknowledged_at": TS,
        "acknowledged_by": "text",
    },
    Index("key", "alert_id", unique=True),
    Index("person", "patient_id"),
    Index("coordinator", "coordinator_id, status, opened_at", where="NOT team_queue"),
    Index("queue", "organisation, status, opened_at", where="team_queue"),
)

HANDLES = frozenset(
    {
        EventType.PATIENT_REGISTERED,
        EventType.COORDINATOR_ASSIGNED,
        EventType.COORDINATOR_HANDED_OFF,
        EventType.COORDINATOR_RELEASED,
        EventType.ADMITTED,
        EventType.DISCHARGED,
        EventType.ADMISSION_CANCELLED,
        EventType.DISCHARGE_CANCELLED,
        EventType.CONTACT_RECORDED,
        EventType.REFERRAL_MADE,
        EventType.REFERRAL_DECLINED,
        EventType.FIRST_CONTACT_MADE,
        EventType.CARE_PLAN_AGREED,
        EventType.CARE_PLAN_REVIEWED,
        EventType.CARE_PLAN_CLOSED,
        EventType.JOURNEY_CLOSED,
        EventType.EVENT_RETRACTED,
        EventType.DISCHARGE_READY,
        EventType.PERSON_INFORMED,
        EventType.ALERT_ACKNOWLEDGED,
    }
)
# Late arrivals of these still open a ``late_arrival`` alert (any type can); they cause
# or resolve nothing else.
IGNORES = frozenset(EventType) - HANDLES


def _rows(found: tuple[Alert, ...]) -> Rows:
    return {ALERTS.name: found}


MODEL: ReadModel[tuple[Alert, ...]] = ReadModel(
    "alerts",
    (ALERTS,),
    HANDLES,
    IGNORES,
    lambda person, folds: fold(person, folds.of(coordinators.MODEL)),
    _rows,
)
