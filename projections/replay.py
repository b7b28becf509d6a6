"""The auditor's replay: one person's state as at occurred time T, as the ledger knew it
at time K, computed by the same folds as the projections (never read from the tables).

``known_at`` keeps the events recorded at or before K (``recorded_at <= K``, docs/architecture.md,
"Two clocks"), so corrections recorded after K (retractions, cancels, merges) are not yet
applied; ``as_of`` then cuts what occurred after T. Corrections known at K apply whatever
their own occurred time: a retraction says the target was never true, so it is gone
from the answer about any T. Hand it the person's history, e.g.
``ledger.history(patient_id, known_at=K)`` (which already includes merged streams as
known at K); streams that no standing merge joins to the person are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack
from uuid import UUID

from domain.journey import RecordedEvent
from projections import alerts, care_plans, coordinators, quality, queries, referrals, timeline
from projections.fold import DEFAULT_CONFIG, FoldConfig, PersonEvents, prepare
from projections.readmodel import Folds
from projections.tables import as_dict, jsonable


class Cut(TypedDict, total=False):
    """What a replay or a FHIR Bundle is of (module docstring): the events that occurred
    by ``as_of`` (default: everything) as recorded by ``known_at`` (default: everything),
    of ``patient_id`` (default: the one stream no merge names), folded with ``config``.
    Both take these same keywords, and ``as_at`` applies them for both."""

    as_of: datetime | None
    known_at: datetime | None
    patient_id: UUID | None
    config: FoldConfig


def as_at(events: Sequence[RecordedEvent], cut: Cut) -> tuple[PersonEvents, datetime]:
    """The person as at ``as_of`` as known at ``known_at`` (module docstring), and the
    moment asked about: ``as_of``, or now. The replay and the FHIR Bundle both start
    here, so they cannot disagree about what was known and true when."""
    as_of, known_at = cut.get("as_of"), cut.get("known_at")
    known = [e for e in events if known_at is None or e.recorded_at <= known_at]
    person = prepare(known, cut.get("patient_id"), cut.get("config", DEFAULT_CONFIG))
    if as_of is not None:
        person = person.cut(as_of)
    return person, as_of or datetime.now(UTC)


def replay(events: Sequence[RecordedEvent], **cut: Unpack[Cut]) -> dict[str, Any]:
    """The person's coordinator, spells, care plans, referrals, findings and timeline as
    at ``as_of`` (default: everything) knowing only what was recorded by ``known_at``
    (default: everything). Shapes match ``projections/queries.py``; ``today`` for
    "review overdue" and "waiting days" is the date of ``as_of`` (or now) in the zone."""
    person, moment = as_at(events, cut)
    folds = Folds(person)
    coord = folds.of(coordinators.MODEL)
    line = folds.of(timeline.MODEL)
    plans = folds.of(care_plans.MODEL)
    refs = folds.of(referrals.MODEL)
    zone = person.config.zone
    today = moment.astimezone(zone).date()
    open_interval = next((i for i in reversed(coord.intervals) if i.valid_to is None), None)
    return {
        "patient_id": str(person.patient_id),
        "as_of": jsonable(cut.get("as_of")),
        "known_at": jsonable(cut.get("known_at")),
        "position": person.position,
        "events": len(person.entries),
        "coordinator": queries.coordinator_view(coord.status._asdict()),
        "coordinator_as_of": queries.as_of_view(
            person.patient_id,
            moment,
            open_interval._asdict() if open_interval is not None else None,
        ),
        "coordinator_intervals": [queries.interval_view(i._asdict()) for i in coord.intervals],
        "open_spells": [_drop(as_dict(s)) for s in line.spells if s.status == "open"],
        "spells": [_drop(as_dict(s)) for s in line.spells],
        "care_plans": [queries.plan_view(p._asdict(), today) for p in plans.plans],
        "referrals": [queries.referral_view(r._asdict(), today, zone) for r in refs.referrals],
        "quality_findings": [as_dict(f) for f in folds.of(quality.MODEL)],
        "alerts": [_drop(as_dict(a)) for a in folds.of(alerts.MODEL) if a.opened_at <= moment],
        "timeline": [_drop(as_dict(e)) for e in line.entries],
    }


def _drop(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("patient_id", None)
    return row
