"""Publishing: the envelope as documented, per-item results, and an event's status.

The request body is validated by ``domain.contract.parse_envelope`` (the one judge of
every door), not by FastAPI: the models here only *describe* it in the OpenAPI schema,
one envelope model per event type with its typed ``data``, told apart by ``type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, create_model

from api.problems import ProblemField
from domain.contract import DATA_MODELS, SCHEMA_VERSION, LocalId, RecordedBy, Source

EXAMPLE_ENVELOPE: dict[str, Any] = {
    "event_id": "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10",
    "type": "CoordinatorHandedOff",
    "schema_version": 1,
    "nhs_number": "9434765919",
    "occurred_at": "2026-03-02T10:15:00+00:00",
    "source": {"organisation": "Y02345", "system": "community-emis", "setting": "community"},
    "recorded_by": {"id": "C1234567", "role": "specialist_nurse"},
    "data": {
        "from_id": "G1234567",
        "to": {
            "id": "N100",
            "role": "specialist_nurse",
            "organisation": "Y02345",
            "setting": "community",
        },
        "reason": "heart failure nurse to lead",
    },
}
# The same person's registration, the day before (the batch example sends both).
EXAMPLE_REGISTERED: dict[str, Any] = {
    **EXAMPLE_ENVELOPE,
    "event_id": "0b6f1c2e-9a43-4d8e-8f3a-3c1d2b4a5e60",
    "type": "PatientRegistered",
    "occurred_at": "2026-03-01T09:00:00+00:00",
    "source": {"organisation": "A81001", "system": "gp-emis", "setting": "primary_care"},
    "recorded_by": {"id": "C1234567", "role": "gp"},
    "data": {"practice": "A81001", "gp_id": "G1234567"},
}


def _envelope_model(type_name: str, data_model: type[BaseModel]) -> type[BaseModel]:
    # Field types built at run time (a Literal of this type's name): a dict of them,
    # because create_model's typed keywords cannot describe them.
    fields: dict[str, Any] = dict(
        event_id=(UUID, Field(description="Publisher-assigned id; the idempotency key.")),
        type=(Literal[type_name], ...),
        schema_version=(Literal[SCHEMA_VERSION], ...),
        nhs_number=(
            Annotated[
                str,
                Field(
                    pattern=r"^[0-9]{10}$",
                    description="10 digits with a modulus-11 check digit; never stored in the"
                    " log. This or local_id (or both) names the person.",
                ),
            ]
            | None,
            None,
        ),
        local_id=(
            LocalId | None,
            Field(
                default=None,
                description="A local identifier (e.g. a hospital MRN); with nhs_number too,"
                " the two are linked. Never stored in the log.",
            ),
        ),
        occurred_at=(AwareDatetime, Field(description="When it happened, with a UTC offset.")),
        source=(Source, ...),
        recorded_by=(RecordedBy | None, None),
        data=(data_model, ...),
    )
    return create_model(
        f"{type_name}Envelope",
        __config__=ConfigDict(extra="forbid", title=f"{type_name} envelope"),
        __doc__=f"An envelope of type {type_name}; unknown fields are refused.",
        **fields,
    )


ENVELOPE_MODELS = tuple(_envelope_model(name, model) for name, model in DATA_MODELS.items())


def envelope_schema(ref_template: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schema of one envelope, definitions it references) for the OpenAPI document."""
    from typing import Union

    # A union of models made at run time: mypy cannot check it as a type.
    union = Annotated[Union[ENVELOPE_MODELS], Field(discriminator="type")]  # type: ignore[valid-type]  # noqa: UP007
    schema = TypeAdapter(union).json_schema(ref_template=ref_template)
    defs = schema.pop("$defs", {})
    return schema, defs


class ItemResult(BaseModel):
    """The outcome of one envelope (the same shape as ``Ledger.append_batch`` results)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 0,
                    "event_id": "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10",
                    "status": "recorded",
                    "position": 1042,
                },
                {
                    "index": 1,
                    "event_id": "0b6f1c2e-9a43-4d8e-8f3a-3c1d2b4a5e60",
                    "status": "rejected",
                    "errors": [
                        {"loc": "data.to.setting", "msg": "Input should be 'primary_care', ..."}
                    ],
                },
            ]
        }
    )

    index: int = Field(description="Position of the envelope in the request (0 for one).")
    event_id: str | None = Field(description="The envelope's event_id, when it had one.")
    status: Literal["recorded", "duplicate", "conflict", "rejected"]
    position: int | None = Field(
        default=None, description="Ledger position: new (recorded) or original (duplicate)."
    )
    errors: list[ProblemField] | None = Field(
        default=None, description="Why a rejected or conflicting envelope was refused."
    )


class Counts(BaseModel):
    recorded: int
    duplicate: int
    conflict: int
    rejected: int


class BatchResult(BaseModel):
    """Per-envelope outcomes of a batch, in request order, and their totals."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "results": [
                        {
                            "index": 0,
                            "event_id": "0b6f1c2e-9a43-4d8e-8f3a-3c1d2b4a5e60",
                            "status": "recorded",
                            "position": 1041,
                        },
                        {
                            "index": 1,
                            "event_id": "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10",
                            "status": "duplicate",
                            "position": 17,
                        },
                        {
                            "index": 2,
                            "event_id": None,
                            "status": "rejected",
                            "errors": [{"loc": "event_id", "msg": "Field required"}],
                        },
                    ],
                    "counts": {"recorded": 1, "duplicate": 1, "conflict": 0, "rejected": 1},
                }
            ]
        }
    )

    results: list[ItemResult]
    counts: Counts


class EventStatus(BaseModel):
    """Where a published event sits in the ledger (no person identifiers)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "event_id": "7b0f6a8e-5d0c-4e59-a7de-0f4f3c1f9a10",
                    "status": "recorded",
                    "position": 1042,
                    "type": "CoordinatorHandedOff",
                    "occurred_at": "2026-03-02T10:15:00Z",
                    "recorded_at": "2026-03-02T10:15:02.113Z",
                    "source_organisation": "Y02345",
                    "hash": "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c1b3d5f7e9a1c3b5d7f9e1a3c5b7d9f1e",
                }
            ]
        }
    )

    event_id: UUID
    status: Literal["recorded"]
    position: int
    type: str
    occurred_at: datetime
    recorded_at: datetime
    source_organisation: str
    hash: str
