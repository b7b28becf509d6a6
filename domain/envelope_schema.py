"""The envelope contract v1 as a JSON Schema (2020-12), generated from the contract models.

Publishers in other languages validate against ``schemas/envelope.v1.json`` (also served
at ``GET /v1/schema/envelope``). The file is generated here from ``domain/contract.py``
and a test holds the two together, so the schema cannot drift from what the ledger
accepts: ``python -m domain.envelope_schema`` rewrites it.

The data models' schemas are pydantic's (validation mode, draft 2020-12); the envelope
is assembled by hand because its ``data`` depends on ``type`` (one ``if``/``then`` per
event type) and its person is ``nhs_number`` or ``local_id`` (``anyOf``). What a schema
cannot say is listed in ``NOT_EXPRESSED`` and in the schema's ``$comment``: the ledger
still checks those, and refuses with a reason.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from domain.contract import (
    DATA_MODELS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    LocalId,
    RecordedBy,
    Source,
)

SCHEMA_ID: Final = "https://carejourney.example/schemas/envelope.v1.json"
SCHEMA_FILE: Final = Path(__file__).resolve().parent.parent / "schemas" / "envelope.v1.json"
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

# Ten digits, or 3-3-4 grouped with one kind of separator (domain/nhs_number.py).
NHS_NUMBER_PATTERN: Final = (
    r"^\s*(?:[0-9]{10}|[0-9]{3} [0-9]{3} [0-9]{4}|[0-9]{3}-[0-9]{3}-[0-9]{4})\s*$"
)

NOT_EXPRESSED: Final = (
    "the NHS number's modulus-11 check digit (nhs_number, data.merged_nhs_number)",
    "occurred_at at most CAREJOURNEY_FUTURE_TOLERANCE_SECONDS (default 86400) after the"
    " ledger's clock",
    "date-times must carry a UTC offset (RFC 3339 requires one; some validators accept"
    " a missing one under format date-time)",
    "an EventRetracted must name an event already recorded for the same person",
    "data.merged_patient_id is set by the ledger: publishers name the merged person by"
    " merged_nhs_number or merged_local_id",
    "source.organisation must be one the publisher is authorised for",
    "duplicate goal ids in one list, and a CarePlanRevised that changes nothing",
    "surrounding whitespace of ids and text is ignored (' R1' and 'R1' are one id)",
)


def _model_schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its nested definitions moved into the shared ``defs``."""
    schema = model.model_json_schema(
        mode="validation", ref_template="#/$defs/{model}", by_alias=True
    )
    defs.update(schema.pop("$defs", {}))
    return schema


def _publisher_merge(schema: dict[str, Any]) -> dict[str, Any]:
    """``PatientsMerged`` as a publisher sends it: never ``merged_patient_id``."""
    props = dict(schema["properties"])
    props.pop("merged_patient_id", None)
    return {
        **schema,
        "properties": props,
        "oneOf": [{"required": ["merged_nhs_number"]}, {"required": ["merged_local_id"]}],
    }


def envelope_schema() -> dict[str, Any]:
    """The whole schema (deterministic: the same contract gives the same JSON)."""
    defs: dict[str, Any] = {}
    for model in (Source, RecordedBy, LocalId):
        defs[model.__name__] = _model_schema(model, defs)
    for name in EVENT_TYPES:
        schema = _model_schema(DATA_MODELS[name], defs)
        defs[name] = _publisher_merge(schema) if name == "PatientsMerged" else schema
    nhs = {
        "type": "string",
        "pattern": NHS_NUMBER_PATTERN,
        "description": "10 digits (3-3-4 grouping with spaces or hyphens accepted); the"
        " modulus-11 check digit is checked by the ledger, not by this schema",
    }
    defs["PatientsMerged"]["properties"]["merged_nhs_number"] = {
        "anyOf": [nhs, {"type": "null"}],
        "default": None,
    }
    per_type = [
        {
            "if": {"properties": {"type": {"const": name}}, "required": ["type"]},
            "then": {"properties": {"data": {"$ref": f"#/$defs/{name}"}}},
        }
        for name in EVENT_TYPES
    ]
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": "Care-journey ledger envelope, contract v1",
        "description": "One published fact. Generated from domain/contract.py"
        " (python -m domain.envelope_schema); docs/publishing.md explains every field.",
        "$comment": "Not expressed by this schema, checked by the ledger: "
        + "; ".join(NOT_EXPRESSED),
        "type": "object",
        "additionalProperties": False,
        "required": ["event_id", "type", "schema_version", "occurred_at", "source", "data"],
        "anyOf": [{"required": ["nhs_number"]}, {"required": ["local_id"]}],
        "properties": {
            "event_id": {
                "type": "string",
                "format": "uuid",
                "description": "The publisher's id of this fact; a resend with the same"
                " content is a duplicate, with other content a conflict",
            },
            "type": {"enum": list(EVENT_TYPES)},
            "schema_version": {"const": SCHEMA_VERSION, "type": "integer"},
            "nhs_number": nhs,
            "local_id": {
                "$ref": "#/$defs/LocalId",
                "description": "A local identifier (assigning authority + value), e.g. a"
                " hospital MRN; with nhs_number too, the two are linked",
            },
            "occurred_at": {
                "type": "string",
                "format": "date-time",
                "description": "When it happened, with a UTC offset",
            },
            "source": {"$ref": "#/$defs/Source"},
            "recorded_by": {"anyOf": [{"$ref": "#/$defs/RecordedBy"}, {"type": "null"}]},
            "data": {"type": "object", "description": "The type's data: see $defs/<type>"},
        },
        "allOf": per_type,
        "$defs": dict(sorted(defs.items())),
    }


def render() -> str:
    """The schema file's text."""
    return json.dumps(envelope_schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write ``schemas/envelope.v1.json`` (or print it with ``-``)."""
    if sys.argv[1:] == ["-"]:
        sys.stdout.write(render())
        return
    SCHEMA_FILE.parent.mkdir(exist_ok=True)
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    main()
