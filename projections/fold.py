"""The shared ordering of one person's events, before any read model looks at them.

Every read model is a pure fold (docs/architecture.md): a plain function from one person's
recorded events to that person's rows. They all start from ``prepare``, which settles
once, for every fold, what the events *mean*:

* **Streams.** The input may hold several people's streams: a ``PatientsMerged`` on the
  survivor's stream that stands (is not retracted) makes the merged person's events part
  of the survivor's journey; chains are transitive. Events of streams no standing merge
  links to the person are left out, so a merge not yet known (``known_at``) or retracted
  simply is not applied.
* **Order.** By ``occurred_at``, ties by ledger ``position`` (global, so ties between
  merged streams are settled the same way everywhere). Duplicated ``event_id`` s keep
  their first position.
* **Retractions.** An ``EventRetracted`` voids its target; a retracted retraction voids
  nothing, so its target stands again. Targets always precede their retractions in the
  ledger, so deciding from the highest position down settles every chain in one pass.
  Retractions are corrections of the record, not facts in occurred time: they apply
  whatever their own ``occurred_at``.
* **Corrections** (repeated HL7 A01/A03): two standing ``Admitted`` (or ``Discharged``)
  of one ``encounter_id`` with the same ``occurred_at`` are versions of one fact; the
  one sent last (``data.sent_at``, then ledger position) stands and the others are
  ``corrected`` by it, whatever order they were recorded in.
* **Cancels** (HL7 A11/A12/A13, docs/adt.md): each standing cancel, in occurred order,
  voids the latest not-yet-cancelled standing event of its kind (Admitted, Transferred,
  Discharged) for the same ``encounter_id`` that occurred at or before it. A cancel with
  no such target is kept and flagged; it applies as soon as the target is recorded,
  because the runner refolds the whole person.

Retracted and cancelled events stay in the timeline, marked, and count nowhere else:
``PersonEvents.effective`` holds only the standing facts, which is all the other folds
read. Data-quality findings made here (retractions, corrections, cancels without target,
values recorded as ``unknown``, late and out-of-order arrivals) are collected by
``projections/quality.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import NamedTuple, cast
from uuid import UUID
from zoneinfo import ZoneInfo

from domain.contract import EventType, by_type
from domain.event_data import EventRetractedData, PatientsMergedData
from domain.journey import RecordedEvent
from domain.merge_walk import chain_root
from domain.settings import Settings

# Plain names (not enum members): every event is compared with these (``by_type``).
RETRACTION: str = EventType.EVENT_RETRACTED.value
MERGE: str = EventType.PATIENTS_MERGED.value
CANCELS: dict[str, str] = by_type(
    {
        EventType.ADMISSION_CANCELLED: EventType.ADMITTED.value,
        EventType.TRANSFER_CANCELLED: EventType.TRANSFERRED.value,
        EventType.DISCHARGE_CANCELLED: EventType.DISCHARGED.value,
    }
)
CORRECTIONS = frozenset({RETRACTION, MERGE, *CANCELS})

STANDING = "recorded"
RETRACTED = "retracted"
CANCELLED = "cancelled"
CORRECTED = "corrected"
VERSIONED = frozenset({EventType.ADMITTED.value, EventType.DISCHARGED.value})  # later sent corrects
# data fields that may hold "unknown" (uncoded at the source), with their as-sent field
UNCODED = {
    "method": "method_as_sent",
    "destination": "destination_as_sent",
    "patient_class": "patient_class_as_sent",
}


@dataclass(frozen=True, slots=True)
class FoldConfig:
    """What the folds need beyond the events: the zone calendar days are counted in
    (docs/measures.md, "Calendar days") and how far out of order an arrival must be to count as
    late."""

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/London"))
    late_after: timedelta = timedelta(days=7)
    referral_wait_days: int = 28  # alerts: a referral waiting longer opens one
    unassigned_days: int = 14  # alerts: this long without a named coordinator opens one

    @classmethod
    def from_settings(cls, settings: Settings) -> FoldConfig:
        """``CAREJOURNEY_TIMEZONE``, ``CAREJOURNEY_LATE_ARRIVAL_DAYS``, and the alerts'
        ``CAREJOURNEY_REFERRAL_WAIT_THRESHOLD_DAYS`` and ``CAREJOURNEY_ALERT_UNASSIGNED_DAYS``."""
        return cls(
            settings.zone,
            timedelta(days=settings.late_arrival_days),
            settings.referral_wait_threshold_days,
            settings.alert_unassigned_days,
        )


DEFAULT_CONFIG = FoldConfig()


class Finding(NamedTuple):
    """A data-quality finding about one event (``projections/quality.py`` keeps them)."""

    kind: str
    event: RecordedEvent
    detail: str


class Entry(NamedTuple):
    """One event in the person's order, with what became of it."""

    event: RecordedEvent
    status: str  # STANDING, RETRACTED, CORRECTED or CANCELLED
    voided_by: RecordedEvent | None


@dataclass(frozen=True, slots=True)
class PersonEvents:
    """One person's events, ordered, with retractions, cancels and merges applied."""

    patient_id: UUID
    entries: tuple[Entry, ...]  # every event, in (occurred_at, position) order
    effective: tuple[RecordedEvent, ...]  # standing facts only (no corrections), same order
    findings: tuple[Finding, ...]
    streams: frozenset[UUID]  # the patient ids whose events are folded here
    config: FoldConfig = DEFAULT_CONFIG
    position: int = 0  # the highest ledger position folded (0 for no events)

    def cut(self, as_of: datetime) -> PersonEvents:
        """The same person as at occurred time ``as_of``: corrections already applied,
        later-occurring events dropped (what the replay of an auditor asks for)."""
        entries = tuple(e for e in self.entries if e.event.occurred_at <= as_of)
        return PersonEvents(
            self.patient_id,
            entries,
            tuple(e for e in self.effective if e.occurred_at <= as_of),
            tuple(f for f in self.findings if f.event.occurred_at <= as_of),
            self.streams,
            self.config,
            max((e.event.position for e in entries), default=0),
        )


def order_key(event: RecordedEvent) -> tuple[datetime, int]:
    return (event.occurred_at, event.position)


_POSITION = attrgetter("position")
_OCCURRED = attrgetter("occurred_at")
CANCEL_KINDS = frozenset(CANCELS)


def prepare(
    events: Iterable[RecordedEvent],
    patient_id: UUID | None = None,
    config: FoldConfig = DEFAULT_CONFIG,
) -> PersonEvents:
    """Settle order, retractions, cancels and merges for one person (module docstring).

    ``patient_id`` names the person (the survivor of any merges); when omitted it is
    the one stream in the input that no standing merge names as merged. An event given
    twice (same position) counts once; the ledger never gives one ``event_id`` two
    positions. Most people have no corrections at all, so each step is skipped unless
    its kind of event is present (this runs once per person in every rebuild).
    """
    by_position = _unique(sorted(events, key=_POSITION))
    kinds = {e.type for e in by_position}
    retracted_by = _retractions(by_position) if RETRACTION in kinds else {}
    if MERGE in kinds or not _one_stream(by_position, patient_id):
        root, streams = _streams(by_position, retracted_by, patient_id)
        by_position = [e for e in by_position if e.patient_id in streams]
    else:
        root = (
            patient_id
            if patient_id is not None
            else (by_position[0].patient_id if by_position else UUID(int=0))
        )
        streams = {root}
    ordered = sorted(by_position, key=_OCCURRED)  # stable: ties stay in position order
    corrected_by = _corrections(ordered, retracted_by) if kinds & VERSIONED else {}
    voided = {**retracted_by, **corrected_by}
    cancelled_by, pending = _cancels(ordered, voided) if kinds & CANCEL_KINDS else ({}, [])
    findings: list[Finding] = []
    if kinds & VERSIONED:
        findings.extend(_uncoded(ordered))
    if not retracted_by and not cancelled_by and not corrected_by:
        entries = [Entry(e, STANDING, None) for e in ordered]
        effective = [e for e in ordered if e.type not in CORRECTIONS]
    else:
        entries, effective = [], []
        for event in ordered:
            voider = retracted_by.get(event.event_id)
            if voider is not None:
                entries.append(Entry(event, RETRACTED, voider))
                findings.append(Finding(RETRACTED, event, _retracted_detail(voider)))
                continue
            voider = corrected_by.get(event.event_id)
            if voider is not None:
                entries.append(Entry(event, CORRECTED, voider))
                findings.append(
                    Finding(CORRECTED, event, f"corrected by {voider.event_id}, sent later")
                )
                continue
            voider = cancelled_by.get(event.event_id)
            if voider is not None:
                entries.append(Entry(event, CANCELLED, voider))
                continue
            entries.append(Entry(event, STANDING, None))
            if event.type not in CORRECTIONS:
                effective.append(event)
    for cancel in pending:
        findings.append(
            Finding(
                "cancel_without_target",
                cancel,
                f"no {CANCELS[cancel.type]} of encounter {cancel.data.get('encounter_id')} "
                "at or before it to cancel (yet)",
            )
        )
    findings.extend(_arrivals(by_position, retracted_by, config.late_after))
    return PersonEvents(
        root,
        tuple(entries),
        tuple(effective),
        tuple(findings),
        frozenset(streams),
        config,
        by_position[-1].position if by_position else 0,
    )


def _unique(by_position: list[RecordedEvent]) -> list[RecordedEvent]:
    out: list[RecordedEvent] = []
    last = None
    for event in by_position:
        if event.position != last:
            out.append(event)
            last = event.position
    return out


def _one_stream(by_position: list[RecordedEvent], patient_id: UUID | None) -> bool:
    if not by_position:
        return True
    first = patient_id if patient_id is not None else by_position[0].patient_id
    return all(e.patient_id == first for e in by_position)


def _retractions(by_position: list[RecordedEvent]) -> dict[UUID, RecordedEvent]:
    """Target event id -> the standing retraction that voids it.

    From the highest position down, each retraction's own standing is already known
    (anything retracting it was recorded later); the lowest standing retraction of a
    target is named as the one that voids it.
    """
    present = {e.event_id for e in by_position}
    retracted_by: dict[UUID, RecordedEvent] = {}
    for event in reversed(by_position):
        if event.type != RETRACTION or event.event_id in retracted_by:
            continue
        target = _target(event)
        if target is not None and target in present:
            retracted_by[target] = event
    return retracted_by


def _target(retraction: RecordedEvent) -> UUID | None:
    value = cast(EventRetractedData, retraction.data).get("retracted_event_id")
    try:
        return UUID(str(value))
    except ValueError:
        return None


def _survivors(
    by_position: list[RecordedEvent], retracted_by: dict[UUID, RecordedEvent]
) -> dict[UUID, UUID]:
    """Merged patient id -> survivor, for every standing merge (one per merged person,
    the ledger's rule; should the input hold two, the first recorded wins)."""
    survivor_of: dict[UUID, UUID] = {}
    for event in by_position:
        if event.type != MERGE or event.event_id in retracted_by:
            continue
        merged = cast(PatientsMergedData, event.data).get("merged_patient_id")
        if merged is None:
            continue
        merged_id = UUID(str(merged))
        if merged_id != event.patient_id and merged_id not in survivor_of:
            survivor_of[merged_id] = event.patient_id
    return survivor_of


def _root(patient: UUID, survivor_of: dict[UUID, UUID]) -> UUID:
    return chain_root(patient, survivor_of.get)


def _streams(
    by_position: list[RecordedEvent],
    retracted_by: dict[UUID, RecordedEvent],
    patient_id: UUID | None,
) -> tuple[UUID, set[UUID]]:
    """The person folded and every stream standing merges join to it (transitively)."""
    survivor_of = _survivors(by_position, retracted_by)
    if patient_id is None:
        first: dict[UUID, int] = {}
        for event in by_position:
            first.setdefault(event.patient_id, event.position)
        roots = [p for p in first if p not in survivor_of]
        if roots:
            patient_id = min(roots, key=first.__getitem__)
        elif by_position:
            patient_id = _root(by_position[0].patient_id, survivor_of)
        else:
            patient_id = UUID(int=0)
    people = {e.patient_id for e in by_position} | set(survivor_of)
    return patient_id, {p for p in people if _root(p, survivor_of) == patient_id}


def people(events: Iterable[RecordedEvent]) -> dict[UUID, list[RecordedEvent]]:
    """Split the streams of several patient ids into people: each root (a patient id
    no standing merge names as merged) with its own events and those of everyone merged
    into it. What the runner folds when merges link the streams it read."""
    unique: dict[UUID, RecordedEvent] = {}
    for event in events:
        first = unique.get(event.event_id)
        if first is None or event.position < first.position:
            unique[event.event_id] = event
    by_position = sorted(unique.values(), key=lambda e: e.position)
    survivor_of = _survivors(by_position, _retractions(by_position))
    out: dict[UUID, list[RecordedEvent]] = {}
    for event in by_position:
        out.setdefault(_root(event.patient_id, survivor_of), []).append(event)
    return out


def _cancels(
    ordered: list[RecordedEvent], retracted_by: dict[UUID, RecordedEvent]
) -> tuple[dict[UUID, RecordedEvent], list[RecordedEvent]]:
    """Cancelled event id -> its cancel; and the standing cancels that found no target."""
    targets: dict[tuple[str, str], list[RecordedEvent]] = {}
    cancels: list[RecordedEvent] = []
    kinds = set(CANCELS.values())
    for event in ordered:
        if retracted_by and event.event_id in retracted_by:
            continue
        if event.type in kinds:
            key = (event.type, str(event.data.get("encounter_id")))
            targets.setdefault(key, []).append(event)
        elif event.type in CANCELS:
            cancels.append(event)
    cancelled_by: dict[UUID, RecordedEvent] = {}
    pending: list[RecordedEvent] = []
    for cancel in cancels:
        candidates = targets.get((CANCELS[cancel.type], str(cancel.data.get("encounter_id"))))
        chosen = None
        for target in candidates or ():
            if target.occurred_at > cancel.occurred_at:
                break  # candidates are in occurred order
            if target.event_id not in cancelled_by:
                chosen = target
        if chosen is None:
            pending.append(cancel)
        else:
            cancelled_by[chosen.event_id] = cancel
    return cancelled_by, pending


def _corrections(
    ordered: list[RecordedEvent], retracted_by: dict[UUID, RecordedEvent]
) -> dict[UUID, RecordedEvent]:
    """Corrected event id -> the version that stands (module docstring)."""
    groups: dict[tuple[str, str, datetime], list[RecordedEvent]] = {}
    for event in ordered:
        if event.type in VERSIONED and event.event_id not in retracted_by:
            key = (event.type, str(event.data.get("encounter_id")), event.occurred_at)
            groups.setdefault(key, []).append(event)
    out: dict[UUID, RecordedEvent] = {}
    for versions in groups.values():
        if len(versions) < 2:
            continue
        latest = max(versions, key=lambda e: (str(e.data.get("sent_at") or ""), e.position))
        out.update((e.event_id, latest) for e in versions if e is not latest)
    return out


def _uncoded(ordered: list[RecordedEvent]) -> list[Finding]:
    """An ``unknown`` the source could not code (HL7 ADT: empty or local values), with
    what it sent: the fact counts, and the finding says what to map."""
    findings = []
    for event in ordered:
        if event.type not in VERSIONED:
            continue
        for name, sent_field in UNCODED.items():
            if event.data.get(name) != "unknown":
                continue
            sent = event.data.get(sent_field) or {}
            shown = " / ".join(f"{k} {v!r}" for k, v in sorted(sent.items())) or "nothing"
            findings.append(
                Finding("uncoded_value", event, f"{name} recorded as unknown: sent {shown}")
            )
    return findings


def _retracted_detail(retraction: RecordedEvent) -> str:
    reason = cast(EventRetractedData, retraction.data).get("reason")
    return f"retracted by {retraction.event_id}" + (f": {reason}" if reason else "")


def _arrivals(
    by_position: list[RecordedEvent],
    retracted_by: dict[UUID, RecordedEvent],
    late_after: timedelta,
) -> list[Finding]:
    """Out-of-order and late arrivals, judged against the person's own journey.

    An event is *out of order* when the ledger had already recorded a standing event of
    this person that occurred after it; it is *late* when that event occurred more than
    ``late_after`` after it. Judging lateness against the journey rather than the wall
    clock means a backfill of history (every event recorded long after it occurred, in
    order) is not all flagged, while a fact that reaches the ledger after the journey
    has moved on is. Retractions and merges are corrections, not facts: not judged.
    """
    findings: list[Finding] = []
    latest: RecordedEvent | None = None
    for event in by_position:
        if event.type in (RETRACTION, MERGE) or (retracted_by and event.event_id in retracted_by):
            continue
        if latest is not None and latest.occurred_at > event.occurred_at:
            behind = latest.occurred_at - event.occurred_at
            kind = "late_arrival" if behind > late_after else "out_of_order"
            findings.append(
                Finding(
                    kind,
                    event,
                    f"recorded after {latest.type} at position {latest.position}, which "
                    f"occurred {_span(behind)} later",
                )
            )
        if latest is None or event.occurred_at > latest.occurred_at:
            latest = event
    return findings


def _span(delta: timedelta) -> str:
    if delta >= timedelta(days=2):
        return f"{delta.days} days"
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} minutes"
