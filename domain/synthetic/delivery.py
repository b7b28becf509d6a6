"""The order events reach the ledger: roughly by occurrence, with some arriving late.

Services report facts late and out of order (docs/architecture.md, "Never lose a well-formed
fact"): a discharge can arrive before its admission. ``delivery_order`` interleaves all
people's events by occurrence time and holds back about 2% of them until after one to three
later events of the same person. One rule is kept: an ``EventRetracted`` always comes after its
target, because the ledger rejects a retraction naming an event it has not seen
(docs/architecture.md, "Append-only"). This is the order ``carejourney demo`` appends in.
"""

from __future__ import annotations

from datetime import datetime
from random import Random
from typing import Any

LATE_SHARE = 0.02
MAX_LATE_BY = 3  # events of the same person that may overtake a late one

# Sort key: (moment, rank, person, index). A late event takes the moment of the event
# it is delivered after, with rank 1 (after it); a retraction delayed behind its target
# takes rank target's rank + 1.
_Key = tuple[float, int, int, int]


def delivery_order(people_events: list[list[dict[str, Any]]], seed: int) -> list[dict[str, Any]]:
    """All envelopes in delivery order (deterministic from ``seed``)."""
    rng = Random(seed)
    keyed: list[tuple[_Key, dict[str, Any]]] = []
    for person, events in enumerate(people_events):
        moments = [datetime.fromisoformat(e["occurred_at"]).timestamp() for e in events]
        order = sorted(range(len(events)), key=moments.__getitem__)
        keys: list[_Key] = [(moments[i], 0, person, i) for i in range(len(events))]
        for rank, i in enumerate(order[:-1]):
            if rng.random() < LATE_SHARE:
                overtaken = order[min(len(order) - 1, rank + rng.randint(1, MAX_LATE_BY))]
                keys[i] = (moments[overtaken], 1, person, i)
        _retractions_after_targets(events, keys)
        keyed.extend(zip(keys, events, strict=True))
    keyed.sort(key=lambda pair: pair[0])
    return [event for _, event in keyed]


def _retractions_after_targets(events: list[dict[str, Any]], keys: list[_Key]) -> None:
    """Push each retraction behind its target if lateness put the target after it.

    Targets are processed before their retractions (targets occur earlier and are never
    retractions themselves here), so one pass in occurrence order suffices; a chain of
    retractions would need the pass repeated, which the loop does until stable.
    """
    position = {e["event_id"]: i for i, e in enumerate(events)}
    changed = True
    while changed:
        changed = False
        for i, event in enumerate(events):
            if event["type"] != "EventRetracted":
                continue
            target = position.get(event["data"]["retracted_event_id"])
            if target is not None and keys[i] <= keys[target]:
                moment, rank, person, _ = keys[target]
                keys[i] = (moment, rank + 1, person, i)
                changed = True
