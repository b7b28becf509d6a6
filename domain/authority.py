"""Which organisation may state which fact: the authority rules every way in shares.

A publisher is bound to its organisations (``source.organisation``), but some facts are
about *another* organisation's records or staff, and being allowed to publish at all
must not let one service rewrite another's. Two rules, judged for every envelope by
``Ledger.append_batch`` whatever the door (HTTP, Kafka, files, ADT), so every door
refuses the same things with the same reasons:

* **retraction-by-publisher**: an ``EventRetracted`` may be published only by the
  organisation that published the event it retracts;
* **coordination-by-party**: a coordinator fact (``CoordinatorAssigned``,
  ``CoordinatorHandedOff``, ``CoordinatorReleased``) may be published only by the
  organisation of a coordinator taking or giving up the role (the one assigned, the
  one handing off or taking over, the one released) or by the person's registered
  practice (the accountable default coordinator: docs/governance.md, "Authority per
  organisation").

An administrator's HTTP key is exempt (an operator correcting the ledger). The
organisation of a coordinator giving up the role is the one their assignment or
handoff named; the registered practice is the latest registration's. Facts arrive late
and out of order, so a handoff or release can name a coordinator giving up the role
whom no recorded fact has named yet: then there is nothing to check the publisher
against, and the fact is accepted (the ``from_id`` is still checked as data quality by
the projections). A coordinator the ledger knows can be handed off or released only by
their own organisation, the one taking over, or the practice. This module only
judges (a pure function of the fact and what the ledger knows); ``domain/ledger.py``
gathers what it needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RETRACTION = "retraction-by-publisher"
COORDINATION = "coordination-by-party"
COORDINATOR_FACTS = frozenset(
    {"CoordinatorAssigned", "CoordinatorHandedOff", "CoordinatorReleased"}
)
REGISTRATION = "PatientRegistered"


@dataclass(slots=True)
class PersonAuthority:
    """What the rules need to know about one person, as the ledger knows it so far."""

    practice: str | None = None
    coordinator_organisations: dict[str, str] = field(default_factory=dict)  # id -> ODS

    def learn(self, type_: str, data: Mapping[str, Any]) -> None:
        """Take in a recorded (or just accepted) fact, in ledger order."""
        if type_ == REGISTRATION:
            self.practice = data.get("practice") or self.practice
        elif type_ == "CoordinatorAssigned":
            self._professional(data.get("coordinator"))
        elif type_ == "CoordinatorHandedOff":
            self._professional(data.get("to"))

    def _professional(self, who: Any) -> None:
        if isinstance(who, Mapping) and who.get("id") and who.get("organisation"):
            self.coordinator_organisations[str(who["id"])] = str(who["organisation"])


def refusal(
    type_: str,
    source_organisation: str,
    data: Mapping[str, Any],
    person: PersonAuthority,
    *,
    target_organisation: str | None = None,
) -> str | None:
    """Why this organisation may not state this fact, naming the rule; None if it may."""
    if type_ == "EventRetracted":
        if target_organisation is None or target_organisation == source_organisation:
            return None
        return (
            f"rule {RETRACTION}: only the organisation that published the event "
            f"({target_organisation}) may retract it, not {source_organisation}"
        )
    if type_ not in COORDINATOR_FACTS:
        return None
    parties = _parties(type_, data, person)
    if source_organisation in parties or source_organisation == person.practice:
        return None
    if _giving_up_unknown(type_, data, person):
        return None  # nothing to check against yet (module docstring)
    named = ", ".join(sorted(parties)) or "none known"
    practice = person.practice or "none registered"
    return (
        f"rule {COORDINATION}: a coordinator fact may be published only by the organisation "
        f"of a coordinator taking or giving up the role ({named}) or by the person's "
        f"registered practice ({practice}), not {source_organisation}"
    )


def _giving_up_unknown(type_: str, data: Mapping[str, Any], person: PersonAuthority) -> bool:
    """A handoff or release from a coordinator no recorded fact has named yet."""
    if type_ == "CoordinatorHandedOff":
        return str(data.get("from_id")) not in person.coordinator_organisations
    if type_ == "CoordinatorReleased":
        return str(data.get("coordinator_id")) not in person.coordinator_organisations
    return False


def _parties(type_: str, data: Mapping[str, Any], person: PersonAuthority) -> set[str]:
    """The organisations of the coordinators taking or giving up the role."""
    found: set[str] = set()
    known = person.coordinator_organisations
    if type_ == "CoordinatorAssigned":
        who = data.get("coordinator")
        if isinstance(who, Mapping) and who.get("organisation"):
            found.add(str(who["organisation"]))
    elif type_ == "CoordinatorHandedOff":
        who = data.get("to")
        if isinstance(who, Mapping) and who.get("organisation"):
            found.add(str(who["organisation"]))
        giving = known.get(str(data.get("from_id")))
        if giving:
            found.add(giving)
    elif type_ == "CoordinatorReleased":
        giving = known.get(str(data.get("coordinator_id")))
        if giving:
            found.add(giving)
    return found
