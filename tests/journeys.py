"""Hand-built journeys for the measure tests: one person's envelopes, written tersely.

Times are local London wall-clock strings (``"2025-04-07 14:00"``), turned into aware
datetimes in Europe/London, or any ISO-8601 string with its own offset
(``"2025-06-30T23:30+00:00"``) when a test is about the zone rule itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from domain.nhs_number import make_nhs_number
from tests.envelopes import envelope

LONDON = ZoneInfo("Europe/London")
PRACTICE = "A81001"


def when(text: str) -> datetime:
    """A local London time, or an ISO time with its own offset."""
    moment = datetime.fromisoformat(text.replace(" ", "T"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=LONDON)


def nhs(index: int) -> str:
    """The ``index``-th valid NHS number of a test range (never a real one's prefix)."""
    found = -1
    prefix = 999_000_000
    while True:
        number = make_nhs_number(prefix)
        prefix += 1
        if number is not None:
            found += 1
            if found == index:
                return number


def professional(
    who: str, role: str = "community_nurse", organisation: str = "RYX01", setting: str = "community"
) -> dict[str, str]:
    return {"id": who, "role": role, "organisation": organisation, "setting": setting}


class Journey:
    """One person's events; methods append one envelope each and return it."""

    def __init__(self, index: int, registered: str | None = "2025-01-01 09:00") -> None:
        self.nhs = nhs(index)
        self.events: list[dict[str, Any]] = []
        if registered is not None:
            self.add("PatientRegistered", registered, {"practice": PRACTICE, "gp_id": "G100"})

    def add(
        self,
        type_: str,
        at: str,
        data: dict[str, Any],
        *,
        organisation: str = PRACTICE,
        setting: str = "primary_care",
        system: str | None = None,
    ) -> dict[str, Any]:
        env = envelope(
            type_, nhs=self.nhs, at=when(at), data=data, organisation=organisation, setting=setting
        )
        if system is not None:
            env["source"]["system"] = system
            env.pop("recorded_by")
        self.events.append(env)
        return env

    # -- coordination ------------------------------------------------------------------

    def identify(self, at: str) -> dict[str, Any]:
        return self.add("CaseIdentified", at, {"criteria": ["frailty"]})

    def assign(self, at: str, who: str = "N100", **kw: str) -> dict[str, Any]:
        return self.add("CoordinatorAssigned", at, {"coordinator": professional(who, **kw)})

    def hand_off(self, at: str, from_id: str, to: str, **kw: str) -> dict[str, Any]:
        return self.add(
            "CoordinatorHandedOff", at, {"from_id": from_id, "to": professional(to, **kw)}
        )

    def release(self, at: str, who: str) -> dict[str, Any]:
        return self.add("CoordinatorReleased", at, {"coordinator_id": who})

    def close(self, at: str, reason: str = "moved_away") -> dict[str, Any]:
        return self.add("JourneyClosed", at, {"reason": reason})

    # -- hospital --------------------------------------------------------------------------

    def admit(
        self, at: str, encounter: str, method: str = "emergency", hospital: str = "RXH01"
    ) -> dict[str, Any]:
        return self.add(
            "Admitted",
            at,
            {"encounter_id": encounter, "hospital": hospital, "method": method},
            organisation=hospital,
            setting="acute",
        )

    def discharge(
        self, at: str, encounter: str, destination: str = "usual_residence", hospital: str = "RXH01"
    ) -> dict[str, Any]:
        return self.add(
            "Discharged",
            at,
            {"encounter_id": encounter, "destination": destination},
            organisation=hospital,
            setting="acute",
        )

    def contact(
        self,
        at: str,
        who: str = "G100",
        *,
        setting: str = "primary_care",
        system: str | None = None,
        organisation: str = PRACTICE,
    ) -> dict[str, Any]:
        return self.add(
            "ContactRecorded",
            at,
            {
                "setting": setting,
                "mode": "face_to_face",
                "with": {"id": who, "role": "gp", "organisation": organisation},
            },
            organisation=organisation,
            setting=setting,
            system=system,
        )

    # -- referrals, plans, outcomes ---------------------------------------------------------

    def refer(
        self, at: str, referral: str, to: str = "RYX01", setting: str = "community"
    ) -> dict[str, Any]:
        return self.add(
            "ReferralMade",
            at,
            {
                "referral_id": referral,
                "priority": "routine",
                "to": {"organisation": to, "service": "district nursing", "setting": setting},
            },
        )

    def first_contact(self, at: str, referral: str) -> dict[str, Any]:
        return self.add("FirstContactMade", at, {"referral_id": referral})

    def decline(self, at: str, referral: str) -> dict[str, Any]:
        return self.add("ReferralDeclined", at, {"referral_id": referral, "reason": "full"})

    def plan(self, at: str, plan: str, review_due: str) -> dict[str, Any]:
        return self.add(
            "CarePlanAgreed",
            at,
            {
                "plan_id": plan,
                "agreed_with": "patient",
                "review_due": review_due,
                "goals": [{"goal_id": "G1", "description": "walk to the shops"}],
            },
        )

    def review(self, at: str, plan: str, next_due: str) -> dict[str, Any]:
        return self.add("CarePlanReviewed", at, {"plan_id": plan, "next_review_due": next_due})

    def close_plan(self, at: str, plan: str) -> dict[str, Any]:
        return self.add("CarePlanClosed", at, {"plan_id": plan})

    def outcome(self, at: str, instrument: str, score: float) -> dict[str, Any]:
        return self.add("OutcomeRecorded", at, {"instrument": instrument, "score": score})
