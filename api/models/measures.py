"""The measures report (``GET /v1/measures``): the document of ``projections.measures``.

Groups and per-person rows differ by measure (their fields are listed in
docs/measures.md), so they are open objects here; everything around them is typed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReportPeriod(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", description="First local date of the period.")
    to: str = Field(description="Last local date of the period (included).")
    timezone: str = Field(description="Zone calendar days are counted in.")


class ComputedAt(BaseModel):
    position: int = Field(description="Ledger position the read models were read at.")
    ledger_head: int
    lag: int
    projections: dict[str, int]


class MeasureOut(BaseModel):
    title: str
    unit: str = Field(description="What the measure's headline count counts.")
    definition: str = Field(description="The published definition (docs/measures.md).")
    count_fields: list[str] = Field(description="Fields that are counts (null when suppressed).")
    groups: list[dict[str, Any]] = Field(
        description="`all` first, then one per group of the split, in order."
    )
    per_person: list[dict[str, Any]] | None = Field(
        default=None, description="Pseudonymised rows, only with `per_person=true`."
    )


class MeasuresReport(BaseModel):
    """Every measure over one period, with where and how it was computed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "definitions_version": "1.0.0",
                    "period": {
                        "from": "2025-01-01",
                        "to": "2025-12-31",
                        "timezone": "Europe/London",
                    },
                    "by": None,
                    "computed_at": {
                        "position": 8053,
                        "ledger_head": 8053,
                        "lag": 0,
                        "projections": {"coordinators": 8053, "evaluation": 8053},
                    },
                    "suppression": {"applied": True, "suppressed_counts": "1-7", "rounded_to": 5},
                    "opt_out": {
                        "excluded_people": 10,
                        "register": "National Data Opt-out (docs/governance.md)",
                    },
                    "options": {"referral_wait_threshold_days": 28, "per_person": False},
                    "measures": {
                        "readmission_30d": {
                            "title": "30-day emergency readmission",
                            "unit": "index discharges",
                            "definition": "30-day emergency readmission (NHS definition). ...",
                            "count_fields": [
                                "discharges",
                                "readmitted",
                                "incomplete",
                                "deaths",
                                "transferred_out",
                            ],
                            "groups": [
                                {
                                    "group": "all",
                                    "discharges": 200,
                                    "readmitted": 35,
                                    "readmission_pct": 17.5,
                                    "incomplete": 25,
                                    "deaths": None,
                                    "transferred_out": 0,
                                }
                            ],
                        }
                    },
                }
            ]
        }
    )

    definitions_version: str
    period: ReportPeriod
    by: str | None
    computed_at: ComputedAt
    suppression: dict[str, Any]
    known_at: dict[str, Any] | None = Field(
        default=None,
        description="With `known_at`: the time the report was computed as known at (`at`) "
        "and the ledger position that amounts to (`position`).",
    )
    opt_out: dict[str, Any] | None = Field(
        default=None,
        description="People left out under the National Data Opt-out: `excluded_people` "
        "(rounded and suppressed like other counts; null when suppressed).",
    )
    options: dict[str, Any]
    measures: dict[str, MeasureOut]
