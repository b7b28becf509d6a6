"""The synthetic health and care economy: organisations, their systems and their staff.

A cohort lives in one small integrated-care system: five local areas, each with four GP
practices, a community trust, a mental-health trust, a local authority (social care), a
voluntary organisation and a home hospital. People are registered at a practice and are
referred, admitted and coordinated mostly within its area, so the same professionals
recur (continuity of care is measurable) while handoffs cross settings.
Codes are ODS-shaped but invented; staff ids are staff codes (letter + 7 digits), never
anything that looks like an NHS number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any

# role -> (staff-code prefix, setting of the organisations that employ them)
ROLE_PREFIX = {
    "gp": "G",
    "practice_nurse": "N",
    "specialist_nurse": "N",
    "community_nurse": "N",
    "occupational_therapist": "T",
    "mental_health_professional": "M",
    "social_worker": "S",
    "voluntary_sector_adviser": "V",
    "other": "C",
}

PRACTICE_CODES = tuple(f"A81{n:03d}" for n in range(1, 21))
HOSPITAL_CODES = ("RXX01", "RXH01", "RYR16", "RTP04", "RPR01", "RA201")
COMMUNITY_CODES = ("RYX01", "RY401", "RYG02", "RY603", "RYE04")
MENTAL_HEALTH_CODES = ("RXT01", "RV505", "RW102", "RX403", "RWK04")
SOCIAL_CARE_CODES = ("LA301", "LA302", "LA303", "LA304", "LA305")
VOLUNTARY_CODES = ("VOL01", "VOL02", "VOL03", "VOL04", "VOL05")

WARDS = (
    "Acute Medical Unit",
    "Ward 3",
    "Ward 7",
    "Ward 12",
    "Elderly Care 1",
    "Elderly Care 2",
    "Respiratory",
    "Cardiology",
    "Stroke Unit",
    "Surgical Assessment",
    "Orthopaedics",
)


@dataclass(frozen=True, slots=True)
class Staff:
    """A professional; the three dict shapes the contract uses are built once."""

    id: str
    role: str
    organisation: str
    setting: str

    @property
    def professional(self) -> dict[str, str]:
        """The contract's ``Professional`` shape (a fresh dict: envelopes never share)."""
        return {
            "id": self.id,
            "role": self.role,
            "organisation": self.organisation,
            "setting": self.setting,
        }

    @property
    def contact_with(self) -> dict[str, str]:
        return {"id": self.id, "role": self.role, "organisation": self.organisation}

    @property
    def recorded_by(self) -> dict[str, str]:
        return {"id": self.id, "role": self.role}


@dataclass(slots=True)
class Org:
    """A publishing organisation: its ODS code, system, setting and time style."""

    code: str
    system: str
    setting: str
    style: str
    staff: dict[str, list[Staff]] = field(default_factory=dict)

    def source(self) -> dict[str, Any]:
        return {"organisation": self.code, "system": self.system, "setting": self.setting}

    @property
    def system_recorder(self) -> dict[str, str]:
        """``recorded_by`` of an automated feed from this organisation."""
        return {"id": f"SYS{self.code}", "role": "system"}


@dataclass(slots=True)
class Area:
    """One locality's services; a person's practice decides their area."""

    community: Org
    mental_health: Org
    social_care: Org
    voluntary: Org
    hospital: Org


@dataclass(slots=True)
class Practice:
    org: Org
    area: Area
    admin_id: str

    @property
    def gps(self) -> list[Staff]:
        return self.org.staff["gp"]

    @property
    def nurses(self) -> list[Staff]:
        return self.org.staff["practice_nurse"]


@dataclass(slots=True)
class World:
    practices: list[Practice]
    areas: list[Area]
    hospitals: list[Org]
    orgs: dict[str, Org] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for practice in self.practices:
            self.orgs[practice.org.code] = practice.org
        for area in self.areas:
            for org in (area.community, area.mental_health, area.social_care, area.voluntary):
                self.orgs[org.code] = org
        for hospital in self.hospitals:
            self.orgs[hospital.code] = hospital


class _StaffCodes:
    """Draws unique staff codes; a list keeps iteration order free of set hashing."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def new(self, role: str) -> str:
        while True:
            code = f"{ROLE_PREFIX[role]}{self._rng.randrange(1_000_000, 10_000_000)}"
            if code not in self._used:
                self._used.add(code)
                return code


def _org(
    code: str, system: str, setting: str, style: str, roles: dict[str, int], codes: _StaffCodes
) -> Org:
    org = Org(code, system, setting, style)
    for role, count in roles.items():
        org.staff[role] = [Staff(codes.new(role), role, code, setting) for _ in range(count)]
    return org


def build_world(rng: Random) -> World:
    """The organisations and staff of one cohort (deterministic from ``rng``)."""
    codes = _StaffCodes(rng)
    hospital_systems = (("pas-cerner", "utc"), ("epr-epic", "utc_offset"), ("pas-lorenzo", "local"))
    hospitals = [
        _org(
            code,
            hospital_systems[i % 3][0],
            "acute",
            hospital_systems[i % 3][1],
            {"specialist_nurse": 3, "other": 4},
            codes,
        )
        for i, code in enumerate(HOSPITAL_CODES)
    ]
    areas = []
    for i in range(len(COMMUNITY_CODES)):
        areas.append(
            Area(
                community=_org(
                    COMMUNITY_CODES[i],
                    "community-systmone",
                    "community",
                    "local",
                    {"community_nurse": 8, "specialist_nurse": 4, "occupational_therapist": 4},
                    codes,
                ),
                mental_health=_org(
                    MENTAL_HEALTH_CODES[i],
                    "mh-rio",
                    "mental_health",
                    "utc",
                    {"mental_health_professional": 6},
                    codes,
                ),
                social_care=_org(
                    SOCIAL_CARE_CODES[i],
                    "lasc-mosaic",
                    "social_care",
                    "local",
                    {"social_worker": 6, "occupational_therapist": 2},
                    codes,
                ),
                voluntary=_org(
                    VOLUNTARY_CODES[i],
                    "vol-charitylog",
                    "voluntary",
                    "utc_offset",
                    {"voluntary_sector_adviser": 4},
                    codes,
                ),
                hospital=hospitals[i],
            )
        )
    practices = []
    for i, code in enumerate(PRACTICE_CODES):
        system, style = ("gp-emis", "local") if i % 2 == 0 else ("gp-systmone", "utc")
        org = _org(code, system, "primary_care", style, {"gp": 4, "practice_nurse": 2}, codes)
        practices.append(Practice(org, areas[i % len(areas)], f"R{rng.randrange(10**6, 10**7)}"))
    return World(practices, areas, hospitals)


def staff_org(area: Area, practice: Practice, role: str) -> Org:
    """Which of a person's local organisations employs coordinators of ``role``."""
    if role in ("gp", "practice_nurse"):
        return practice.org
    if role in ("community_nurse", "specialist_nurse", "occupational_therapist"):
        return area.community
    if role == "mental_health_professional":
        return area.mental_health
    if role == "social_worker":
        return area.social_care
    return area.voluntary
