"""Liveness and readiness bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Health(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class ProjectionState(BaseModel):
    name: str
    position: int
    head: int
    lag: int


class Readiness(BaseModel):
    """The database answered and every projection is within ``max_lag`` of the head."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "max_lag": 10000,
                    "projections": [
                        {"name": "coordinators", "position": 1040, "head": 1042, "lag": 2}
                    ],
                }
            ]
        }
    )

    status: Literal["ready"]
    max_lag: int
    projections: list[ProjectionState]
