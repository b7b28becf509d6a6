"""One person's journey under construction, and the envelopes it becomes.

The life-course themes (registration, hospital, referrals, coordination, plans, contacts,
mistakes) each add events to a ``Life`` and read what earlier themes decided (when the
person was identified, who coordinated them when, which professionals they know). Events
are held as tuples ``(when, seq, event_id, type, org, recorded_by, data)`` and only
rendered to JSON envelopes at the end, sorted by occurrence; ``seq`` (creation order)
breaks ties so a cause created before its effect stays before it.
"""

from __future__ import annotations

from random import Random
from typing import Any

from domain.synthetic.clock import Clock, Moment
from domain.synthetic.world import Org, Practice, Staff, World

Pending = tuple[Moment, int, str, str, Org, "dict[str, str] | None", "dict[str, Any]"]

# How often a service's record is attributed to its system feed rather than a person.
SYSTEM_RECORDED = 0.06


# The RFC 4122 variant keeps the low two bits of the clock_seq_hi nibble: 10xx.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def uuid4_text(rng: Random) -> str:
    """A random version-4 UUID as text, drawn from ``rng`` (never from the OS, so a seed
    reproduces it); the same text ``uuid.UUID(bytes=..., version=4)`` gives, faster."""
    h = rng.randbytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class Life:
    """The facts of one person's journey, plus the state the themes share."""

    def __init__(
        self, world: World, clock: Clock, rng: Random, nhs_number: str, end: Moment
    ) -> None:
        self.world = world
        self.clock = clock
        self.rng = rng
        self.nhs_number = nhs_number
        self.end = end  # the window is [0, end): see ``clock``
        # Themes place events strictly before the horizon: the window's end, or the
        # moment the journey is closing (a death, a move away).
        self.horizon = end
        self.closing: tuple[Moment, str] | None = None
        self.events: list[Pending] = []
        self._seq = 0
        # Set by registration and case identification.
        self.practice: Practice = world.practices[0]
        self.gp: Staff = self.practice.gps[0]
        self.registered_at: Moment = 0
        self.identified_at: Moment | None = None
        self.criteria: tuple[str, ...] = ()
        self.need = 0.3
        # Shared across themes.
        self.home_discharges: list[Moment] = []
        self.spells: list[tuple[Moment, Moment]] = []
        self.first_referral: Moment | None = None
        self.pool: list[tuple[Moment, Staff]] = []
        self.team: dict[str, Moment] = {}
        self.coordination: list[tuple[Moment, Moment | None, Staff]] = []
        self.plans: list[tuple[str, Moment, Moment | None]] = []

    # -- adding events -------------------------------------------------------------------

    def add(
        self,
        when: Moment,
        type_: str,
        org: Org,
        recorded_by: dict[str, str] | None,
        data: dict[str, Any],
    ) -> str:
        """Add one event; returns its event id (retractions name it)."""
        event_id = uuid4_text(self.rng)
        self.events.append((when, self._seq, event_id, type_, org, recorded_by, data))
        self._seq += 1
        return event_id

    def by(self, staff: Staff) -> dict[str, str]:
        """``recorded_by`` for an entry by ``staff``, sometimes their system's feed."""
        if self.rng.random() < SYSTEM_RECORDED:
            return self.org_of(staff).system_recorder
        return staff.recorded_by

    def org_of(self, staff: Staff) -> Org:
        return self.world.orgs[staff.organisation]

    def new_id(self, prefix: str, bits: int = 48) -> str:
        """A publisher's id (referral, encounter, plan): random, so unique across people."""
        return f"{prefix}-{self.rng.getrandbits(bits):0{bits // 4}X}"

    # -- shared state ----------------------------------------------------------------------

    def involve(self, staff: Staff, when: Moment, join: float = 0.5) -> None:
        """``staff`` starts working with the person: they may be contacted from now on,
        and (with probability ``join``) are recorded as joining the care team."""
        if all(known.id != staff.id for _, known in self.pool):
            self.pool.append((when, staff))
        if staff.id not in self.team and when < self.horizon and self.rng.random() < join:
            self.team[staff.id] = when
            self.add(
                when,
                "CareTeamMemberJoined",
                self.org_of(staff),
                self.by(staff),
                {"member": staff.professional},
            )

    def leave_team(self, staff: Staff, when: Moment, reason: str) -> None:
        """Record ``staff`` leaving the team, if they had joined before ``when``."""
        joined = self.team.get(staff.id)
        if joined is None or joined >= when or when >= self.horizon:
            return
        del self.team[staff.id]
        self.add(
            when,
            "CareTeamMemberLeft",
            self.org_of(staff),
            self.by(staff),
            {"member_id": staff.id, "reason": reason},
        )

    def coordinator_at(self, when: Moment) -> Staff | None:
        """The named coordinator at ``when`` (the coordination theme's spans)."""
        for since, until, staff in self.coordination:
            if since <= when and (until is None or when < until):
                return staff
        return None

    def in_hospital(self, when: Moment) -> bool:
        """Whether ``when`` falls inside one of the person's hospital spells."""
        return any(admitted <= when <= discharged for admitted, discharged in self.spells)

    def known_at(self, when: Moment) -> list[Staff]:
        """The professionals involved with the person by ``when``."""
        return [staff for since, staff in self.pool if since <= when]

    # -- output --------------------------------------------------------------------------

    def truncate(self) -> None:
        """Drop what the themes placed at or after the horizon (the journey was closing)."""
        horizon = self.horizon
        self.events = [event for event in self.events if event[0] < horizon]

    def _team_in_order(self) -> None:
        """Drop a join of someone already in the team, or a leave of someone not in it.

        Themes decide joins and leaves independently (a referral episode ends while the
        same nurse becomes coordinator), so only the final, time-ordered list can tell
        whether a membership is already open; this keeps the team fold clean."""
        members: set[str] = set()
        kept: list[Pending] = []
        for event in self.events:
            type_ = event[3]
            if type_ == "CareTeamMemberJoined":
                member = event[6]["member"]["id"]
                if member in members:
                    continue
                members.add(member)
            elif type_ == "CareTeamMemberLeft":
                member = event[6]["member_id"]
                if member not in members:
                    continue
                members.discard(member)
            kept.append(event)
        self.events = kept

    def envelopes(self) -> list[dict[str, Any]]:
        """The person's envelopes in occurrence order, shaped exactly as the contract."""
        self.events.sort()  # (when, seq) is unique, so later fields are never compared
        self._team_in_order()
        render = self.clock.render
        nhs_number = self.nhs_number
        out: list[dict[str, Any]] = []
        for when, _seq, event_id, type_, org, recorded_by, data in self.events:
            # Every dict is fresh (themes build their own recorded_by and data), so no
            # two envelopes share a mutable part.
            envelope: dict[str, Any] = {
                "event_id": event_id,
                "type": type_,
                "schema_version": 1,
                "nhs_number": nhs_number,
                "occurred_at": render(when, org.style),
                "source": {
                    "organisation": org.code,
                    "system": org.system,
                    "setting": org.setting,
                },
            }
            if recorded_by is not None:
                envelope["recorded_by"] = recorded_by
            envelope["data"] = data
            out.append(envelope)
        return out
